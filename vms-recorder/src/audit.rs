//! The recorder's audit log (`spec/audit-log.md`): who did what, to which camera, when and
//! with what details, as JSON lines in `{data_dir}/audit.log`. It is append-only and
//! hash-chained: each record carries the hash of the one before it, so an edited, reordered,
//! deleted or inserted record breaks the chain. An append is durable (fdatasync) before it
//! returns; a line torn by a crash was never acknowledged and is cut off at the next open.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use vms_core::id::CameraId;
use vms_core::{Error, IoResultExt, bail, err};

use crate::clock::Clocks;

/// The log's file in the data directory.
pub const AUDIT_FILE: &str = "audit.log";
/// The record format version this build writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The longest line, newline included.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The `prev` of the first record.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A media export (MP4) was served.
    Export,
    /// A signed evidence package was made.
    EvidenceExport,
    HoldPlaced,
    HoldReleased,
    CameraAdded,
    CameraChanged,
    CameraRemoved,
    /// Recorded footage was played back.
    Playback,
    /// Live video was watched.
    Live,
    /// A still image was taken from footage.
    Snapshot,
}

impl Action {
    /// The stable snake_case name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Export => "export",
            Action::EvidenceExport => "evidence_export",
            Action::HoldPlaced => "hold_placed",
            Action::HoldReleased => "hold_released",
            Action::CameraAdded => "camera_added",
            Action::CameraChanged => "camera_changed",
            Action::CameraRemoved => "camera_removed",
            Action::Playback => "playback",
            Action::Live => "live",
            Action::Snapshot => "snapshot",
        }
    }
}

/// One record as it is stored: a line of the log. Its members are written in this order, with
/// `hash` last (the spec's canonical bytes depend on it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// 1 for the first record, then +1 for each.
    pub seq: u64,
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub camera: Option<CameraId>,
    pub details: Map<String, Value>,
    /// The `hash` of the record before; [`ZERO_HASH`] for the first.
    pub prev: String,
    /// Lower-case hex SHA-256 of the record's canonical bytes (the line without `hash`).
    pub hash: String,
}

/// A record without its hash, serialised to make the canonical bytes.
#[derive(Serialize)]
struct Body<'a> {
    version: u32,
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    camera: Option<CameraId>,
    details: &'a Map<String, Value>,
    prev: &'a str,
}

/// The newest record's sequence number and hash (`0` and [`ZERO_HASH`] for an empty log):
/// what a checkpoint kept outside the recorder pins. Written `SEQ:HASH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl FromStr for Head {
    type Err = Error;

    fn from_str(s: &str) -> Result<Head, Error> {
        let bad = || {
            err!(
                InvalidArgument,
                "checkpoint {s:?} must be SEQ:HASH (64 hex digits)"
            )
        };
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        let seq = seq.parse().map_err(|_| bad())?;
        if !is_hash(hash) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            hash: hash.to_owned(),
        })
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The line of a record (newline included) and its hash.
fn encode(body: &Body<'_>) -> Result<(Vec<u8>, String), Error> {
    let mut line =
        serde_json::to_vec(body).map_err(|e| err!(Internal, "serialising a record: {e}"))?;
    let hash = format!("{:x}", Sha256::digest(&line));
    // The canonical bytes end with the object's closing brace: `hash` goes just before it.
    line.pop();
    line.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
    Ok((line, hash))
}

/// What is wrong with one line.
enum LineError {
    Malformed(String),
    Edited(u64),
}

/// Parses a line (without its newline) and checks its own hash.
fn decode(line: &[u8]) -> Result<Record, LineError> {
    let r: Record = serde_json::from_slice(line)
        .map_err(|e| LineError::Malformed(format!("not an audit record: {e}")))?;
    if r.version != RECORD_VERSION {
        return Err(LineError::Malformed(format!(
            "record version {}; this build reads {RECORD_VERSION}",
            r.version
        )));
    }
    if !is_hash(&r.hash) || !is_hash(&r.prev) {
        return Err(LineError::Malformed(
            "hash and prev must be 64 lower-case hex digits".to_owned(),
        ));
    }
    if jiff::Timestamp::from_str(&r.time).is_err() {
        return Err(LineError::Malformed(format!(
            "time {:?} is not RFC 3339",
            r.time
        )));
    }
    let suffix = format!(",\"hash\":\"{}\"}}", r.hash);
    let Some(head) = line.strip_suffix(suffix.as_bytes()) else {
        return Err(LineError::Malformed(
            "the hash member must come last, as ,\"hash\":\"…\"}".to_owned(),
        ));
    };
    let mut hasher = Sha256::new();
    hasher.update(head);
    hasher.update(b"}");
    if format!("{:x}", hasher.finalize()) != r.hash {
        return Err(LineError::Edited(r.seq));
    }
    Ok(r)
}

struct State {
    file: File,
    head: Head,
    /// The file's length: where the next record starts.
    len: u64,
    /// An append failed in a way that may have left bytes behind (or not made them durable):
    /// no more appends until the log is reopened and its tail checked.
    broken: bool,
}

/// The audit log of a recorder.
pub struct Audit {
    path: PathBuf,
    clocks: Arc<dyn Clocks>,
    state: Mutex<State>,
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
        Ok(Audit {
            path,
            clocks,
            state: Mutex::new(State {
                file,
                head,
                len,
                broken: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
        let n = actor.chars().count();
        if n == 0 || n > 128 || actor.chars().any(char::is_control) {
            bail!(
                InvalidArgument,
                "actor: 1 to 128 characters, no control characters"
            );
        }
        let now = self.clocks.realtime().timestamp();
        let time = jiff::Timestamp::from_millisecond(now.as_millisecond())
            .unwrap_or(now)
            .to_string();
        let mut st = self.lock();
        if st.broken {
            bail!(
                Unavailable,
                "{}: an earlier append failed; reopen the log (restart the recorder) to check its tail",
                self.path.display()
            );
        }
        let seq = st.head.seq.checked_add(1).ok_or_else(|| {
            err!(
                ResourceExhausted,
                "{}: no sequence number left after {}",
                self.path.display(),
                st.head.seq
            )
        })?;
        let (line, hash) = encode(&Body {
            version: RECORD_VERSION,
            seq,
            time: &time,
            actor,
            action: action.as_str(),
            camera,
            details: &details,
            prev: &st.head.hash,
        })?;
        if line.len() > MAX_LINE_BYTES {
            bail!(
                InvalidArgument,
                "details: the record would take {} bytes, more than {MAX_LINE_BYTES}",
                line.len()
            );
        }
        let ctx = || format!("appending record {seq} to {}", self.path.display());
        if let Err(e) = st.file.write_all(&line) {
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
        let prev = std::mem::replace(
            &mut st.head,
            Head {
                seq,
                hash: hash.clone(),
            },
        );
        Ok(Record {
            version: RECORD_VERSION,
            seq,
            time,
            actor: actor.to_owned(),
            action: action.as_str().to_owned(),
            camera,
            details,
            prev: prev.hash,
            hash,
        })
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
        return Ok((
            Head {
                seq: 0,
                hash: ZERO_HASH.to_owned(),
            },
            end,
        ));
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
    let damaged = |why: String| {
        err!(
            DataLoss,
            "{}: the newest record (byte {}) is damaged: {why}; check the log with \
             `vms-recorder audit-verify` before appending to it",
            path.display(),
            start + line_start as u64
        )
    };
    match decode(&buf[line_start..whole - 1]) {
        Ok(r) => Ok((
            Head {
                seq: r.seq,
                hash: r.hash,
            },
            end,
        )),
        Err(LineError::Malformed(why)) => Err(damaged(why)),
        Err(LineError::Edited(seq)) => Err(damaged(format!(
            "record {seq}: its hash does not match its content"
        ))),
    }
}

/// A log that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub head: Head,
    /// Bytes of a torn last line (a crash mid-append; cut off at the next open).
    pub torn_tail_bytes: u64,
}

/// What is wrong with a log. Lines count from 1.
#[derive(Debug)]
pub enum Violation {
    /// The log could not be read.
    Unreadable(Error),
    /// A line is not a well-formed record.
    Malformed { line: u64, why: String },
    /// A record's hash does not match its content.
    Edited { line: u64, seq: u64 },
    /// A record's `seq` is not the one after the record before.
    OutOfSequence {
        line: u64,
        expected: u64,
        found: u64,
    },
    /// A record's `prev` is not the hash of the record before.
    BrokenChain { line: u64, seq: u64 },
    /// The log disagrees with a checkpoint.
    Checkpoint { checkpoint: Head, why: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unreadable(e) => write!(f, "{e}"),
            Violation::Malformed { line, why } => write!(f, "line {line}: {why}"),
            Violation::Edited { line, seq } => write!(
                f,
                "line {line} (seq {seq}): its hash does not match its content: the record was edited"
            ),
            Violation::OutOfSequence {
                line,
                expected,
                found,
            } => write!(
                f,
                "line {line}: seq {found} where {expected} belongs: a record was deleted, \
                 inserted or moved"
            ),
            Violation::BrokenChain { line, seq } => write!(
                f,
                "line {line} (seq {seq}): prev is not the hash of the record before: that \
                 record was replaced, or records were inserted or deleted"
            ),
            Violation::Checkpoint { checkpoint, why } => {
                write!(f, "checkpoint {checkpoint}: {why}")
            }
        }
    }
}

/// Checks a whole log: every record's hash, `seq` and `prev`, and each checkpoint (the
/// record of its `seq` must be there with its hash). Without a checkpoint, records removed
/// from the end, or a tail rewritten with every hash recomputed, cannot be told from a
/// shorter log: that is what checkpoints held outside the recorder are for.
pub fn verify(path: &Path, checkpoints: &[Head]) -> Result<Summary, Violation> {
    let file = File::open(path)
        .io_context(|| format!("opening {}", path.display()))
        .map_err(Violation::Unreadable)?;
    let mut r = BufReader::new(file);
    let mut head = Head {
        seq: 0,
        hash: ZERO_HASH.to_owned(),
    };
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    let torn_tail_bytes = loop {
        buf.clear();
        (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .io_context(|| format!("reading {}", path.display()))
            .map_err(Violation::Unreadable)?;
        line_no += 1;
        let Some(line) = buf.strip_suffix(b"\n") else {
            if buf.len() > MAX_LINE_BYTES {
                return Err(Violation::Malformed {
                    line: line_no,
                    why: format!("longer than {MAX_LINE_BYTES} bytes"),
                });
            }
            break buf.len() as u64;
        };
        let record = decode(line).map_err(|e| match e {
            LineError::Malformed(why) => Violation::Malformed { line: line_no, why },
            LineError::Edited(seq) => Violation::Edited { line: line_no, seq },
        })?;
        if record.seq != head.seq + 1 {
            return Err(Violation::OutOfSequence {
                line: line_no,
                expected: head.seq + 1,
                found: record.seq,
            });
        }
        if record.prev != head.hash {
            return Err(Violation::BrokenChain {
                line: line_no,
                seq: record.seq,
            });
        }
        if let Some(c) = checkpoints
            .iter()
            .find(|c| c.seq == record.seq && c.hash != record.hash)
        {
            return Err(Violation::Checkpoint {
                checkpoint: c.clone(),
                why: format!("the log's record {} has hash {}", record.seq, record.hash),
            });
        }
        head = Head {
            seq: record.seq,
            hash: record.hash,
        };
    };
    if let Some(c) = checkpoints.iter().find(|c| c.seq > head.seq) {
        return Err(Violation::Checkpoint {
            checkpoint: c.clone(),
            why: format!(
                "the log ends at seq {}: records were removed from its end",
                head.seq
            ),
        });
    }
    Ok(Summary {
        records: head.seq,
        head,
        torn_tail_bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use vms_core::time::{Time90k, TimeQuality};

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

    /// Appends a well-formed record after `lines`, chained to the last of them: what a forger
    /// with write access to the file could do.
    fn forge(after: Option<&str>, seq: u64, actor: &str) -> String {
        let prev = after.map_or(ZERO_HASH.to_owned(), |l| {
            serde_json::from_str::<Record>(l).unwrap().hash
        });
        let (line, _) = encode(&Body {
            version: 1,
            seq,
            time: "2026-11-26T12:00:00Z",
            actor,
            action: "playback",
            camera: None,
            details: &Map::new(),
            prev: &prev,
        })
        .unwrap();
        String::from_utf8(line).unwrap().trim_end().to_owned()
    }

    #[test]
    fn every_tampering_is_detected() {
        let (_dir, path) = log_of(5);
        let all = lines(&path);
        let check = |lines: &[String]| {
            write_lines(&path, lines);
            verify(&path, &[]).unwrap_err().to_string()
        };

        // Edited, hash left alone.
        let mut t = all.clone();
        t[1] = t[1].replace("\"i\":1", "\"i\":9");
        assert!(
            check(&t).starts_with("line 2 (seq 2): its hash does not match"),
            "edit"
        );
        // Edited, its own hash recomputed: the next record's prev no longer matches.
        let mut t = all.clone();
        t[1] = forge(Some(&all[0]), 2, "someone-else");
        assert!(
            check(&t).starts_with("line 3 (seq 3): prev is not the hash"),
            "re-hash"
        );
        // Reordered.
        let mut t = all.clone();
        t.swap(1, 2);
        assert!(
            check(&t).starts_with("line 2: seq 3 where 2 belongs"),
            "reorder"
        );
        // Deleted.
        let mut t = all.clone();
        t.remove(2);
        assert!(
            check(&t).starts_with("line 3: seq 4 where 3 belongs"),
            "delete"
        );
        // Inserted, well-formed and chained to the record before it.
        let mut t = all.clone();
        t.insert(2, forge(Some(&all[1]), 3, "intruder"));
        assert!(
            check(&t).starts_with("line 4: seq 3 where 4 belongs"),
            "insert"
        );
        // Duplicated.
        let mut t = all.clone();
        t.insert(2, all[1].clone());
        assert!(
            check(&t).starts_with("line 3: seq 2 where 3 belongs"),
            "duplicate"
        );
        // Not a record; a member reordered; whitespace added.
        let mut t = all.clone();
        t[0] = "garbage".into();
        assert!(
            check(&t).starts_with("line 1: not an audit record"),
            "garbage"
        );
        let mut t = all.clone();
        let moved = t[0].replacen("{\"version\":1,", "{", 1);
        t[0] = format!("{},\"version\":1}}", &moved[..moved.len() - 1]);
        let e = check(&t);
        assert!(
            e.starts_with("line 1: the hash member must come last"),
            "{e}"
        );
        let mut t = all.clone();
        t[0] = t[0].replacen(",\"seq\"", ", \"seq\"", 1);
        assert!(
            check(&t).starts_with("line 1 (seq 1): its hash does not match"),
            "space"
        );

        // Removing the newest records, or rewriting a tail with every hash recomputed, leaves a
        // consistent log: only a checkpoint tells.
        write_lines(&path, &all);
        let head = verify(&path, &[]).unwrap().head;
        write_lines(&path, &all[..3]);
        let short = verify(&path, &[]).unwrap();
        assert_eq!(short.records, 3);
        let e = verify(&path, std::slice::from_ref(&head))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the log ends at seq 3: records were removed"),
            "{e}"
        );
        let mut t = all[..4].to_vec();
        t.push(forge(Some(&all[3]), 5, "rewriter"));
        write_lines(&path, &t);
        verify(&path, &[]).unwrap();
        let e = verify(&path, std::slice::from_ref(&head))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("checkpoint {head}: the log's record 5 has hash")),
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
    fn checkpoints_parse() {
        let h: Head = format!("12:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(h.seq, 12);
        assert_eq!(h.to_string(), format!("12:{}", "ab".repeat(32)));
        for bad in ["", "12", "x:ab", &format!("1:{}", "AB".repeat(32)), "1:abc"] {
            assert!(bad.parse::<Head>().is_err(), "{bad:?}");
        }
    }
}
