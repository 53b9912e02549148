//! The recorder's audit log file (`spec/audit-log.md`): who did what, to which camera, when
//! and with what details, as JSON lines in `{data_dir}/audit.log`, hash-chained as
//! `vms_core::audit` makes and checks them. An append is durable (fdatasync) before it
//! returns; a line torn by a crash was never acknowledged and is cut off at the next open.
//! The shipper to central reads the records back, wakes on new ones and signs checkpoints.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use tokio::sync::watch;
use vms_core::audit::{Head, MAX_LINE_BYTES, Record, Sealed, Summary, Verifier, Violation, seal};
use vms_core::id::CameraId;
use vms_core::wire::SignedCheckpoint;
use vms_core::{Error, IoResultExt, bail, err};

use crate::clock::Clocks;

/// The actions are the network's one list, kept in vms-core.
pub use vms_core::audit::Action;

/// The log's file in the data directory.
pub const AUDIT_FILE: &str = "audit.log";

struct State {
    file: File,
    head: Head,
    /// The file's length: where the next record starts.
    len: u64,
    /// An append failed in a way that may have left bytes behind (or not made them durable):
    /// no more appends until the log is reopened and its tail checked.
    broken: bool,
}

/// A place in the file: the `seq` of a record and the offset of the line after it.
#[derive(Clone, Copy)]
struct Mark {
    seq: u64,
    offset: u64,
}

/// The audit log of a recorder.
pub struct Audit {
    path: PathBuf,
    clocks: Arc<dyn Clocks>,
    state: Mutex<State>,
    /// The head's `seq`, sent after each append.
    appended: watch::Sender<u64>,
    /// Where the last [`Audit::records_after`] stopped reading, so that a shipper that keeps
    /// up reads only the new lines.
    read_mark: Mutex<Mark>,
}

impl Audit {
    /// Opens `{data_dir}/audit.log`, creating it if needed. Reads only the tail: the newest
    /// record gives the next `seq` and `prev`. A last line without its newline was torn by a
    /// crash and never acknowledged: it is cut off, with a warning. A newest record that is
    /// damaged otherwise is an error: appending after it would hide the damage.
    pub fn open(data_dir: &Path, clocks: Arc<dyn Clocks>) -> Result<Audit, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join(AUDIT_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .io_context(|| format!("opening {}", path.display()))?;
        // A new file's directory entry must be durable before its first record counts.
        File::open(data_dir)
            .and_then(|d| d.sync_all())
            .io_context(|| format!("syncing {}", data_dir.display()))?;
        let (head, len) = recover_tail(&mut file, &path)?;
        let (appended, _) = watch::channel(head.seq);
        let read_mark = Mutex::new(Mark {
            seq: head.seq,
            offset: len,
        });
        Ok(Audit {
            path,
            clocks,
            state: Mutex::new(State {
                file,
                head,
                len,
                broken: false,
            }),
            appended,
            read_mark,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest record's `seq` and `hash`, for checkpoints held outside the recorder.
    pub fn head(&self) -> Head {
        self.lock().head.clone()
    }

    /// Appends a record; it is durable when this returns. Blocking (it fsyncs): call it from a
    /// blocking thread. `actor` is who did it (1 to 128 characters, no control characters).
    /// An error means the record may or may not be in the log, never half of it.
    pub fn append(
        &self,
        actor: &str,
        action: Action,
        camera: Option<CameraId>,
        details: Map<String, Value>,
    ) -> Result<Record, Error> {
        let now = self.clocks.realtime().timestamp();
        let mut st = self.lock();
        if st.broken {
            bail!(
                Unavailable,
                "{}: an earlier append failed; reopen the log (restart the recorder) to check its tail",
                self.path.display()
            );
        }
        let Sealed { record, mut line } = seal(&st.head, now, actor, action, camera, details)?;
        line.push('\n');
        let ctx = || format!("appending record {} to {}", record.seq, self.path.display());
        if let Err(e) = st.file.write_all(line.as_bytes()) {
            // Take back whatever part of the line was written; if even that fails, the tail
            // is repaired at the next open.
            let len = st.len;
            if st.file.set_len(len).is_err() {
                st.broken = true;
            }
            return Err(e).io_context(ctx);
        }
        if let Err(e) = st.file.sync_data() {
            st.broken = true;
            return Err(e).io_context(ctx);
        }
        st.len += line.len() as u64;
        st.head = record.head();
        self.appended.send_replace(record.seq);
        Ok(record)
    }

    /// Yields the head's `seq` after each append: a shipper waits on it for new records.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// The stored lines (without their newlines) of the records after `after_seq`, oldest
    /// first, at most `max`: what central, whose copy ends at `after_seq`, has not got yet.
    /// Reads only records durable when it is called, and appends go on meanwhile. Blocking
    /// (it reads the file): call it from a blocking thread. Each line is checked on the way
    /// (its hash, and its `seq` following the one before), so a damaged log is never shipped.
    pub fn records_after(&self, after_seq: u64, max: usize) -> Result<Vec<String>, Error> {
        let (head, len) = {
            let st = self.lock();
            (st.head.seq, st.len)
        };
        if after_seq > head {
            bail!(
                DataLoss,
                "{}: central's copy goes up to seq {after_seq}, but the log ends at seq {head}: \
                 records were removed from its end",
                self.path.display()
            );
        }
        let mut at = *self.read_mark.lock().unwrap_or_else(|p| p.into_inner());
        if at.seq > after_seq || at.offset > len {
            at = Mark { seq: 0, offset: 0 };
        }
        let mut out = Vec::new();
        if after_seq == head || max == 0 {
            return Ok(out);
        }
        let ctx = || format!("reading {}", self.path.display());
        let mut file = File::open(&self.path).io_context(ctx)?;
        file.seek(SeekFrom::Start(at.offset)).io_context(ctx)?;
        let mut r = BufReader::new(file.take(len - at.offset));
        let mut buf = Vec::new();
        while out.len() < max && at.offset < len {
            buf.clear();
            r.read_until(b'\n', &mut buf).io_context(ctx)?;
            let damaged = |why: String| {
                err!(
                    DataLoss,
                    "{}: the line at byte {}: {why}; check the log with `vms-recorder audit-verify`",
                    self.path.display(),
                    at.offset
                )
            };
            let Some(line) = buf.strip_suffix(b"\n") else {
                return Err(damaged("it has no newline".to_owned()));
            };
            let record = Record::parse(line).map_err(|e| damaged(e.to_string()))?;
            if record.seq != at.seq + 1 {
                return Err(damaged(format!(
                    "seq {} where {} belongs",
                    record.seq,
                    at.seq + 1
                )));
            }
            at = Mark {
                seq: record.seq,
                offset: at.offset + buf.len() as u64,
            };
            if record.seq > after_seq {
                // Parsed as JSON, so UTF-8.
                out.push(String::from_utf8_lossy(line).into_owned());
            }
        }
        *self.read_mark.lock().unwrap_or_else(|p| p.into_inner()) = at;
        Ok(out)
    }

    /// A checkpoint of the head as of now, signed by `sign` (the recorder's Ed25519 key) for
    /// the log named `log_id` (the recorder's id).
    pub fn checkpoint(&self, sign: impl Fn(&[u8]) -> [u8; 64], log_id: &str) -> SignedCheckpoint {
        let head = self.head();
        SignedCheckpoint::sign(log_id, &head, self.clocks.realtime().timestamp(), sign)
    }
}

/// Finds the newest whole record from the end of the file, cutting off a torn last line.
/// Returns the head and the file's length after the cut.
fn recover_tail(file: &mut File, path: &Path) -> Result<(Head, u64), Error> {
    let ctx = || format!("reading the tail of {}", path.display());
    let len = file.metadata().io_context(ctx)?.len();
    // A torn line and the whole line before it, and the newline before that.
    let window = len.min(2 * MAX_LINE_BYTES as u64 + 1);
    let start = len - window;
    let mut buf = vec![0u8; window as usize];
    file.seek(SeekFrom::Start(start)).io_context(ctx)?;
    file.read_exact(&mut buf).io_context(ctx)?;
    let whole = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => bail!(
            DataLoss,
            "{}: no line ends in its last {window} bytes: not an audit log, or damaged",
            path.display()
        ),
    };
    let end = start + whole as u64;
    if end < len {
        tracing::warn!(
            path = %path.display(),
            bytes = len - end,
            "audit log ends in a torn line (a crash mid-append, never acknowledged): cutting it off"
        );
        file.set_len(end)
            .and_then(|()| file.sync_all())
            .io_context(|| format!("cutting the torn tail off {}", path.display()))?;
    }
    if whole == 0 {
        return Ok((Head::empty(), end));
    }
    let line_start = match buf[..whole - 1].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => bail!(
            DataLoss,
            "{}: its last line is longer than {MAX_LINE_BYTES} bytes",
            path.display()
        ),
    };
    let record = Record::parse(&buf[line_start..whole - 1]).map_err(|e| {
        err!(
            DataLoss,
            "{}: the newest record (byte {}) is damaged: {e}; check the log with \
             `vms-recorder audit-verify` before appending to it",
            path.display(),
            start + line_start as u64
        )
    })?;
    Ok((record.head(), end))
}

/// Checks the whole log file with [`Verifier`]: every record's hash, `seq` and `prev`, and
/// each checkpoint. A torn last line is reported, not counted as a violation.
pub fn verify(path: &Path, checkpoints: &[Head]) -> Result<Summary, Violation> {
    let file = File::open(path)
        .io_context(|| format!("opening {}", path.display()))
        .map_err(Violation::Unreadable)?;
    let mut r = BufReader::new(file);
    let mut v = Verifier::new(checkpoints);
    let mut buf = Vec::new();
    let torn_tail_bytes = loop {
        buf.clear();
        (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .io_context(|| format!("reading {}", path.display()))
            .map_err(Violation::Unreadable)?;
        match buf.strip_suffix(b"\n") {
            Some(line) => v.push(line)?,
            // No newline in reach: longer than a line may be, which `push` refuses, so this
            // returns.
            None if buf.len() > MAX_LINE_BYTES => v.push(&buf)?,
            None => break buf.len() as u64,
        }
    };
    Ok(Summary {
        torn_tail_bytes,
        ..v.finish()?
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use vms_core::time::{Time90k, TimeQuality};

    use vms_core::audit::ZERO_HASH;

    use super::*;

    /// A clock stopped at 2026-11-26T12:00:00.25Z.
    struct Stopped;

    impl Clocks for Stopped {
        fn realtime(&self) -> Time90k {
            Time90k::parse_rfc3339("2026-11-26T12:00:00.25Z").expect("time")
        }
        fn monotonic(&self) -> Instant {
            Instant::now()
        }
        fn quality(&self) -> TimeQuality {
            TimeQuality::default()
        }
    }

    const CAMERA: &str = "01JD7Q0000000000000000000C";

    fn details(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn open(dir: &Path) -> Audit {
        Audit::open(dir, Arc::new(Stopped)).unwrap()
    }

    /// A log of `n` records.
    fn log_of(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let audit = open(dir.path());
        for i in 0..n {
            audit
                .append(
                    "local-admin",
                    Action::Playback,
                    None,
                    details(json!({"i": i})),
                )
                .unwrap();
        }
        let path = dir.path().join(AUDIT_FILE);
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn canonical_bytes_known_answer() {
        // The hash was computed with sha256sum over the line without its hash member.
        let want = "{\"version\":1,\"seq\":1,\"time\":\"2026-11-26T12:00:00.25Z\",\
            \"actor\":\"local-admin\",\"action\":\"hold_placed\",\"camera\":\"01JD7Q0000000000000000000C\",\
            \"details\":{\"case\":\"2026-017\",\"end\":\"2026-11-26T13:00:00Z\"},\
            \"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\
            \"hash\":\"0ace224800095dff47575c5526c35cbc79ffd32573f501ea4d06fe29b5c9b4c5\"}\n";
        let dir = tempfile::tempdir().unwrap();
        let audit = open(dir.path());
        let camera = Some(CAMERA.parse().unwrap());
        let d = details(json!({"end": "2026-11-26T13:00:00Z", "case": "2026-017"}));
        let r = audit
            .append("local-admin", Action::HoldPlaced, camera, d)
            .unwrap();
        let path = dir.path().join(AUDIT_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        assert_eq!(
            r.hash,
            "0ace224800095dff47575c5526c35cbc79ffd32573f501ea4d06fe29b5c9b4c5"
        );
        assert_eq!((r.seq, r.prev.as_str()), (1, ZERO_HASH));
        // The same line, written by someone else, verifies.
        let other = dir.path().join("other.log");
        std::fs::write(&other, want).unwrap();
        let s = verify(&other, &[]).unwrap();
        assert_eq!((s.records, s.head.hash.as_str()), (1, r.hash.as_str()));
    }

    #[test]
    fn append_reopen_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let audit = open(dir.path());
        assert_eq!(
            audit.head(),
            Head {
                seq: 0,
                hash: ZERO_HASH.into()
            }
        );
        let a = audit
            .append("local-admin", Action::CameraAdded, None, Map::new())
            .unwrap();
        let b = audit
            .append("op", Action::Snapshot, None, details(json!({"at": "x"})))
            .unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(b.prev, a.hash);
        drop(audit);
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(AUDIT_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let audit = open(dir.path());
        assert_eq!(
            audit.head(),
            Head {
                seq: 2,
                hash: b.hash.clone()
            }
        );
        let c = audit
            .append("op", Action::Export, None, Map::new())
            .unwrap();
        assert_eq!((c.seq, c.prev.as_str()), (3, b.hash.as_str()));
        let stored: Vec<Record> = lines(&path)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(stored, [a, b, c.clone()]);
        let s = verify(&path, &[]).unwrap();
        assert_eq!(
            s,
            Summary {
                records: 3,
                head: Head {
                    seq: 3,
                    hash: c.hash
                },
                torn_tail_bytes: 0
            }
        );
    }

    #[test]
    fn refuses_bad_actors_and_huge_details() {
        let dir = tempfile::tempdir().unwrap();
        let audit = open(dir.path());
        for actor in ["", "a\nb", &"x".repeat(129)] {
            let e = audit
                .append(actor, Action::Live, None, Map::new())
                .unwrap_err();
            assert!(e.to_string().starts_with("actor:"), "{e}");
        }
        let big = details(json!({"note": "x".repeat(MAX_LINE_BYTES)}));
        let e = audit.append("op", Action::Live, None, big).unwrap_err();
        assert!(e.to_string().starts_with("details:"), "{e}");
        assert_eq!(audit.head().seq, 0, "nothing was written");
        assert_eq!(
            std::fs::metadata(dir.path().join(AUDIT_FILE))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open() {
        let (dir, path) = log_of(3);
        let whole = std::fs::read(&path).unwrap();
        for torn in [&b"{\"version\":1,\"seq\":4,\"ti"[..], b"\0\0\0\0", b"x"] {
            let mut bytes = whole.clone();
            bytes.extend_from_slice(torn);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                verify(&path, &[]).unwrap().torn_tail_bytes,
                torn.len() as u64
            );
            let audit = open(dir.path());
            assert_eq!(std::fs::read(&path).unwrap(), whole);
            assert_eq!(audit.head().seq, 3);
        }
        let audit = open(dir.path());
        let r = audit.append("op", Action::Live, None, Map::new()).unwrap();
        assert_eq!(r.seq, 4);
        assert_eq!(verify(&path, &[]).unwrap().records, 4);

        // A log that is nothing but a torn first line.
        std::fs::write(&path, b"{\"vers").unwrap();
        assert_eq!(open(dir.path()).head().seq, 0);
        assert!(std::fs::read(&path).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_newest_record_stops_open() {
        let (dir, path) = log_of(2);
        let mut all = lines(&path);
        all[1] = all[1].replace("\"i\":1", "\"i\":7");
        write_lines(&path, &all);
        let e = Audit::open(dir.path(), Arc::new(Stopped)).err().unwrap();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
        assert!(
            e.to_string().contains("record 2: its hash does not match"),
            "{e}"
        );
    }

    #[test]
    fn random_damage_never_panics_and_is_always_found() {
        let (dir, path) = log_of(6);
        let whole = std::fs::read(&path).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut bytes = whole.clone();
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= (next() % 255 + 1) as u8;
            std::fs::write(&path, &bytes).unwrap();
            // A changed newline only moves a line boundary or tears the tail; any other change
            // breaks a hash. Either way the log no longer verifies as the 6 records it held.
            let still_whole =
                verify(&path, &[]).is_ok_and(|s| s.records == 6 && s.torn_tail_bytes == 0);
            assert!(!still_whole, "round {round}: byte {at} changed unnoticed");
            // Opening never panics either: it cuts a torn tail or refuses a damaged record.
            let _ = Audit::open(dir.path(), Arc::new(Stopped));
        }
    }

    #[test]
    fn verify_reads_the_file_with_its_checkpoints() {
        let (_dir, path) = log_of(3);
        let all = lines(&path);
        let head = verify(&path, &[]).unwrap().head;
        write_lines(&path, &all[..2]);
        let e = verify(&path, std::slice::from_ref(&head)).unwrap_err();
        assert!(
            e.to_string()
                .contains("the log ends at seq 2: records were removed"),
            "{e}"
        );
        // A line too long for the log, without a newline in reach.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 10));
        std::fs::write(&path, bytes).unwrap();
        let e = verify(&path, &[]).unwrap_err().to_string();
        assert!(e.starts_with("line 3: longer than"), "{e}");
    }

    #[test]
    fn records_after_gives_the_stored_lines_in_order() {
        let (dir, path) = log_of(5);
        let audit = open(dir.path());
        let all = lines(&path);
        assert_eq!(audit.records_after(0, 100).unwrap(), all);
        assert_eq!(audit.records_after(0, 2).unwrap(), all[..2]);
        // A shipper that keeps up, then one that starts over (central lost its cursor).
        assert_eq!(audit.records_after(2, 2).unwrap(), all[2..4]);
        assert_eq!(audit.records_after(4, 2).unwrap(), all[4..]);
        assert!(audit.records_after(5, 2).unwrap().is_empty());
        assert_eq!(audit.records_after(1, 1).unwrap(), all[1..2]);
        assert!(audit.records_after(0, 0).unwrap().is_empty());
        let r = audit.append("op", Action::Live, None, Map::new()).unwrap();
        let after = audit.records_after(5, 10).unwrap();
        assert_eq!(after, lines(&path)[5..]);
        assert_eq!(Record::parse(after[0].as_bytes()).unwrap(), r);
        // Central ahead of the log: the log lost its end.
        let e = audit.records_after(7, 10).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
        assert!(
            e.to_string()
                .contains("up to seq 7, but the log ends at seq 6"),
            "{e}"
        );

        // A record edited in the file is never shipped.
        let mut t = lines(&path);
        t[2] = t[2].replace("\"i\":2", "\"i\":8");
        write_lines(&path, &t);
        let e = audit.records_after(0, 10).unwrap_err();
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss);
        assert!(
            e.to_string().contains("record 3: its hash does not match"),
            "{e}"
        );
        // Nor are records that do not follow each other.
        t.remove(2);
        write_lines(&path, &t);
        let e = audit.records_after(0, 10).unwrap_err().to_string();
        assert!(e.contains("seq 4 where 3 belongs"), "{e}");
    }

    #[test]
    fn records_after_reads_what_was_durable_when_called() {
        let (dir, _path) = log_of(2);
        let audit = Arc::new(open(dir.path()));
        let mut rx = audit.subscribe();
        let writer = {
            let audit = audit.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    audit.append("op", Action::Live, None, Map::new()).unwrap();
                }
            })
        };
        // Reading while appends go on: each batch continues the last, seq by seq.
        let mut shipped = 2u64;
        while shipped < 202 {
            for line in audit.records_after(shipped, 7).unwrap() {
                let r = Record::parse(line.as_bytes()).unwrap();
                assert_eq!(r.seq, shipped + 1);
                shipped = r.seq;
            }
            if shipped < 202 {
                futures::executor::block_on(rx.wait_for(|&seq| seq > shipped)).unwrap();
            }
        }
        writer.join().unwrap();
        assert_eq!(audit.head().seq, 202);
    }

    #[test]
    fn subscribers_see_each_append() {
        let (dir, _path) = log_of(3);
        let audit = open(dir.path());
        let mut rx = audit.subscribe();
        assert_eq!(*rx.borrow_and_update(), 3);
        assert!(!rx.has_changed().unwrap());
        audit.append("op", Action::Live, None, Map::new()).unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 4);
        // A refused append wakes no one.
        assert!(audit.append("", Action::Live, None, Map::new()).is_err());
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn checkpoints_sign_the_head() {
        let (dir, _path) = log_of(3);
        let audit = open(dir.path());
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let id = "01JD7Q0000000000000000000R";
        let cp = audit.checkpoint(|b| ed25519_dalek::Signer::sign(&key, b).to_bytes(), id);
        assert_eq!((cp.head(), cp.log.as_str()), (audit.head(), id));
        assert_eq!(cp.time, "2026-11-26T12:00:00.25Z");
        cp.verify(&key.verifying_key()).unwrap();
    }
}
