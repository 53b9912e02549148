//! The audit chain of `spec/audit-log.md`, shared by the recorder's log file and central's
//! store: the actions, the record and its canonical bytes and hash, the head (`SEQ:HASH`),
//! the chain verifier with its checkpoints, and the signed checkpoints a log's keeper issues.
//! Where the lines live (a file, a table) is the caller's business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::id::CameraId;
use crate::text::check_text;
use crate::wire::SignedCheckpoint;
use crate::{Error, bail, err};

/// The record format version this build writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The longest line, newline included.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The `prev` of the first record.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The first line of a checkpoint's signed bytes.
pub const CHECKPOINT_FORMAT: &str = "vms-audit-checkpoint/1";
/// The longest actor, in characters.
const MAX_ACTOR_CHARS: usize = 128;

/// What was done: the one list of actions, for recorders and central alike.
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
    /// A user logged in to central.
    Login,
    /// A login was refused.
    LoginFailed,
    Logout,
    /// Central issued a media token.
    TokenIssued,
    UserCreated,
    UserChanged,
    UserDeleted,
    /// A recorder enrolled with central and got its certificate.
    RecorderEnrolled,
    EnrolmentTokenCreated,
    /// Central relayed media from a recorder to a client that cannot reach it.
    Proxy,
}

impl Action {
    /// Every action, in the order above.
    pub const ALL: [Action; 20] = [
        Action::Export,
        Action::EvidenceExport,
        Action::HoldPlaced,
        Action::HoldReleased,
        Action::CameraAdded,
        Action::CameraChanged,
        Action::CameraRemoved,
        Action::Playback,
        Action::Live,
        Action::Snapshot,
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::TokenIssued,
        Action::UserCreated,
        Action::UserChanged,
        Action::UserDeleted,
        Action::RecorderEnrolled,
        Action::EnrolmentTokenCreated,
        Action::Proxy,
    ];

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
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::TokenIssued => "token_issued",
            Action::UserCreated => "user_created",
            Action::UserChanged => "user_changed",
            Action::UserDeleted => "user_deleted",
            Action::RecorderEnrolled => "recorder_enrolled",
            Action::EnrolmentTokenCreated => "enrolment_token_created",
            Action::Proxy => "proxy",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(s: &str) -> Result<Action, Error> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| err!(InvalidArgument, "action: {s:?} is not an audit action"))
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
    /// An [`Action`]'s name, or one a later version added: the chain does not depend on it.
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

/// A record made by [`seal`] and its stored line.
#[derive(Clone, Debug)]
pub struct Sealed {
    pub record: Record,
    /// The line as it is stored, without its newline.
    pub line: String,
}

/// Makes the record that follows `prev`: its time (`time` to the millisecond), its canonical
/// bytes and hash, and its line. `actor` is who did it (1 to 128 characters, no control
/// characters); the line must fit in [`MAX_LINE_BYTES`] with its newline.
pub fn seal(
    prev: &Head,
    time: jiff::Timestamp,
    actor: &str,
    action: Action,
    camera: Option<CameraId>,
    details: Map<String, Value>,
) -> Result<Sealed, Error> {
    check_text("actor", actor, MAX_ACTOR_CHARS)?;
    let seq = prev.seq.checked_add(1).ok_or_else(|| {
        err!(
            ResourceExhausted,
            "no sequence number left after {}",
            prev.seq
        )
    })?;
    let time = format_time(time);
    let mut line = serde_json::to_string(&Body {
        version: RECORD_VERSION,
        seq,
        time: &time,
        actor,
        action: action.as_str(),
        camera,
        details: &details,
        prev: &prev.hash,
    })
    .map_err(|e| err!(Internal, "serialising a record: {e}"))?;
    let hash = crate::hex::sha256(line.as_bytes());
    // The canonical bytes end with the object's closing brace: `hash` goes just before it.
    line.pop();
    line.push_str(&format!(",\"hash\":\"{hash}\"}}"));
    if line.len() + 1 > MAX_LINE_BYTES {
        bail!(
            InvalidArgument,
            "details: the record would take {} bytes, more than {MAX_LINE_BYTES}",
            line.len() + 1
        );
    }
    let record = Record {
        version: RECORD_VERSION,
        seq,
        time,
        actor: actor.to_owned(),
        action: action.as_str().to_owned(),
        camera,
        details,
        prev: prev.hash.clone(),
        hash,
    };
    Ok(Sealed { record, line })
}

/// RFC 3339 UTC to the millisecond, as records and checkpoints carry it.
fn format_time(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.as_millisecond())
        .unwrap_or(t)
        .to_string()
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What is wrong with one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not a well-formed record of this version.
    Malformed(String),
    /// A record whose hash does not match its content: the record of this `seq` was edited.
    Edited(u64),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Malformed(why) => f.write_str(why),
            LineError::Edited(seq) => {
                write!(f, "record {seq}: its hash does not match its content")
            }
        }
    }
}

impl LineError {
    /// The violation of the log whose line number `line` this is.
    fn at(self, line: u64) -> Violation {
        match self {
            LineError::Malformed(why) => Violation::Malformed { line, why },
            LineError::Edited(seq) => Violation::Edited { line, seq },
        }
    }
}

impl Record {
    /// Parses a line (without its newline) and checks its length and its own hash.
    pub fn parse(line: &[u8]) -> Result<Record, LineError> {
        if line.len() + 1 > MAX_LINE_BYTES {
            return Err(LineError::Malformed(format!(
                "longer than {MAX_LINE_BYTES} bytes"
            )));
        }
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

    /// The log's head once this record is its newest.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// The newest record's sequence number and hash (`0` and [`ZERO_HASH`] for an empty log):
/// what a checkpoint kept outside the log pins. Written `SEQ:HASH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// The head of an empty log.
    pub fn empty() -> Head {
        Head {
            seq: 0,
            hash: ZERO_HASH.to_owned(),
        }
    }
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

/// A log that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub head: Head,
    /// Bytes of a torn last line (a crash mid-append; cut off at the next open). Only a file
    /// has one.
    pub torn_tail_bytes: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}, chain intact, head {}",
            self.records,
            if self.records == 1 {
                "record"
            } else {
                "records"
            },
            self.head
        )
    }
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

/// Checks a log line by line, from its first: every record's hash, `seq` and `prev`, and each
/// checkpoint (the record of its `seq` must be there with its hash, and the log must reach
/// it). Without a checkpoint, records removed from the end, or a tail rewritten with every
/// hash recomputed, cannot be told from a shorter log: that is what checkpoints held outside
/// the log are for.
pub struct Verifier<'a> {
    checkpoints: &'a [Head],
    /// The checkpoints by `seq` (stably, so that ties keep their given order).
    by_seq: Vec<&'a Head>,
    /// The first of `by_seq` not yet passed.
    next: usize,
    head: Head,
    line: u64,
}

impl<'a> Verifier<'a> {
    pub fn new(checkpoints: &'a [Head]) -> Verifier<'a> {
        let mut by_seq: Vec<&Head> = checkpoints.iter().collect();
        by_seq.sort_by_key(|c| c.seq);
        Verifier {
            checkpoints,
            by_seq,
            next: 0,
            head: Head::empty(),
            line: 0,
        }
    }

    /// Checks the next line (without its newline).
    pub fn push(&mut self, line: &[u8]) -> Result<(), Violation> {
        self.line += 1;
        let line_no = self.line;
        let record = Record::parse(line).map_err(|e| e.at(line_no))?;
        let expected = self.head.seq + 1;
        if record.seq != expected {
            return Err(Violation::OutOfSequence {
                line: line_no,
                expected,
                found: record.seq,
            });
        }
        if record.prev != self.head.hash {
            return Err(Violation::BrokenChain {
                line: line_no,
                seq: record.seq,
            });
        }
        while let Some(c) = self.by_seq.get(self.next).filter(|c| c.seq <= record.seq) {
            self.next += 1;
            if c.seq == record.seq && c.hash != record.hash {
                return Err(Violation::Checkpoint {
                    checkpoint: (*c).clone(),
                    why: format!("the log's record {} has hash {}", record.seq, record.hash),
                });
            }
        }
        self.head = record.head();
        Ok(())
    }

    /// Ends the log: a checkpoint beyond its last record means records were removed from its
    /// end.
    pub fn finish(self) -> Result<Summary, Violation> {
        if let Some(c) = self.checkpoints.iter().find(|c| c.seq > self.head.seq) {
            return Err(Violation::Checkpoint {
                checkpoint: c.clone(),
                why: format!(
                    "the log ends at seq {}: records were removed from its end",
                    self.head.seq
                ),
            });
        }
        Ok(Summary {
            records: self.head.seq,
            head: self.head,
            torn_tail_bytes: 0,
        })
    }
}

/// Checks a whole log given as its lines (without newlines) in order, as [`Verifier`] does;
/// a line that could not be read makes the log [`Violation::Unreadable`].
pub fn verify_lines<L: AsRef<[u8]>>(
    lines: impl IntoIterator<Item = Result<L, Error>>,
    checkpoints: &[Head],
) -> Result<Summary, Violation> {
    let mut v = Verifier::new(checkpoints);
    for line in lines {
        v.push(line.map_err(Violation::Unreadable)?.as_ref())?;
    }
    v.finish()
}

/// The bytes a checkpoint's signature covers (`spec/audit-log.md`, "Checkpoints").
pub fn checkpoint_bytes(log: &str, head: &Head, time: &str) -> Vec<u8> {
    format!(
        "{CHECKPOINT_FORMAT}\n{log}\n{}\n{}\n{time}\n",
        head.seq, head.hash
    )
    .into_bytes()
}

impl SignedCheckpoint {
    /// Signs `head` of the log named `log` as of `time` with `sign` (an Ed25519 signer).
    pub fn sign(
        log: &str,
        head: &Head,
        time: jiff::Timestamp,
        sign: impl Fn(&[u8]) -> [u8; 64],
    ) -> SignedCheckpoint {
        let time = format_time(time);
        let signature = sign(&checkpoint_bytes(log, head, &time));
        SignedCheckpoint {
            log: log.to_owned(),
            seq: head.seq,
            hash: head.hash.clone(),
            time,
            signature: signature.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The head it pins.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Checks its fields and that `key` made its signature.
    pub fn verify(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(), Error> {
        let what = || {
            format!(
                "checkpoint {}:{} of log {:?}",
                self.seq, self.hash, self.log
            )
        };
        check_text("log", &self.log, MAX_ACTOR_CHARS).map_err(|e| e.context(what()))?;
        if !is_hash(&self.hash) {
            bail!(
                InvalidArgument,
                "{}: hash must be 64 lower-case hex digits",
                what()
            );
        }
        if jiff::Timestamp::from_str(&self.time).is_err() {
            bail!(
                InvalidArgument,
                "{}: time {:?} is not RFC 3339",
                what(),
                self.time
            );
        }
        let signature = decode_signature(&self.signature).ok_or_else(|| {
            err!(
                InvalidArgument,
                "{}: signature must be 128 lower-case hex digits",
                what()
            )
        })?;
        key.verify_strict(
            &checkpoint_bytes(&self.log, &self.head(), &self.time),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| {
            err!(
                PermissionDenied,
                "{}: the signature does not verify with the key given",
                what()
            )
        })
    }
}

fn decode_signature(hex: &str) -> Option<[u8; 64]> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 128 {
        return None;
    }
    let mut out = [0u8; 64];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn details(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The line of a well-formed record chained after `prev`: what anyone who can write the
    /// log could make, since the chain has no secret.
    fn forge(prev: &Head, actor: &str, i: u64) -> Sealed {
        let t = at("2026-11-26T12:00:00Z");
        seal(
            prev,
            t,
            actor,
            Action::Playback,
            None,
            details(json!({"i": i})),
        )
        .unwrap()
    }

    /// A log of `n` records.
    fn log_of(n: u64) -> Vec<String> {
        let mut head = Head::empty();
        (0..n)
            .map(|i| {
                let s = forge(&head, "op", i);
                head = s.record.head();
                s.line
            })
            .collect()
    }

    fn check(lines: &[String], checkpoints: &[Head]) -> Result<Summary, Violation> {
        verify_lines(lines.iter().map(Ok), checkpoints)
    }

    fn fails(lines: &[String], checkpoints: &[Head]) -> String {
        check(lines, checkpoints).unwrap_err().to_string()
    }

    #[test]
    fn canonical_bytes_known_answer() {
        // The hash was computed with sha256sum over the line without its hash member.
        let want = "{\"version\":1,\"seq\":1,\"time\":\"2026-11-26T12:00:00.25Z\",\
            \"actor\":\"local-admin\",\"action\":\"hold_placed\",\"camera\":\"01JD7Q0000000000000000000C\",\
            \"details\":{\"case\":\"2026-017\",\"end\":\"2026-11-26T13:00:00Z\"},\
            \"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\
            \"hash\":\"0ace224800095dff47575c5526c35cbc79ffd32573f501ea4d06fe29b5c9b4c5\"}";
        let d = details(json!({"end": "2026-11-26T13:00:00Z", "case": "2026-017"}));
        // Sub-millisecond digits are dropped.
        let s = seal(
            &Head::empty(),
            at("2026-11-26T12:00:00.250999Z"),
            "local-admin",
            Action::HoldPlaced,
            Some("01JD7Q0000000000000000000C".parse().unwrap()),
            d,
        )
        .unwrap();
        assert_eq!(s.line, want);
        assert_eq!(Record::parse(want.as_bytes()), Ok(s.record.clone()));
        assert_eq!(
            s.record.head().to_string(),
            "1:0ace224800095dff47575c5526c35cbc79ffd32573f501ea4d06fe29b5c9b4c5"
        );
        let sum = check(&[want.to_owned()], &[]).unwrap();
        assert_eq!(
            sum.to_string(),
            format!("1 record, chain intact, head {}", s.record.head())
        );
    }

    #[test]
    fn seal_refuses_bad_actors_and_huge_details() {
        let t = at("2026-11-26T12:00:00Z");
        for actor in ["", "a\nb", &"x".repeat(129)] {
            let e = seal(&Head::empty(), t, actor, Action::Live, None, Map::new()).unwrap_err();
            assert!(e.to_string().starts_with("actor:"), "{e}");
        }
        let big = details(json!({"note": "x".repeat(MAX_LINE_BYTES)}));
        let e = seal(&Head::empty(), t, "op", Action::Live, None, big).unwrap_err();
        assert!(e.to_string().starts_with("details:"), "{e}");
        let last = Head {
            seq: u64::MAX,
            hash: ZERO_HASH.into(),
        };
        let e = seal(&last, t, "op", Action::Live, None, Map::new()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::ResourceExhausted);
    }

    #[test]
    fn every_tampering_is_detected() {
        let all = log_of(5);
        let head_of = |line: &str| Record::parse(line.as_bytes()).unwrap().head();
        assert_eq!(check(&all, &[]).unwrap().head, head_of(&all[4]));

        // Edited, hash left alone.
        let mut t = all.clone();
        t[1] = t[1].replace("\"i\":1", "\"i\":9");
        assert!(
            fails(&t, &[]).starts_with("line 2 (seq 2): its hash does not match"),
            "edit"
        );
        // Edited, its own hash recomputed: the next record's prev no longer matches.
        let mut t = all.clone();
        t[1] = forge(&head_of(&all[0]), "someone-else", 1).line;
        assert!(
            fails(&t, &[]).starts_with("line 3 (seq 3): prev is not the hash"),
            "re-hash"
        );
        // Reordered.
        let mut t = all.clone();
        t.swap(1, 2);
        assert!(
            fails(&t, &[]).starts_with("line 2: seq 3 where 2 belongs"),
            "reorder"
        );
        // Deleted.
        let mut t = all.clone();
        t.remove(2);
        assert!(
            fails(&t, &[]).starts_with("line 3: seq 4 where 3 belongs"),
            "delete"
        );
        // Inserted, well-formed and chained to the record before it.
        let mut t = all.clone();
        t.insert(2, forge(&head_of(&all[1]), "intruder", 9).line);
        assert!(
            fails(&t, &[]).starts_with("line 4: seq 3 where 4 belongs"),
            "insert"
        );
        // Duplicated.
        let mut t = all.clone();
        t.insert(2, all[1].clone());
        assert!(
            fails(&t, &[]).starts_with("line 3: seq 2 where 3 belongs"),
            "duplicate"
        );
        // Not a record; a member moved; whitespace added; too long.
        let mut t = all.clone();
        t[0] = "garbage".into();
        assert!(
            fails(&t, &[]).starts_with("line 1: not an audit record"),
            "garbage"
        );
        let mut t = all.clone();
        let moved = t[0].replacen("{\"version\":1,", "{", 1);
        t[0] = format!("{},\"version\":1}}", &moved[..moved.len() - 1]);
        let e = fails(&t, &[]);
        assert!(
            e.starts_with("line 1: the hash member must come last"),
            "{e}"
        );
        let mut t = all.clone();
        t[0] = t[0].replacen(",\"seq\"", ", \"seq\"", 1);
        assert!(
            fails(&t, &[]).starts_with("line 1 (seq 1): its hash does not match"),
            "space"
        );
        let mut t = all.clone();
        t[0] = " ".repeat(MAX_LINE_BYTES);
        assert!(fails(&t, &[]).starts_with("line 1: longer than"), "long");
        // An unreadable line.
        let e = verify_lines(
            [Ok(all[0].as_str()), Err(err!(Unavailable, "disk gone"))],
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, Violation::Unreadable(_)), "{e}");
    }

    #[test]
    fn checkpoints_catch_truncation_and_rewritten_tails() {
        let all = log_of(5);
        let head = check(&all, &[]).unwrap().head;
        let third = check(&all[..3], &[]).unwrap().head;
        // The whole log matches checkpoints of its past and present heads, given in any order.
        let both = [head.clone(), third.clone(), Head::empty()];
        assert_eq!(check(&all, &both).unwrap().head, head);

        // Removing the newest records leaves a consistent log: only a checkpoint tells.
        assert_eq!(check(&all[..3], &[]).unwrap().records, 3);
        let e = fails(&all[..3], std::slice::from_ref(&head));
        assert_eq!(
            e,
            format!("checkpoint {head}: the log ends at seq 3: records were removed from its end")
        );
        assert!(check(&all[..3], std::slice::from_ref(&third)).is_ok());

        // A tail rewritten with every hash recomputed.
        let mut t = all[..4].to_vec();
        t.push(forge(&check(&t, &[]).unwrap().head, "rewriter", 4).line);
        assert!(check(&t, &[]).is_ok());
        let e = fails(&t, &both);
        assert!(
            e.starts_with(&format!("checkpoint {head}: the log's record 5 has hash")),
            "{e}"
        );
        // A checkpoint that does not belong to the log, whatever the log's length.
        let foreign = Head {
            seq: 2,
            hash: "ab".repeat(32),
        };
        let e = fails(&all, std::slice::from_ref(&foreign));
        assert!(
            e.starts_with(&format!("checkpoint {foreign}: the log's record 2")),
            "{e}"
        );
    }

    #[test]
    fn heads_parse() {
        let h: Head = format!("12:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(h.seq, 12);
        assert_eq!(h.to_string(), format!("12:{}", "ab".repeat(32)));
        for bad in ["", "12", "x:ab", &format!("1:{}", "AB".repeat(32)), "1:abc"] {
            assert!(bad.parse::<Head>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn action_names_are_distinct_and_parse_back() {
        let names: std::collections::HashSet<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert!("Live".parse::<Action>().is_err());
    }

    #[test]
    fn signed_checkpoints() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let sign = |b: &[u8]| ed25519_dalek::Signer::sign(&key, b).to_bytes();
        let head: Head = format!("7:{}", "ab".repeat(32)).parse().unwrap();
        let t = at("2026-11-26T12:00:00.123456Z");
        let cp = SignedCheckpoint::sign("01JD7Q0000000000000000000R", &head, t, sign);
        assert_eq!(cp.time, "2026-11-26T12:00:00.123Z");
        assert_eq!(cp.head(), head);
        assert_eq!(
            String::from_utf8(checkpoint_bytes(&cp.log, &head, &cp.time)).unwrap(),
            format!(
                "vms-audit-checkpoint/1\n01JD7Q0000000000000000000R\n7\n{}\n\
                 2026-11-26T12:00:00.123Z\n",
                "ab".repeat(32)
            )
        );
        cp.verify(&key.verifying_key()).unwrap();
        // The wire form round-trips.
        let json = serde_json::to_string(&cp).unwrap();
        let back: SignedCheckpoint = serde_json::from_str(&json).unwrap();
        back.verify(&key.verifying_key()).unwrap();

        let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let e = cp.verify(&other.verifying_key()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("does not verify"), "{e}");
        // Each signed field is covered.
        let edits: [fn(&mut SignedCheckpoint); 4] = [
            |c| c.seq += 1,
            |c| c.hash = "cd".repeat(32),
            |c| c.time = "2026-11-26T12:00:01Z".into(),
            |c| c.log = "central".into(),
        ];
        for edit in edits {
            let mut c = cp.clone();
            edit(&mut c);
            let e = c.verify(&key.verifying_key()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied, "{e}");
        }
        // Malformed fields are refused before the signature is looked at.
        let malformed: [fn(&mut SignedCheckpoint); 5] = [
            |c| c.signature.truncate(126),
            |c| c.signature = c.signature.to_uppercase(),
            |c| c.hash = "AB".repeat(32),
            |c| c.time = "yesterday".into(),
            |c| c.log = "a\nb".into(),
        ];
        for edit in malformed {
            let mut c = cp.clone();
            edit(&mut c);
            let e = c.verify(&key.verifying_key()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        }
    }
}
