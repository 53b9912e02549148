//! Central's audit (`spec/audit-log.md`, "Central"): its own hash-chained log of logins,
//! users, tokens, enrolments, camera changes and proxied media, in the store; the copies of
//! each recorder's log that recorders ship, each record checked to continue the copy so that
//! a resend stores nothing twice; the signed checkpoints of both; the check of it all
//! (`vms-api audit-verify`); and the paged listing the API serves.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use vms_core::audit::{Action, Head, Record, Sealed, Summary, Violation, seal, verify_lines};
use vms_core::id::{CameraId, RecorderId};
use vms_core::wire::SignedCheckpoint;
use vms_core::{Error, bail, err};

use crate::store::{Batch, Store, Table};

/// The name of central's own log in its checkpoints.
pub const CENTRAL_LOG: &str = "central";
/// The most records a page of a listing holds.
pub const MAX_PAGE: usize = 1000;
/// The most records one listing call looks at: a filter that matches little ends a page
/// early, with a cursor, rather than scanning everything in one request.
const MAX_SCAN: usize = 100_000;

/// Central's own log: key = big-endian `seq`, value = the stored line.
const OWN_TABLE: &str = "audit";
/// Recorders' logs: key = recorder id (16 bytes) + big-endian `seq`, value = the line.
const COPIES_TABLE: &str = "audit_copies";
/// Signed checkpoints: key = [`Log::key_prefix`] + big-endian `seq`.
const CHECKPOINTS_TABLE: &str = "audit_checkpoints";
/// A recorder's newest checkpoint that is ahead of central's copy: key = recorder id. It is
/// kept once the copy reaches it.
const PENDING_TABLE: &str = "audit_pending_checkpoints";

/// One of the logs central holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Log {
    /// Central's own.
    Central,
    /// The copy of a recorder's.
    Recorder(RecorderId),
}

impl Log {
    /// Where its checkpoints are kept.
    fn key_prefix(self) -> Vec<u8> {
        match self {
            Log::Central => b"c".to_vec(),
            Log::Recorder(id) => [&b"r"[..], &id.to_bytes()].concat(),
        }
    }
}

impl fmt::Display for Log {
    /// The log's name in its checkpoints: `central`, or the recorder's id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Log::Central => f.write_str(CENTRAL_LOG),
            Log::Recorder(id) => write!(f, "{id}"),
        }
    }
}

fn copy_key(recorder: RecorderId, seq: u64) -> Vec<u8> {
    [&recorder.to_bytes()[..], &seq.to_be_bytes()].concat()
}

fn checkpoint_key(log: Log, seq: u64) -> Vec<u8> {
    [&log.key_prefix()[..], &seq.to_be_bytes()].concat()
}

/// The position of a copy's key: recorder and `seq`.
fn split_copy_key(key: &[u8]) -> Option<(RecorderId, u64)> {
    let (id, seq) = key.split_first_chunk::<16>()?;
    Some((
        RecorderId::from_bytes(*id),
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// The head of the log whose lines sit under `prefix` in `table`: its newest record's.
fn last_head(table: &Table, prefix: &[u8], log: Log) -> Result<Head, Error> {
    let Some((_, line)) = table.last::<String>(prefix)? else {
        return Ok(Head::empty());
    };
    let record = Record::parse(line.as_bytes()).map_err(|e| {
        err!(
            DataLoss,
            "audit log {log}: the newest record is damaged: {e}"
        )
    })?;
    Ok(record.head())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err!(Internal, "audit task: {e}"))?
}

/// Central's audit. Cheap to clone.
#[derive(Clone)]
pub struct Audit(Arc<Inner>);

struct Inner {
    store: Store,
    own: Table,
    copies: Table,
    checkpoints: Table,
    pending: Table,
    /// The head of central's own log, held while appending: appends are one at a time.
    own_head: Mutex<Head>,
    /// One lock per recorder, held while its records or checkpoints are stored.
    recorders: Mutex<HashMap<RecorderId, Arc<Mutex<()>>>>,
}

impl Audit {
    /// Opens the audit tables. The newest record of central's own log gives the next `seq`
    /// and `prev`; if it is damaged, central does not start, since appending after it would
    /// bury the damage.
    pub fn open(store: &Store) -> Result<Audit, Error> {
        let own = store.table(OWN_TABLE)?;
        let own_head = last_head(&own, b"", Log::Central)?;
        Ok(Audit(Arc::new(Inner {
            store: store.clone(),
            own,
            copies: store.table(COPIES_TABLE)?,
            checkpoints: store.table(CHECKPOINTS_TABLE)?,
            pending: store.table(PENDING_TABLE)?,
            own_head: Mutex::new(own_head),
            recorders: Mutex::new(HashMap::new()),
        })))
    }

    /// Appends a record to central's own log; it is durable when this returns. `actor` is who
    /// did it (1 to 128 characters, no control characters). An error means the record may or
    /// may not be in the log: an access that cannot be audited is refused.
    pub async fn append(
        &self,
        actor: &str,
        action: Action,
        camera: Option<CameraId>,
        details: Map<String, Value>,
    ) -> Result<Head, Error> {
        let inner = self.0.clone();
        let actor = actor.to_owned();
        blocking(move || inner.append(&actor, action, camera, details)).await
    }

    /// Stores records a recorder shipped, in order: each must continue central's copy (the
    /// next `seq`, `prev` = the hash before, its own hash right). A record central already
    /// holds, the same line, is skipped, so a resend after a reconnect stores nothing twice.
    /// A record that conflicts with the copy or does not link to it is refused with
    /// `DataLoss`, naming the recorder and the `seq`; the records before it are kept and none
    /// after it. Durable when it returns. Gives the copy's head: where the recorder resumes.
    pub async fn ingest(&self, recorder: RecorderId, lines: &[String]) -> Result<Head, Error> {
        let inner = self.0.clone();
        let lines = lines.to_vec();
        blocking(move || inner.ingest(recorder, &lines)).await
    }

    /// The head of central's own log.
    pub fn own_head(&self) -> Head {
        lock(&self.0.own_head).clone()
    }

    /// The head of central's copy of a recorder's log: the recorder ships the records after
    /// it.
    pub fn head(&self, recorder: RecorderId) -> Result<Head, Error> {
        self.0.copy_head(recorder)
    }

    /// Keeps a recorder's signed checkpoint once `key` (the recorder's certified key) verifies
    /// it. It must match central's copy; a checkpoint ahead of the copy (records appended
    /// while the last batch travelled) is held until the copy reaches it, and checked then.
    pub async fn store_checkpoint(
        &self,
        recorder: RecorderId,
        checkpoint: &SignedCheckpoint,
        key: &VerifyingKey,
    ) -> Result<(), Error> {
        checkpoint.verify(key)?;
        if checkpoint.log != recorder.to_string() {
            bail!(
                InvalidArgument,
                "recorder {recorder}: sent a checkpoint of log {:?}",
                checkpoint.log
            );
        }
        let inner = self.0.clone();
        let checkpoint = checkpoint.clone();
        blocking(move || inner.store_checkpoint(recorder, checkpoint)).await
    }

    /// The newest checkpoint kept of `log`.
    pub fn latest_checkpoint(&self, log: Log) -> Result<Option<SignedCheckpoint>, Error> {
        Ok(self
            .0
            .checkpoints
            .last::<SignedCheckpoint>(log.key_prefix())?
            .map(|(_, c)| c))
    }

    /// Signs a checkpoint of central's own log with `key` (the national root key) and keeps
    /// it, durably.
    pub async fn checkpoint_own(&self, key: &SigningKey) -> Result<SignedCheckpoint, Error> {
        let inner = self.0.clone();
        let key = key.clone();
        blocking(move || inner.checkpoint_own(&key)).await
    }

    /// A page of records of central's own log and the recorders' copies that match
    /// `filter`: central's first, then each recorder's in id order, each oldest first.
    /// `cursor` is the `next` of the page before; `limit` is 1 to [`MAX_PAGE`].
    pub async fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, Error> {
        if !(1..=MAX_PAGE).contains(&limit) {
            bail!(InvalidArgument, "limit: {limit} is outside 1..={MAX_PAGE}");
        }
        let after = cursor.map(Position::parse).transpose()?;
        let inner = self.0.clone();
        let filter = filter.clone();
        blocking(move || inner.list(&filter, after, limit, MAX_SCAN)).await
    }
}

impl Inner {
    fn append(
        &self,
        actor: &str,
        action: Action,
        camera: Option<CameraId>,
        details: Map<String, Value>,
    ) -> Result<Head, Error> {
        let mut head = lock(&self.own_head);
        let Sealed { record, line } = seal(
            &head,
            jiff::Timestamp::now(),
            actor,
            action,
            camera,
            details,
        )?;
        if !self.own.put_new(record.seq.to_be_bytes(), &line)? {
            bail!(
                DataLoss,
                "audit log {}: a record {} is stored already",
                Log::Central,
                record.seq
            );
        }
        // In the table now, durable or not: the chain goes on from it.
        *head = record.head();
        self.store
            .flush()
            .map_err(|e| e.context(format!("audit log {}: record {}", Log::Central, record.seq)))?;
        Ok(head.clone())
    }

    fn recorder_lock(&self, recorder: RecorderId) -> Arc<Mutex<()>> {
        lock(&self.recorders).entry(recorder).or_default().clone()
    }

    fn copy_head(&self, recorder: RecorderId) -> Result<Head, Error> {
        last_head(&self.copies, &recorder.to_bytes(), Log::Recorder(recorder))
    }

    fn ingest(&self, recorder: RecorderId, lines: &[String]) -> Result<Head, Error> {
        let mutex = self.recorder_lock(recorder);
        let _one_at_a_time = lock(&mutex);
        let stored = self.copy_head(recorder)?;
        let mut head = stored.clone();
        let mut new: Vec<&str> = Vec::new();
        let mut refused = None;
        for line in lines {
            let known = |seq: u64| -> Result<Option<String>, Error> {
                if seq > stored.seq {
                    // Accepted earlier in this batch.
                    return Ok(new
                        .get((seq - stored.seq - 1) as usize)
                        .map(|l| l.to_string()));
                }
                self.copies.get(copy_key(recorder, seq))
            };
            match check_shipped(recorder, &head, line, known) {
                Ok(Some(record)) => {
                    head = record.head();
                    new.push(line);
                }
                Ok(None) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if !new.is_empty() {
            let mut batch = Batch::default();
            for (seq, line) in (stored.seq + 1..).zip(&new) {
                batch.put(copy_key(recorder, seq), line)?;
            }
            self.copies.apply(batch)?;
            let settled = self.settle_pending(recorder, &head);
            self.store.flush()?;
            settled?;
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(head),
        }
    }

    /// Keeps the checkpoint held back for `recorder` once its copy (now ending at `head`)
    /// reaches it.
    fn settle_pending(&self, recorder: RecorderId, head: &Head) -> Result<(), Error> {
        let key = recorder.to_bytes();
        match self.pending.get::<SignedCheckpoint>(key)? {
            Some(c) if c.seq <= head.seq => {
                self.pending.remove(key)?;
                self.keep_checkpoint(recorder, &c)
            }
            _ => Ok(()),
        }
    }

    fn store_checkpoint(&self, recorder: RecorderId, c: SignedCheckpoint) -> Result<(), Error> {
        let mutex = self.recorder_lock(recorder);
        let _one_at_a_time = lock(&mutex);
        let head = self.copy_head(recorder)?;
        if c.seq > head.seq {
            let key = recorder.to_bytes();
            let newer = self
                .pending
                .get::<SignedCheckpoint>(key)?
                .is_none_or(|p| p.seq <= c.seq);
            if newer {
                self.pending.put(key, &c)?;
            }
        } else {
            self.keep_checkpoint(recorder, &c)?;
        }
        self.store.flush()
    }

    /// Checks a recorder's checkpoint against central's copy and keeps it.
    fn keep_checkpoint(&self, recorder: RecorderId, c: &SignedCheckpoint) -> Result<(), Error> {
        let at = if c.seq == 0 {
            Some(Head::empty())
        } else {
            self.copies
                .get::<String>(copy_key(recorder, c.seq))?
                .and_then(|line| Record::parse(line.as_bytes()).ok())
                .map(|r| r.head())
        };
        if at.as_ref() != Some(&c.head()) {
            bail!(
                DataLoss,
                "recorder {recorder}: its checkpoint {} does not match central's copy, whose \
                 record {} is {}: the recorder's log or central's copy was changed",
                c.head(),
                c.seq,
                at.map_or("missing or damaged".to_owned(), |h| format!(
                    "hashed {}",
                    h.hash
                ))
            );
        }
        self.checkpoints
            .put(checkpoint_key(Log::Recorder(recorder), c.seq), c)
    }

    fn checkpoint_own(&self, key: &SigningKey) -> Result<SignedCheckpoint, Error> {
        let head = lock(&self.own_head);
        let c = SignedCheckpoint::sign(CENTRAL_LOG, &head, jiff::Timestamp::now(), |b| {
            key.sign(b).to_bytes()
        });
        self.checkpoints
            .put(checkpoint_key(Log::Central, c.seq), &c)?;
        self.store.flush()?;
        Ok(c)
    }

    /// A page, having looked at `budget` records at most.
    fn list(
        &self,
        filter: &Filter,
        after: Option<Position>,
        limit: usize,
        budget: usize,
    ) -> Result<Page, Error> {
        let mut listing = Listing {
            filter,
            limit,
            budget,
            page: Page {
                entries: Vec::new(),
                next: None,
            },
        };
        // Central's log first, unless the cursor is past it or the filter is elsewhere.
        let own_from = match after {
            None => Some(Vec::new()),
            Some(Position::Central(seq)) => Some([&seq.to_be_bytes()[..], &[0]].concat()),
            Some(Position::Recorder(..)) => None,
        };
        if let (Some(from), None | Some(Log::Central)) = (own_from, filter.log) {
            for kv in self.own.range::<String>(&from, &[0xff; 9]) {
                let (key, line) = kv?;
                let seq = key
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| bad_key(OWN_TABLE, &key))?;
                if listing.visit(Log::Central, &line, Position::Central(seq))? {
                    return Ok(listing.page);
                }
            }
        }
        let (from, to) = match filter.log {
            Some(Log::Central) => return Ok(listing.page),
            Some(Log::Recorder(id)) => (
                id.to_bytes().to_vec(),
                [&id.to_bytes()[..], &[0xff; 9]].concat(),
            ),
            None => (Vec::new(), vec![0xff; 25]),
        };
        let from = match after {
            Some(Position::Recorder(id, seq)) => [copy_key(id, seq), vec![0]].concat().max(from),
            _ => from,
        };
        if from >= to {
            return Ok(listing.page);
        }
        for kv in self.copies.range::<String>(&from, &to) {
            let (key, line) = kv?;
            let (id, seq) = split_copy_key(&key).ok_or_else(|| bad_key(COPIES_TABLE, &key))?;
            if listing.visit(Log::Recorder(id), &line, Position::Recorder(id, seq))? {
                return Ok(listing.page);
            }
        }
        Ok(listing.page)
    }
}

fn bad_key(table: &str, key: &[u8]) -> Error {
    err!(
        DataLoss,
        "store table {table}: a key of {} bytes",
        key.len()
    )
}

/// Checks one shipped line against the copy whose head is `head`: the record to store, or
/// `None` for one stored already. `known` gives the line stored at a `seq`.
fn check_shipped(
    recorder: RecorderId,
    head: &Head,
    line: &str,
    known: impl Fn(u64) -> Result<Option<String>, Error>,
) -> Result<Option<Record>, Error> {
    let record = Record::parse(line.as_bytes()).map_err(|e| {
        err!(
            DataLoss,
            "recorder {recorder}: the record shipped after seq {} is refused: {e}",
            head.seq
        )
    })?;
    let seq = record.seq;
    if seq <= head.seq {
        if known(seq)?.as_deref() == Some(line) {
            return Ok(None);
        }
        bail!(
            DataLoss,
            "recorder {recorder}: record {seq} conflicts with the one central holds: the \
             recorder's log or central's copy was changed"
        );
    }
    if seq != head.seq + 1 {
        bail!(
            DataLoss,
            "recorder {recorder}: record {seq} does not follow central's copy, which ends at \
             seq {}: records are missing",
            head.seq
        );
    }
    if record.prev != head.hash {
        bail!(
            DataLoss,
            "recorder {recorder}: record {seq}: prev is not the hash of record {} in central's \
             copy: the recorder's log or central's copy was changed",
            head.seq
        );
    }
    Ok(Some(record))
}

/// Which records a listing gives. Every field left `None` matches all.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub log: Option<Log>,
    pub actor: Option<String>,
    pub camera: Option<CameraId>,
    pub action: Option<Action>,
    /// Records at or after this time.
    pub from: Option<jiff::Timestamp>,
    /// Records before this time.
    pub to: Option<jiff::Timestamp>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        let time = || r.time.parse::<jiff::Timestamp>().ok();
        self.actor.as_ref().is_none_or(|a| *a == r.actor)
            && self.camera.is_none_or(|c| r.camera == Some(c))
            && self.action.is_none_or(|a| a.as_str() == r.action)
            && self
                .from
                .is_none_or(|from| time().is_some_and(|t| t >= from))
            && self.to.is_none_or(|to| time().is_some_and(|t| t < to))
    }
}

/// A record of one of the logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub log: Log,
    pub record: Record,
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// The cursor of the next page; `None` at the end.
    pub next: Option<String>,
}

/// A listing under way.
struct Listing<'a> {
    filter: &'a Filter,
    limit: usize,
    /// How many more records it may look at.
    budget: usize,
    page: Page,
}

impl Listing<'_> {
    /// Looks at one record; true once the page is done.
    fn visit(&mut self, log: Log, line: &str, at: Position) -> Result<bool, Error> {
        let record = Record::parse(line.as_bytes())
            .map_err(|e| err!(DataLoss, "audit log {log}: the record at {at}: {e}"))?;
        if self.filter.matches(&record) {
            self.page.entries.push(Entry { log, record });
        }
        self.budget = self.budget.saturating_sub(1);
        let done = self.page.entries.len() == self.limit || self.budget == 0;
        if done {
            self.page.next = Some(at.to_string());
        }
        Ok(done)
    }
}

/// Where a listing stopped: a cursor, written `c.SEQ` or `r.RECORDER.SEQ`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Position {
    Central(u64),
    Recorder(RecorderId, u64),
}

impl Position {
    fn parse(s: &str) -> Result<Position, Error> {
        let bad = || {
            err!(
                InvalidArgument,
                "cursor: {s:?} is not a cursor this listing gave"
            )
        };
        let parts: Vec<&str> = s.split('.').collect();
        match parts[..] {
            ["c", seq] => Ok(Position::Central(seq.parse().map_err(|_| bad())?)),
            ["r", id, seq] => Ok(Position::Recorder(
                id.parse().map_err(|_| bad())?,
                seq.parse().map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Central(seq) => write!(f, "c.{seq}"),
            Position::Recorder(id, seq) => write!(f, "r.{id}.{seq}"),
        }
    }
}

/// The keys that sign the checkpoints central keeps: the national root's (central's own
/// log) and each recorder's certified key.
pub struct Keys {
    pub central: VerifyingKey,
    pub recorders: HashMap<RecorderId, VerifyingKey>,
}

/// One log that checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub summary: Summary,
    /// How many signed checkpoints it matched.
    pub checkpoints: usize,
}

/// The verdict on every log central holds.
#[derive(Debug)]
pub struct Report {
    /// Central's own log first, then each recorder's copy in id order.
    pub logs: Vec<(Log, Result<Verified, Violation>)>,
}

impl Report {
    /// `VERIFIED`'s or `FAILED`'s text for `vms-api audit-verify`: every log, the failed
    /// ones first.
    pub fn verdict(&self) -> Result<String, String> {
        let failed: Vec<String> = self
            .logs
            .iter()
            .filter_map(|(log, v)| v.as_ref().err().map(|e| format!("audit log {log}: {e}")))
            .collect();
        let passed: Vec<String> = self
            .logs
            .iter()
            .filter_map(|(log, v)| {
                v.as_ref().ok().map(|v| {
                    format!(
                        "audit log {log}: {}, {} signed checkpoints matched",
                        v.summary, v.checkpoints
                    )
                })
            })
            .collect();
        if failed.is_empty() {
            Ok(passed.join("; "))
        } else {
            Err([failed, passed].concat().join("; "))
        }
    }
}

/// Checks central's own log and every recorder's copy: each chain, and each against the
/// signed checkpoints kept of it (each signature checked with `keys`; a copy that ends
/// before its newest checkpoint was cut). Blocking: it reads every record.
pub fn verify_all(store: &Store, keys: &Keys) -> Result<Report, Error> {
    let own = store.table(OWN_TABLE)?;
    let copies = store.table(COPIES_TABLE)?;
    let checkpoints = store.table(CHECKPOINTS_TABLE)?;
    // The recorders with a copy or a checkpoint: a copy removed whole still has checkpoints.
    let mut recorders: Vec<RecorderId> = Vec::new();
    let mut from = Vec::new();
    loop {
        let Some((key, _)) = copies
            .range::<String>(&from, &[0xff; 25])
            .next()
            .transpose()?
        else {
            break;
        };
        let (id, _) = split_copy_key(&key).ok_or_else(|| bad_key(COPIES_TABLE, &key))?;
        recorders.push(id);
        // Past this recorder's keys.
        from = [&id.to_bytes()[..], &[0xff; 9]].concat();
    }
    for kv in checkpoints.scan::<SignedCheckpoint>(b"r") {
        let (key, _) = kv?;
        let id = key
            .get(1..17)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad_key(CHECKPOINTS_TABLE, &key))?;
        recorders.push(RecorderId::from_bytes(id));
    }
    recorders.sort();
    recorders.dedup();
    let logs = std::iter::once(Log::Central)
        .chain(recorders.into_iter().map(Log::Recorder))
        .map(|log| {
            let (table, prefix, key) = match log {
                Log::Central => (&own, Vec::new(), Some(&keys.central)),
                Log::Recorder(id) => (&copies, id.to_bytes().to_vec(), keys.recorders.get(&id)),
            };
            let verdict = signed_heads(&checkpoints, log, key).and_then(|heads| {
                let lines = table
                    .scan::<String>(prefix)
                    .map(|kv| kv.map(|(_, line)| line));
                Ok(Verified {
                    summary: verify_lines(lines, &heads)?,
                    checkpoints: heads.len(),
                })
            });
            (log, verdict)
        })
        .collect();
    Ok(Report { logs })
}

/// The heads that the checkpoints kept of `log` pin, each signature checked with `key`.
fn signed_heads(
    checkpoints: &Table,
    log: Log,
    key: Option<&VerifyingKey>,
) -> Result<Vec<Head>, Violation> {
    let mut heads = Vec::new();
    for kv in checkpoints.scan::<SignedCheckpoint>(log.key_prefix()) {
        let (_, c) = kv.map_err(Violation::Unreadable)?;
        let why = match key {
            None => Some("no key to check its signature: the recorder is not known".to_owned()),
            Some(_) if c.log != log.to_string() => Some(format!("it is of log {:?}", c.log)),
            Some(key) => c.verify(key).err().map(|e| e.to_string()),
        };
        if let Some(why) = why {
            return Err(Violation::Checkpoint {
                checkpoint: c.head(),
                why,
            });
        }
        heads.push(c.head());
    }
    Ok(heads)
}

/// What `vms-api audit-verify` prints after `VERIFIED: ` or `FAILED: `.
pub fn verify_command(store: &Store, keys: &Keys) -> Result<String, String> {
    verify_all(store, keys)
        .map_err(|e| format!("reading the audit tables: {e}"))?
        .verdict()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vms_core::ErrorKind;

    use super::*;

    const CAMERA: &str = "01JD7Q0000000000000000000C";
    const RECORDER: &str = "01JD7Q0000000000000000000R";

    fn details(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn camera() -> CameraId {
        CAMERA.parse().unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        audit: Audit,
        root: SigningKey,
        recorder: RecorderId,
        recorder_key: SigningKey,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("store")).unwrap();
            let audit = Audit::open(&store).unwrap();
            Fixture {
                _dir: dir,
                store,
                audit,
                root: SigningKey::from_bytes(&[1; 32]),
                recorder: RECORDER.parse().unwrap(),
                recorder_key: SigningKey::from_bytes(&[2; 32]),
            }
        }

        /// Central restarted: the store and the audit opened anew.
        fn reopen(self) -> Fixture {
            let Fixture {
                _dir,
                store,
                audit,
                root,
                recorder,
                recorder_key,
            } = self;
            drop((audit, store));
            let store = Store::open(&_dir.path().join("store")).unwrap();
            let audit = Audit::open(&store).unwrap();
            Fixture {
                _dir,
                store,
                audit,
                root,
                recorder,
                recorder_key,
            }
        }

        fn keys(&self) -> Keys {
            Keys {
                central: self.root.verifying_key(),
                recorders: HashMap::from([(self.recorder, self.recorder_key.verifying_key())]),
            }
        }

        /// The recorder's checkpoint of `head`.
        fn recorder_checkpoint(&self, head: &Head) -> SignedCheckpoint {
            SignedCheckpoint::sign(
                &self.recorder.to_string(),
                head,
                jiff::Timestamp::now(),
                |b| self.recorder_key.sign(b).to_bytes(),
            )
        }

        fn table(&self, name: &'static str) -> Table {
            self.store.table(name).unwrap()
        }

        /// The verdict on one log, as its text.
        fn verdict(&self, log: Log) -> Result<String, String> {
            let report = verify_all(&self.store, &self.keys()).unwrap();
            let (_, v) = report.logs.into_iter().find(|(l, _)| *l == log).unwrap();
            v.map(|v| v.summary.to_string()).map_err(|e| e.to_string())
        }
    }

    /// A recorder's log of `n` records, one a minute from 12:00, chained from `prev`.
    fn recorder_lines(prev: &Head, n: u64, actor: &str) -> Vec<String> {
        let mut head = prev.clone();
        (0..n)
            .map(|i| {
                let minute = head.seq;
                let time: jiff::Timestamp =
                    format!("2026-11-26T12:{minute:02}:00Z").parse().unwrap();
                let (action, cam) = if i % 2 == 0 {
                    (Action::Live, Some(camera()))
                } else {
                    (Action::Export, None)
                };
                let s = seal(&head, time, actor, action, cam, details(json!({"i": i}))).unwrap();
                head = s.record.head();
                s.line
            })
            .collect()
    }

    fn head_of(line: &str) -> Head {
        Record::parse(line.as_bytes()).unwrap().head()
    }

    async fn central_log(f: &Fixture, n: u64) -> Head {
        let mut head = Head::empty();
        for i in 0..n {
            head = f
                .audit
                .append("admin", Action::UserCreated, None, details(json!({"i": i})))
                .await
                .unwrap();
        }
        head
    }

    #[tokio::test]
    async fn central_appends_chain_and_survive_a_restart() {
        let f = Fixture::new();
        let a = f
            .audit
            .append("admin", Action::Login, None, Map::new())
            .await
            .unwrap();
        let b = f
            .audit
            .append("admin", Action::CameraAdded, Some(camera()), Map::new())
            .await
            .unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        let e = f
            .audit
            .append("", Action::Logout, None, Map::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let f = f.reopen();
        let c = f
            .audit
            .append("op", Action::Proxy, Some(camera()), Map::new())
            .await
            .unwrap();
        assert_eq!(c.seq, 3);
        let line: String = f.table(OWN_TABLE).get(3u64.to_be_bytes()).unwrap().unwrap();
        let r = Record::parse(line.as_bytes()).unwrap();
        assert_eq!((r.prev, r.action.as_str()), (b.hash, "proxy"));
        assert_eq!(
            f.verdict(Log::Central).unwrap(),
            format!("3 records, chain intact, head {c}")
        );
    }

    #[tokio::test]
    async fn a_damaged_newest_record_stops_open() {
        let f = Fixture::new();
        central_log(&f, 2).await;
        let own = f.table(OWN_TABLE);
        let line: String = own.get(2u64.to_be_bytes()).unwrap().unwrap();
        own.put(2u64.to_be_bytes(), &line.replace("\"i\":1", "\"i\":5"))
            .unwrap();
        let e = Audit::open(&f.store).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::DataLoss);
        assert!(
            e.to_string().contains("record 2: its hash does not match"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn resends_are_skipped_and_breaks_refused() {
        let f = Fixture::new();
        let r = f.recorder;
        let lines = recorder_lines(&Head::empty(), 8, "op");
        assert_eq!(f.audit.head(r).unwrap(), Head::empty());
        let h = f.audit.ingest(r, &lines[..3]).await.unwrap();
        assert_eq!(h, head_of(&lines[2]));
        // A resend from an older cursor: the records central holds are skipped.
        let h = f.audit.ingest(r, &lines[1..5]).await.unwrap();
        assert_eq!(h, head_of(&lines[4]));
        let h = f.audit.ingest(r, &lines[..5]).await.unwrap();
        assert_eq!(h, head_of(&lines[4]));
        assert_eq!(f.audit.head(r).unwrap(), h);
        let stored: Vec<String> = f
            .table(COPIES_TABLE)
            .scan(r.to_bytes())
            .map(|kv| kv.unwrap().1)
            .collect();
        assert_eq!(stored, lines[..5]);

        let refused = |e: Error, what: &str| {
            assert_eq!(e.kind(), ErrorKind::DataLoss, "{e}");
            let e = e.to_string();
            assert!(
                e.starts_with(&format!("recorder {r}: ")) && e.contains(what),
                "{e}"
            );
        };
        // A gap: record 6 missing.
        let e = f.audit.ingest(r, &lines[6..7]).await.unwrap_err();
        refused(
            e,
            "record 7 does not follow central's copy, which ends at seq 5",
        );
        // A record 3 other than the one central holds, properly chained to record 2.
        let other = recorder_lines(&head_of(&lines[1]), 1, "someone-else");
        let e = f.audit.ingest(r, &other).await.unwrap_err();
        refused(e, "record 3 conflicts with the one central holds");
        // A record 6 chained to another record 5.
        let fork = recorder_lines(&head_of(&lines[3]), 2, "forger");
        let e = f.audit.ingest(r, &fork[1..]).await.unwrap_err();
        refused(e, "record 6: prev is not the hash of record 5");
        // An edited record.
        let edited = lines[5].replace("\"i\":5", "\"i\":9");
        let e = f
            .audit
            .ingest(r, std::slice::from_ref(&edited))
            .await
            .unwrap_err();
        refused(e, "record 6: its hash does not match");
        // In a batch, the records before a refused one are kept and none after it.
        let batch = [lines[5].clone(), edited, lines[6].clone()];
        let e = f.audit.ingest(r, &batch).await.unwrap_err();
        refused(e, "record 6: its hash does not match");
        assert_eq!(f.audit.head(r).unwrap(), head_of(&lines[5]));
        assert_eq!(
            f.audit.ingest(r, &lines[6..]).await.unwrap(),
            head_of(&lines[7])
        );
        assert!(f.verdict(Log::Recorder(r)).is_ok());
    }

    #[tokio::test]
    async fn checkpoints_are_checked_and_kept() {
        let f = Fixture::new();
        let r = f.recorder;
        let lines = recorder_lines(&Head::empty(), 6, "op");
        f.audit.ingest(r, &lines[..4]).await.unwrap();
        let at3 = f.recorder_checkpoint(&head_of(&lines[2]));

        // Signed by another key, or of another log: refused, nothing kept.
        let e = f
            .audit
            .store_checkpoint(r, &at3, &f.root.verifying_key())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let other_log =
            SignedCheckpoint::sign(CENTRAL_LOG, &at3.head(), jiff::Timestamp::now(), |b| {
                f.recorder_key.sign(b).to_bytes()
            });
        let key = f.recorder_key.verifying_key();
        let e = f
            .audit
            .store_checkpoint(r, &other_log, &key)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(f.audit.latest_checkpoint(Log::Recorder(r)).unwrap(), None);

        f.audit.store_checkpoint(r, &at3, &key).await.unwrap();
        assert_eq!(
            f.audit.latest_checkpoint(Log::Recorder(r)).unwrap(),
            Some(at3.clone())
        );
        // One that does not match the copy.
        let forked = recorder_lines(&head_of(&lines[1]), 1, "someone-else");
        let wrong = f.recorder_checkpoint(&head_of(&forked[0]));
        let e = f.audit.store_checkpoint(r, &wrong, &key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DataLoss, "{e}");
        assert!(
            e.to_string().contains("does not match central's copy"),
            "{e}"
        );

        // One ahead of the copy is kept once the copy reaches it.
        let at6 = f.recorder_checkpoint(&head_of(&lines[5]));
        f.audit.store_checkpoint(r, &at6, &key).await.unwrap();
        assert_eq!(
            f.audit.latest_checkpoint(Log::Recorder(r)).unwrap(),
            Some(at3.clone())
        );
        f.audit.ingest(r, &lines[4..5]).await.unwrap();
        assert_eq!(
            f.audit.latest_checkpoint(Log::Recorder(r)).unwrap(),
            Some(at3)
        );
        f.audit.ingest(r, &lines[5..]).await.unwrap();
        assert_eq!(
            f.audit.latest_checkpoint(Log::Recorder(r)).unwrap(),
            Some(at6)
        );

        // Central's own.
        let head = central_log(&f, 2).await;
        let own = f.audit.checkpoint_own(&f.root).await.unwrap();
        assert_eq!((own.head(), own.log.as_str()), (head, CENTRAL_LOG));
        own.verify(&f.root.verifying_key()).unwrap();
        assert_eq!(f.audit.latest_checkpoint(Log::Central).unwrap(), Some(own));
        let v = verify_command(&f.store, &f.keys()).unwrap();
        assert!(
            v.starts_with("audit log central: 2 records, chain intact, head 2:")
                && v.contains(&format!(
                    "; audit log {r}: 6 records, chain intact, head {}, 2 signed checkpoints matched",
                    head_of(&lines[5])
                )),
            "{v}"
        );
    }

    /// A store with central's log and a recorder's copy of 5 records each, both with a
    /// signed checkpoint of their head.
    async fn checkpointed() -> Fixture {
        let f = Fixture::new();
        central_log(&f, 5).await;
        f.audit.checkpoint_own(&f.root).await.unwrap();
        let lines = recorder_lines(&Head::empty(), 5, "op");
        let head = f.audit.ingest(f.recorder, &lines).await.unwrap();
        let key = f.recorder_key.verifying_key();
        f.audit
            .store_checkpoint(f.recorder, &f.recorder_checkpoint(&head), &key)
            .await
            .unwrap();
        assert!(verify_command(&f.store, &f.keys()).is_ok());
        f
    }

    /// Where a log's record `seq` is stored: its table and key.
    fn place(f: &Fixture, log: Log, seq: u64) -> (Table, Vec<u8>) {
        match log {
            Log::Central => (f.table(OWN_TABLE), seq.to_be_bytes().to_vec()),
            Log::Recorder(r) => (f.table(COPIES_TABLE), copy_key(r, seq)),
        }
    }

    #[tokio::test]
    async fn verify_all_finds_every_tampering_with_the_tables() {
        type Tamper = fn(&Table, &dyn Fn(u64) -> Vec<u8>);

        let cases: [(&str, Tamper, &str); 5] = [
            (
                "edit",
                |t, key| {
                    let line: String = t.get(key(2)).unwrap().unwrap();
                    t.put(key(2), &line.replace("\"i\":1", "\"i\":7")).unwrap();
                },
                "line 2 (seq 2): its hash does not match its content",
            ),
            (
                "delete",
                |t, key| {
                    t.remove(key(3)).unwrap();
                },
                "line 3: seq 4 where 3 belongs",
            ),
            (
                "reorder",
                |t, key| {
                    let (a, b): (String, String) = (
                        t.get(key(2)).unwrap().unwrap(),
                        t.get(key(3)).unwrap().unwrap(),
                    );
                    t.put(key(2), &b).unwrap();
                    t.put(key(3), &a).unwrap();
                },
                "line 2: seq 3 where 2 belongs",
            ),
            (
                "truncate",
                |t, key| {
                    t.remove(key(5)).unwrap();
                    t.remove(key(4)).unwrap();
                },
                "the log ends at seq 3: records were removed from its end",
            ),
            (
                "remove all",
                |t, key| {
                    for seq in 1..=5 {
                        t.remove(key(seq)).unwrap();
                    }
                },
                "the log ends at seq 0: records were removed from its end",
            ),
        ];
        for (what, tamper, want) in cases {
            let copy = Log::Recorder(RECORDER.parse().unwrap());
            for (log, other) in [(Log::Central, copy), (copy, Log::Central)] {
                let f = checkpointed().await;
                let (table, _) = place(&f, log, 0);
                tamper(&table, &|seq| place(&f, log, seq).1);
                let e = f.verdict(log).unwrap_err();
                assert!(e.contains(want), "{what} {log}: {e}");
                // The other log still checks out, and the command names the broken one.
                assert!(f.verdict(other).is_ok(), "{what} {log}");
                let e = verify_command(&f.store, &f.keys()).unwrap_err();
                assert!(e.starts_with(&format!("audit log {log}: ")), "{e}");
            }
        }
    }

    #[tokio::test]
    async fn verify_all_checks_the_checkpoints_signatures() {
        let f = checkpointed().await;
        let r = f.recorder;
        // A tail rewritten with every hash recomputed, and a checkpoint forged to match it.
        let copies = f.table(COPIES_TABLE);
        let line4: String = copies.get(copy_key(r, 4)).unwrap().unwrap();
        let forged = recorder_lines(&head_of(&line4), 1, "rewriter");
        copies.put(copy_key(r, 5), &forged[0]).unwrap();
        let e = f.verdict(Log::Recorder(r)).unwrap_err();
        assert!(e.contains("the log's record 5 has hash"), "{e}");
        let fake = SignedCheckpoint::sign(
            &r.to_string(),
            &head_of(&forged[0]),
            jiff::Timestamp::now(),
            |b| f.root.sign(b).to_bytes(),
        );
        f.table(CHECKPOINTS_TABLE)
            .put(checkpoint_key(Log::Recorder(r), 5), &fake)
            .unwrap();
        let e = f.verdict(Log::Recorder(r)).unwrap_err();
        assert!(e.contains("the signature does not verify"), "{e}");
        // A recorder central has no key for.
        let keys = Keys {
            central: f.root.verifying_key(),
            recorders: HashMap::new(),
        };
        let e = verify_command(&f.store, &keys).unwrap_err();
        assert!(e.contains("no key to check its signature"), "{e}");
    }

    #[tokio::test]
    async fn listing_filters_and_pages() {
        let f = Fixture::new();
        f.audit
            .append("admin", Action::Login, None, Map::new())
            .await
            .unwrap();
        f.audit
            .append("admin", Action::CameraChanged, Some(camera()), Map::new())
            .await
            .unwrap();
        let a = f.recorder;
        let b: RecorderId = "01JD7Q0000000000000000000S".parse().unwrap();
        f.audit
            .ingest(b, &recorder_lines(&Head::empty(), 3, "op-b"))
            .await
            .unwrap();
        f.audit
            .ingest(a, &recorder_lines(&Head::empty(), 4, "op-a"))
            .await
            .unwrap();

        let all = f
            .audit
            .list(&Filter::default(), None, MAX_PAGE)
            .await
            .unwrap();
        assert_eq!(all.next, None);
        let order: Vec<(Log, u64)> = all.entries.iter().map(|e| (e.log, e.record.seq)).collect();
        let mut want = vec![(Log::Central, 1), (Log::Central, 2)];
        want.extend((1..=4).map(|s| (Log::Recorder(a), s)));
        want.extend((1..=3).map(|s| (Log::Recorder(b), s)));
        assert_eq!(order, want);

        // Pages of 2 give the same, in the same order.
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = f
                .audit
                .list(&Filter::default(), cursor.as_deref(), 2)
                .await
                .unwrap();
            assert!(p.entries.len() <= 2);
            paged.extend(p.entries);
            match p.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(paged, all.entries);

        let list = |filter: Filter| {
            let audit = f.audit.clone();
            async move {
                audit
                    .list(&filter, None, MAX_PAGE)
                    .await
                    .unwrap()
                    .entries
                    .into_iter()
                    .map(|e| (e.log, e.record.seq))
                    .collect::<Vec<_>>()
            }
        };
        let by_actor = list(Filter {
            actor: Some("op-b".into()),
            ..Filter::default()
        })
        .await;
        assert_eq!(
            by_actor,
            (1..=3).map(|s| (Log::Recorder(b), s)).collect::<Vec<_>>()
        );
        let by_camera = list(Filter {
            camera: Some(camera()),
            ..Filter::default()
        })
        .await;
        assert_eq!(
            by_camera,
            [
                (Log::Central, 2),
                (Log::Recorder(a), 1),
                (Log::Recorder(a), 3),
                (Log::Recorder(b), 1),
                (Log::Recorder(b), 3)
            ]
        );
        let by_action = list(Filter {
            action: Some(Action::Export),
            log: Some(Log::Recorder(a)),
            ..Filter::default()
        })
        .await;
        assert_eq!(by_action, [(Log::Recorder(a), 2), (Log::Recorder(a), 4)]);
        // The recorders' records are a minute apart from 12:00 (seq 1).
        let by_time = list(Filter {
            from: Some("2026-11-26T12:01:00Z".parse().unwrap()),
            to: Some("2026-11-26T12:03:00Z".parse().unwrap()),
            ..Filter::default()
        })
        .await;
        assert_eq!(
            by_time,
            [
                (Log::Recorder(a), 2),
                (Log::Recorder(a), 3),
                (Log::Recorder(b), 2),
                (Log::Recorder(b), 3)
            ]
        );
        let central = list(Filter {
            log: Some(Log::Central),
            ..Filter::default()
        })
        .await;
        assert_eq!(central, [(Log::Central, 1), (Log::Central, 2)]);

        // A filter that matches little, with a small budget: pages end early, maybe empty,
        // and the cursors lead on to the end.
        let only = Filter {
            actor: Some("op-b".into()),
            action: Some(Action::Export),
            ..Filter::default()
        };
        let mut found = Vec::new();
        let mut pages = 0;
        let mut after = None;
        loop {
            let p = f.audit.0.list(&only, after, 10, 3).unwrap();
            pages += 1;
            found.extend(p.entries.into_iter().map(|e| (e.log, e.record.seq)));
            match p.next {
                Some(c) => after = Some(Position::parse(&c).unwrap()),
                None => break,
            }
        }
        assert_eq!(found, [(Log::Recorder(b), 2)]);
        assert_eq!(pages, 4, "9 records, 3 at a time, and an empty last page");

        for (cursor, limit) in [
            (Some("x.1"), 10),
            (Some("r.nope.1"), 10),
            (None, 0),
            (None, MAX_PAGE + 1),
        ] {
            let e = f
                .audit
                .list(&Filter::default(), cursor, limit)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
    }
}
