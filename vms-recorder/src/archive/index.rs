//! The segment index in sled, the only module that touches the key-value store. One row per
//! segment (never one key per fragment or frame), with the per-frame table in a tree of its
//! own so that listings stay small. The index is a cache of the files: rows are written only
//! after their bytes are durable, and the whole index can be rebuilt from the files.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sled::Transactional;
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, RunId, StorageRootId};
use vms_core::time::{Duration90k, Time90k};
use vms_core::{Error, bail, err};

use super::segment::Summary;

/// Version of the row encoding; bumped with a migration whenever the layout changes.
pub const INDEX_SCHEMA_VERSION: u8 = 2;

const SEGMENTS: &str = "segments";
const FRAME_TABLES: &str = "frame_tables";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// What a listing returns of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRow {
    pub camera: CameraId,
    pub stream: String,
    pub root: StorageRootId,
    pub run: RunId,
    pub run_segment: u32,
    pub start: Time90k,
    pub media_start_90k: i64,
    pub duration: Duration90k,
    pub frames: u32,
    pub keyframes: u32,
    /// Header and fragments, without the trailer.
    pub size_bytes: u64,
    pub sha256: [u8; 32],
    pub end_reason: EndReason,
    pub recorder_synced: bool,
    pub recorder_error_ms: Option<u32>,
    pub camera_offset_ms: Option<i64>,
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    pub audio_codec: Option<String>,
}

impl SegmentRow {
    pub fn end(&self) -> Time90k {
        self.start + self.duration
    }

    pub fn from_summary(root: StorageRootId, s: &Summary) -> SegmentRow {
        let h = &s.header;
        SegmentRow {
            camera: h.camera,
            stream: h.stream.clone(),
            root,
            run: h.run,
            run_segment: h.run_segment,
            start: Time90k(h.start_90k),
            media_start_90k: h.media_start_90k,
            duration: Duration90k(s.media_duration_90k),
            frames: s.frames,
            keyframes: s.keyframes,
            size_bytes: s.content_len,
            sha256: s.sha256,
            end_reason: s.end_reason,
            recorder_synced: h.recorder_synced,
            recorder_error_ms: h.recorder_error_ms,
            camera_offset_ms: s.camera_offset_ms,
            video_codec: h.video_codec.clone(),
            width: h.width,
            height: h.height,
            audio_codec: h.audio_codec.clone(),
        }
    }
}

/// The stored form of a row (everything but the key's camera, stream and start).
#[derive(Serialize, Deserialize)]
struct StoredRow {
    version: u8,
    root: [u8; 16],
    run: [u8; 16],
    run_segment: u32,
    media_start_90k: i64,
    duration_90k: i64,
    frames: u32,
    keyframes: u32,
    size_bytes: u64,
    sha256: [u8; 32],
    end_reason: u8,
    recorder_synced: bool,
    recorder_error_ms: Option<u32>,
    camera_offset_ms: Option<i64>,
    video_codec: String,
    width: u32,
    height: u32,
    audio_codec: Option<String>,
}

/// Key: camera (16 bytes), stream name length and bytes, then the start time as big-endian
/// with the sign bit flipped, so keys sort by stream and then by time.
fn key(camera: CameraId, stream: &str, start: Time90k) -> Vec<u8> {
    let mut k = stream_prefix(camera, stream);
    k.extend_from_slice(&((start.0 as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn stream_prefix(camera: CameraId, stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + 1 + stream.len() + 8);
    k.extend_from_slice(&camera.to_bytes());
    k.push(stream.len() as u8);
    k.extend_from_slice(stream.as_bytes());
    k
}

fn decode_key(k: &[u8]) -> Option<(CameraId, String, Time90k)> {
    let camera = CameraId::from_bytes(k.get(..16)?.try_into().ok()?);
    let n = usize::from(*k.get(16)?);
    let stream = std::str::from_utf8(k.get(17..17 + n)?).ok()?.to_owned();
    let t = u64::from_be_bytes(k.get(17 + n..25 + n)?.try_into().ok()?);
    (k.len() == 25 + n).then_some((camera, stream, Time90k((t ^ (1 << 63)) as i64)))
}

fn corrupt(what: &str) -> Error {
    err!(DataLoss, "index: {what}")
}

fn db_err(e: sled::Error) -> Error {
    err!(Unavailable, source: e, "index")
}

/// One segment as stored: key, row and frame table bytes.
pub type RawEntry = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The open index.
#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    segments: sled::Tree,
    frame_tables: sled::Tree,
    /// Bytes of footage per storage root: counted once at open, then kept by `put` and
    /// `remove`, so that retention and metrics never scan the rows.
    usage: Arc<Mutex<HashMap<StorageRootId, u64>>>,
}

/// Root and size of a stored row, for the usage counters.
fn root_and_size(v: &[u8]) -> Option<(StorageRootId, u64)> {
    let s: StoredRow = postcard::from_bytes(v).ok()?;
    Some((StorageRootId::from_bytes(s.root), s.size_bytes))
}

impl Index {
    /// Opens (or creates) the index in `dir`. Fails on a store that will not open or a schema
    /// this build does not know; the caller then sets it aside and rebuilds it from the files.
    pub fn open(dir: &Path) -> Result<Index, Error> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| err!(DataLoss, source: e, "index at {} will not open", dir.display()))?;
        match db.get(SCHEMA_KEY).map_err(db_err)? {
            None => {
                db.insert(SCHEMA_KEY, &[INDEX_SCHEMA_VERSION])
                    .map_err(db_err)?;
            }
            Some(v) if v.as_ref() == [INDEX_SCHEMA_VERSION] => {}
            Some(v) => bail!(
                DataLoss,
                "index schema {v:?}, this build reads {INDEX_SCHEMA_VERSION}"
            ),
        }
        let index = Index {
            segments: db.open_tree(SEGMENTS).map_err(db_err)?,
            frame_tables: db.open_tree(FRAME_TABLES).map_err(db_err)?,
            db,
            usage: Arc::default(),
        };
        // Every row is decoded once: a row this build cannot read fails the open, and the
        // caller rebuilds the index from the files rather than serve around a hole.
        let mut usage = HashMap::new();
        for row in index.all() {
            let row = row.map_err(|e| e.context(format!("index at {}", dir.display())))?;
            *usage.entry(row.root).or_insert(0) += row.size_bytes;
        }
        *index.usage() = usage;
        Ok(index)
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, HashMap<StorageRootId, u64>> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of indexed footage in a storage root.
    pub fn used_bytes(&self, root: StorageRootId) -> u64 {
        self.usage().get(&root).copied().unwrap_or(0)
    }

    /// Moves the usage counters from a replaced or removed row to a new one.
    fn account(&self, old: Option<&[u8]>, new: Option<(StorageRootId, u64)>) {
        let mut usage = self.usage();
        if let Some((root, size)) = old.and_then(root_and_size) {
            let u = usage.entry(root).or_insert(0);
            *u = u.saturating_sub(size);
        }
        if let Some((root, size)) = new {
            *usage.entry(root).or_insert(0) += size;
        }
    }

    /// Adds (or replaces) a segment's row and frame table. Only call once the segment's bytes
    /// are durable.
    pub fn put(&self, root: StorageRootId, summary: &Summary) -> Result<(), Error> {
        let row = SegmentRow::from_summary(root, summary);
        let k = key(row.camera, &row.stream, row.start);
        let stored = StoredRow {
            version: INDEX_SCHEMA_VERSION,
            root: row.root.to_bytes(),
            run: row.run.to_bytes(),
            run_segment: row.run_segment,
            media_start_90k: row.media_start_90k,
            duration_90k: row.duration.0,
            frames: row.frames,
            keyframes: row.keyframes,
            size_bytes: row.size_bytes,
            sha256: row.sha256,
            end_reason: row.end_reason.code(),
            recorder_synced: row.recorder_synced,
            recorder_error_ms: row.recorder_error_ms,
            camera_offset_ms: row.camera_offset_ms,
            video_codec: row.video_codec,
            width: row.width,
            height: row.height,
            audio_codec: row.audio_codec,
        };
        let value =
            postcard::to_stdvec(&stored).map_err(|e| err!(Internal, "encoding row: {e}"))?;
        let old = (&self.segments, &self.frame_tables)
            .transaction(|(segments, tables)| {
                let old = segments.insert(k.as_slice(), value.as_slice())?;
                tables.insert(k.as_slice(), summary.frame_table.as_slice())?;
                Ok(old)
            })
            .map_err(|e: sled::transaction::TransactionError| {
                err!(Unavailable, "index write: {e}")
            })?;
        self.account(old.as_deref(), Some((root, summary.content_len)));
        Ok(())
    }

    pub fn remove(&self, camera: CameraId, stream: &str, start: Time90k) -> Result<(), Error> {
        let k = key(camera, stream, start);
        let old = (&self.segments, &self.frame_tables)
            .transaction(|(segments, tables)| {
                let old = segments.remove(k.as_slice())?;
                tables.remove(k.as_slice())?;
                Ok(old)
            })
            .map_err(|e: sled::transaction::TransactionError| {
                err!(Unavailable, "index remove: {e}")
            })?;
        self.account(old.as_deref(), None);
        Ok(())
    }

    fn decode(k: &[u8], v: &[u8]) -> Result<SegmentRow, Error> {
        let (camera, stream, start) = decode_key(k).ok_or_else(|| corrupt("bad key"))?;
        let s: StoredRow = postcard::from_bytes(v).map_err(|_| corrupt("bad row"))?;
        if s.version != INDEX_SCHEMA_VERSION {
            return Err(corrupt("row of another schema"));
        }
        Ok(SegmentRow {
            camera,
            stream,
            root: StorageRootId::from_bytes(s.root),
            run: RunId::from_bytes(s.run),
            run_segment: s.run_segment,
            start,
            media_start_90k: s.media_start_90k,
            duration: Duration90k(s.duration_90k),
            frames: s.frames,
            keyframes: s.keyframes,
            size_bytes: s.size_bytes,
            sha256: s.sha256,
            end_reason: EndReason::from_code(s.end_reason)
                .ok_or_else(|| corrupt("bad end reason"))?,
            recorder_synced: s.recorder_synced,
            recorder_error_ms: s.recorder_error_ms,
            camera_offset_ms: s.camera_offset_ms,
            video_codec: s.video_codec,
            width: s.width,
            height: s.height,
            audio_codec: s.audio_codec,
        })
    }

    /// Segments of a stream that overlap `range`, oldest first.
    pub fn list(
        &self,
        camera: CameraId,
        stream: &str,
        range: Range<Time90k>,
    ) -> Result<Vec<SegmentRow>, Error> {
        let prefix = stream_prefix(camera, stream);
        let from = key(camera, stream, range.start);
        let to = key(camera, stream, range.end);
        let mut out = Vec::new();
        // The segment that starts before the range may reach into it.
        if let Some(kv) = self
            .segments
            .range(prefix.as_slice()..from.as_slice())
            .next_back()
        {
            let (k, v) = kv.map_err(db_err)?;
            let row = Self::decode(&k, &v)?;
            if row.end() > range.start {
                out.push(row);
            }
        }
        for kv in self.segments.range(from.as_slice()..to.as_slice()) {
            let (k, v) = kv.map_err(db_err)?;
            out.push(Self::decode(&k, &v)?);
        }
        Ok(out)
    }

    /// A stream's rows from the oldest on, read lazily.
    pub fn rows(
        &self,
        camera: CameraId,
        stream: &str,
    ) -> impl Iterator<Item = Result<SegmentRow, Error>> + use<> {
        self.segments
            .scan_prefix(stream_prefix(camera, stream))
            .map(|kv| kv.map_err(db_err).and_then(|(k, v)| Self::decode(&k, &v)))
    }

    /// A stream's newest row.
    pub fn last(&self, camera: CameraId, stream: &str) -> Result<Option<SegmentRow>, Error> {
        match self
            .segments
            .scan_prefix(stream_prefix(camera, stream))
            .next_back()
        {
            Some(kv) => {
                let (k, v) = kv.map_err(db_err)?;
                Ok(Some(Self::decode(&k, &v)?))
            }
            None => Ok(None),
        }
    }

    /// Every stream with at least one row: one seek per stream, not a scan of the rows.
    pub fn streams(&self) -> Result<Vec<(CameraId, String)>, Error> {
        let mut out = Vec::new();
        let mut from = Vec::new();
        while let Some(kv) = self.segments.range(from.as_slice()..).next() {
            let (k, _) = kv.map_err(db_err)?;
            let (camera, stream, _) = decode_key(&k).ok_or_else(|| corrupt("bad key"))?;
            // The next stream's keys start after this one's largest possible key.
            from = key(camera, &stream, Time90k::MAX);
            from.push(0);
            out.push((camera, stream));
        }
        Ok(out)
    }

    /// Every row, in key order.
    pub fn all(&self) -> impl Iterator<Item = Result<SegmentRow, Error>> + '_ {
        self.segments
            .iter()
            .map(|kv| kv.map_err(db_err).and_then(|(k, v)| Self::decode(&k, &v)))
    }

    pub fn get(
        &self,
        camera: CameraId,
        stream: &str,
        start: Time90k,
    ) -> Result<Option<SegmentRow>, Error> {
        let k = key(camera, stream, start);
        match self.segments.get(&k).map_err(db_err)? {
            Some(v) => Ok(Some(Self::decode(&k, &v)?)),
            None => Ok(None),
        }
    }

    pub fn frame_table(
        &self,
        camera: CameraId,
        stream: &str,
        start: Time90k,
    ) -> Result<Option<Vec<u8>>, Error> {
        let k = key(camera, stream, start);
        Ok(self
            .frame_tables
            .get(&k)
            .map_err(db_err)?
            .map(|v| v.to_vec()))
    }

    /// Every key and value of both trees, for comparing two indexes byte for byte.
    pub fn dump(&self) -> Result<Vec<RawEntry>, Error> {
        let mut out = Vec::new();
        for kv in self.segments.iter() {
            let (k, v) = kv.map_err(db_err)?;
            let table = self
                .frame_tables
                .get(&k)
                .map_err(db_err)?
                .unwrap_or_default();
            out.push((k.to_vec(), v.to_vec(), table.to_vec()));
        }
        Ok(out)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush().map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::segment::SegmentHeader;

    fn summary(camera: CameraId, stream: &str, start: i64, duration: i64) -> Summary {
        Summary {
            header: SegmentHeader {
                camera,
                stream: stream.into(),
                start_90k: start,
                recorder_synced: false,
                recorder_error_ms: None,
                ..crate::archive::segment::tests::header()
            },
            frames: 10,
            keyframes: 1,
            media_duration_90k: duration,
            content_len: 1234,
            sha256: [7; 32],
            frame_table: vec![1, 2, 3],
            end_reason: EndReason::Rotated,
            camera_offset_ms: Some(-3),
            fragments: vec![],
        }
    }

    #[test]
    fn put_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let (cam, other) = (CameraId::generate(), CameraId::generate());
        let root = StorageRootId::generate();
        for i in 0..5 {
            index
                .put(root, &summary(cam, "main", i * 1000, 1000))
                .unwrap();
        }
        index.put(root, &summary(cam, "sub", 0, 10_000)).unwrap();
        index.put(root, &summary(other, "main", 0, 10_000)).unwrap();
        // Negative times sort before positive ones.
        index.put(root, &summary(cam, "main", -5000, 1000)).unwrap();

        let starts = |r: Range<i64>| -> Vec<i64> {
            index
                .list(cam, "main", Time90k(r.start)..Time90k(r.end))
                .unwrap()
                .iter()
                .map(|r| r.start.0)
                .collect()
        };
        assert_eq!(
            starts(1500..3000),
            [1000, 2000],
            "the segment before the range reaches into it"
        );
        assert_eq!(starts(2000..3000), [2000]);
        assert_eq!(starts(5000..9000), Vec::<i64>::new());
        assert_eq!(starts(-10_000..500), [-5000, 0]);
        let row = index.get(cam, "main", Time90k(2000)).unwrap().unwrap();
        assert_eq!(
            (row.end().0, row.camera_offset_ms, row.root),
            (3000, Some(-3), root)
        );
        assert_eq!(
            index.frame_table(cam, "main", Time90k(2000)).unwrap(),
            Some(vec![1, 2, 3])
        );
        index.remove(cam, "main", Time90k(2000)).unwrap();
        assert_eq!(starts(2000..3000), Vec::<i64>::new());
        assert_eq!(index.all().count(), 7);

        // Streams are found by seeking, and usage follows puts, replacements and removals.
        let mut streams = index.streams().unwrap();
        streams.sort();
        let mut want = vec![
            (cam, "main".to_owned()),
            (cam, "sub".into()),
            (other, "main".into()),
        ];
        want.sort();
        assert_eq!(streams, want);
        let row_bytes = summary(cam, "main", 0, 1000).content_len;
        assert_eq!(index.used_bytes(root), 7 * row_bytes);
        index.put(root, &summary(cam, "main", 0, 1000)).unwrap();
        assert_eq!(
            index.used_bytes(root),
            7 * row_bytes,
            "a replaced row counts once"
        );
        let rows: Vec<i64> = index
            .rows(cam, "main")
            .map(|r| r.unwrap().start.0)
            .collect();
        assert_eq!(rows, [-5000, 0, 1000, 3000, 4000]);
        assert_eq!(index.last(cam, "main").unwrap().unwrap().start.0, 4000);
        assert_eq!(index.last(cam, "nope").unwrap(), None);
        drop(index);
        assert_eq!(
            Index::open(dir.path()).unwrap().used_bytes(root),
            7 * row_bytes
        );
    }

    /// Opens an index this process just closed. sled releases its file lock from a background
    /// thread after the last handle drops, with no way to wait for it: retry while the lock is
    /// still held.
    fn reopen(dir: &Path) -> Result<Index, Error> {
        for _ in 0..500 {
            match Index::open(dir) {
                Err(e) if format!("{e:?}").contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => return r,
            }
        }
        Index::open(dir)
    }

    #[test]
    fn an_unreadable_row_fails_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let cam = CameraId::generate();
        index
            .put(StorageRootId::generate(), &summary(cam, "main", 0, 1000))
            .unwrap();
        index
            .segments
            .insert(key(cam, "main", Time90k(5000)), b"garbage".as_slice())
            .unwrap();
        index.flush().unwrap();
        drop(index);
        let e = reopen(dir.path()).err().expect("the open fails");
        assert_eq!(e.kind(), vms_core::ErrorKind::DataLoss, "{e}");
        assert!(e.to_string().contains("bad row"), "{e}");
    }

    #[test]
    fn keys_round_trip() {
        let cam = CameraId::generate();
        for t in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(
                decode_key(&key(cam, "sub", Time90k(t))),
                Some((cam, "sub".into(), Time90k(t)))
            );
        }
        assert_eq!(decode_key(b"short"), None);
    }
}
