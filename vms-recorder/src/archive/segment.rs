//! One segment file: its self-describing header and trailer, the writer that appends durable
//! fragments, and the scanner that reads a file back (for recovery and `reindex`). Writer and
//! scanner feed the same [`Summary`], so a row built live equals a row rebuilt from the file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, RecorderId, RunId};
use vms_core::time::{Duration90k, Time90k};
use vms_core::{Error, IoResultExt, bail, err};

use super::fs::{ArchiveFile, ArchiveFs};
use super::mp4::{self, Moof, TrackRun, TrackSpec};

/// `uuid` box types of the segment header and trailer (spec/segment-format.md).
pub const HEADER_UUID: [u8; 16] = *b"vms-seg-header-1";
pub const TRAILER_UUID: [u8; 16] = *b"vms-seg-trailr-1";

/// Format version written in every header.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;

/// What a segment file says about itself, written before any media.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub format: u32,
    pub recorder: RecorderId,
    pub camera: CameraId,
    pub stream: String,
    pub run: RunId,
    /// Position of this segment in its run, from 0.
    pub run_segment: u32,
    /// Wall-clock time of the first sample, 90 kHz units since the Unix epoch.
    pub start_90k: i64,
    /// Video decode time of the first sample within the run (`tfdt`), 90 kHz.
    pub media_start_90k: i64,
    /// RFC 6381 codec string of the video track, e.g. `avc1.640028` or `hvc1.1.6.L93.B0`.
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string and sample rate of the audio track, when there is one.
    pub audio_codec: Option<String>,
    pub audio_sample_rate: Option<u32>,
    /// Whether the recorder clock was NTP-synchronised when the segment started.
    pub recorder_synced: bool,
    pub recorder_error_ms: Option<u32>,
}

/// What a clean close adds at the end; a file without it ended in a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentTrailer {
    pub end_reason: String,
    /// Camera clock minus recorder clock from RTCP sender reports, when known.
    pub camera_offset_ms: Option<i64>,
}

/// What the index keeps of a segment, computable from the file alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub header: SegmentHeader,
    pub frames: u32,
    pub keyframes: u32,
    pub media_duration_90k: i64,
    /// Bytes of header and fragments: the file less any trailer.
    pub content_len: u64,
    pub sha256: [u8; 32],
    /// Compact per-frame table (see [`FrameTable`]).
    pub frame_table: Vec<u8>,
    pub end_reason: EndReason,
    pub camera_offset_ms: Option<i64>,
    /// `(decode time, offset)` of each fragment's `prft`: the `mfra` trailer's table.
    pub fragments: Vec<(u64, u64)>,
}

impl Summary {
    pub fn end_90k(&self) -> Time90k {
        Time90k(self.header.start_90k) + Duration90k(self.media_duration_90k)
    }
}

/// Builds a [`Summary`] fragment by fragment; the writer and the scanner both use it.
#[derive(Clone)]
struct SummaryBuilder {
    header: SegmentHeader,
    hasher: Sha256,
    content_len: u64,
    frames: u32,
    keyframes: u32,
    media_duration_90k: i64,
    table: FrameTable,
    fragments: Vec<(u64, u64)>,
}

impl SummaryBuilder {
    fn new(header: SegmentHeader, init_bytes: &[u8]) -> SummaryBuilder {
        let mut hasher = Sha256::new();
        hasher.update(init_bytes);
        SummaryBuilder {
            header,
            hasher,
            content_len: init_bytes.len() as u64,
            frames: 0,
            keyframes: 0,
            media_duration_90k: 0,
            table: FrameTable::default(),
            fragments: Vec::new(),
        }
    }

    /// Adds one fragment: `bytes` is everything from its `prft` to the end of its `mdat`.
    fn add(&mut self, moof: &Moof, bytes: &[u8], data_offset: u64) {
        if let Some(video) = moof.runs.iter().find(|r| r.track_id == mp4::VIDEO_TRACK_ID) {
            self.fragments
                .push((video.base_decode_time, self.content_len));
            // This fragment's boxes start where the content so far ends.
            self.table
                .start_fragment(data_offset, data_offset - self.content_len);
            for s in &video.samples {
                self.table.push(s.duration, s.size, s.sync);
                self.frames += 1;
                self.keyframes += u32::from(s.sync);
                self.media_duration_90k += i64::from(s.duration);
            }
        }
        self.hasher.update(bytes);
        self.content_len += bytes.len() as u64;
    }

    fn finish(self, end_reason: EndReason, camera_offset_ms: Option<i64>) -> Summary {
        Summary {
            header: self.header,
            frames: self.frames,
            keyframes: self.keyframes,
            media_duration_90k: self.media_duration_90k,
            content_len: self.content_len,
            sha256: self.hasher.finalize().into(),
            frame_table: self.table.bytes,
            end_reason,
            camera_offset_ms,
            fragments: self.fragments,
        }
    }
}

/// The per-frame table of a segment: about 2–3 bytes a frame. Each frame is a varint
/// `zigzag(duration − previous duration) << 2 | sync << 1 | fragment start`; a frame that starts
/// a fragment then has a varint of its data's byte offset minus the end of the previous
/// fragment's video data (from 0), and a varint of the length of the fragment's boxes before
/// that data (`prft`, `moof`, `mdat` header); last, a varint `zigzag(size − previous size)`.
#[derive(Clone, Default)]
pub struct FrameTable {
    bytes: Vec<u8>,
    prev_duration: i64,
    prev_size: i64,
    /// Data start and header length of the fragment whose first frame comes next.
    pending_fragment: Option<(u64, u64)>,
    data_end: u64,
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One frame as the table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFrame {
    pub duration_90k: u32,
    pub size_bytes: u32,
    pub sync: bool,
    /// Byte offset of the frame's data in the segment file.
    pub offset: u64,
    /// For the first frame of a fragment: the byte offset of the fragment (its `prft`).
    pub fragment_start: Option<u64>,
}

impl FrameTable {
    fn start_fragment(&mut self, data_start: u64, header_len: u64) {
        self.pending_fragment = Some((data_start, header_len));
    }

    fn push(&mut self, duration: u32, size: u32, sync: bool) {
        let fragment = self.pending_fragment.take();
        let head = zigzag(i64::from(duration) - self.prev_duration) << 2
            | u64::from(sync) << 1
            | u64::from(fragment.is_some());
        put_varint(&mut self.bytes, head);
        if let Some((start, header_len)) = fragment {
            put_varint(&mut self.bytes, start - self.data_end);
            put_varint(&mut self.bytes, header_len);
            self.data_end = start;
        }
        put_varint(&mut self.bytes, zigzag(i64::from(size) - self.prev_size));
        self.prev_duration = i64::from(duration);
        self.prev_size = i64::from(size);
        self.data_end += u64::from(size);
    }

    /// Decodes a table; `None` if it is malformed.
    pub fn decode(bytes: &[u8]) -> Option<Vec<TableFrame>> {
        let (mut at, mut duration, mut size, mut offset) = (0usize, 0i64, 0i64, 0u64);
        let mut out = Vec::new();
        while at < bytes.len() {
            let head = get_varint(bytes, &mut at)?;
            let mut fragment_start = None;
            if head & 1 == 1 {
                offset = offset.checked_add(get_varint(bytes, &mut at)?)?;
                fragment_start = Some(offset.checked_sub(get_varint(bytes, &mut at)?)?);
            }
            duration += unzigzag(head >> 2);
            size += unzigzag(get_varint(bytes, &mut at)?);
            out.push(TableFrame {
                duration_90k: u32::try_from(duration).ok()?,
                size_bytes: u32::try_from(size).ok()?,
                sync: head & 2 != 0,
                offset,
                fragment_start,
            });
            offset = offset.checked_add(u64::try_from(size).ok()?)?;
        }
        Some(out)
    }
}

/// Writes one segment file, fragment by fragment, each durable before it counts.
pub struct SegmentWriter {
    fs: Arc<dyn ArchiveFs>,
    file: Box<dyn ArchiveFile>,
    path: PathBuf,
    /// A failed write could not be undone: the file must be left to recovery.
    failed: bool,
    summary: SummaryBuilder,
    sequence: u32,
}

impl SegmentWriter {
    /// Creates the file (which must not exist) and makes its header and its directory entry
    /// durable.
    pub fn create(
        fs: Arc<dyn ArchiveFs>,
        path: &Path,
        header: SegmentHeader,
        tracks: &[TrackSpec<'_>],
    ) -> Result<SegmentWriter, Error> {
        let mut init = Vec::new();
        mp4::write_init(&mut init, tracks);
        let json = serde_json::to_vec(&header).expect("header serialises");
        mp4::write_uuid_box(&mut init, &HEADER_UUID, &json);
        let where_ = || format!("creating segment {}", path.display());
        let mut file = fs.create_new(path).io_context(where_)?;
        file.write_all(&init)
            .and_then(|()| file.sync_data())
            .io_context(where_)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        fs.sync_dir(dir).io_context(where_)?;
        Ok(SegmentWriter {
            fs,
            file,
            path: path.to_owned(),
            failed: false,
            summary: SummaryBuilder::new(header, &init),
            sequence: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.summary.header
    }

    /// Bytes durable so far (header and whole fragments).
    /// The summary of what is durable so far, as if the segment ended here: what readers
    /// may serve of a segment still being written.
    pub fn provisional(&self) -> Summary {
        self.summary.clone().finish(EndReason::Rotated, None)
    }

    pub fn durable_len(&self) -> u64 {
        self.summary.content_len
    }

    pub fn frames(&self) -> u32 {
        self.summary.frames
    }

    /// Appends a fragment and fdatasyncs it. `data` holds the samples of `runs` in order.
    /// On error the file may hold part of the fragment; recovery cuts it off.
    pub fn write_fragment(
        &mut self,
        ntp: u64,
        runs: &[TrackRun],
        data: &[&[u8]],
    ) -> Result<(), Error> {
        self.sequence += 1;
        let mut buf = Vec::with_capacity(1024 + data.iter().map(|d| d.len()).sum::<usize>());
        mp4::write_fragment_header(&mut buf, self.sequence, ntp, runs);
        let header_len = buf.len();
        for d in data {
            buf.extend_from_slice(d);
        }
        debug_assert_eq!(
            (buf.len() - header_len) as u64,
            runs.iter().map(TrackRun::data_len).sum::<u64>()
        );
        if self.failed {
            bail!(
                Unavailable,
                "{} is failed; not writing to it",
                self.path.display()
            );
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .io_context(|| {
                format!(
                    "writing fragment {} of {}",
                    self.sequence,
                    self.path.display()
                )
            });
        if let Err(e) = written {
            // Cut off whatever part of the fragment landed, so that a trailer can follow the
            // last whole fragment; if even that fails, leave the file to recovery.
            if let Err(t) = self.fs.truncate(&self.path, self.summary.content_len) {
                tracing::error!(path = %self.path.display(), err = %t, "cannot cut a failed fragment off");
                self.failed = true;
            }
            return Err(e);
        }
        let moof = parse_written_moof(&buf)?;
        let data_offset = self.summary.content_len + header_len as u64;
        self.summary.add(&moof, &buf, data_offset);
        Ok(())
    }

    /// Writes the trailer (end reason and fragment table), makes it durable, and returns
    /// the segment's summary.
    pub fn finish(
        mut self,
        end_reason: EndReason,
        camera_offset_ms: Option<i64>,
    ) -> Result<Summary, Error> {
        if self.failed {
            bail!(
                Unavailable,
                "{} failed; its whole fragments are left to recovery",
                self.path.display()
            );
        }
        let trailer = SegmentTrailer {
            end_reason: end_reason.as_str().to_owned(),
            camera_offset_ms,
        };
        let mut buf = Vec::new();
        let json = serde_json::to_vec(&trailer).expect("trailer serialises");
        mp4::write_uuid_box(&mut buf, &TRAILER_UUID, &json);
        mp4::write_mfra(&mut buf, mp4::VIDEO_TRACK_ID, &self.summary.fragments);
        self.file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .io_context(|| format!("writing trailer of {}", self.path.display()))?;
        Ok(self.summary.finish(end_reason, camera_offset_ms))
    }
}

/// Reads back the `moof` this process just wrote, to feed the summary the same way a scan does.
fn parse_written_moof(buf: &[u8]) -> Result<Moof, Error> {
    let prft = mp4::next_box(buf, 0)?.ok_or_else(|| err!(Internal, "no prft"))?;
    let moof = mp4::next_box(buf, prft.len)?.ok_or_else(|| err!(Internal, "no moof"))?;
    mp4::parse_moof(moof.payload)
}

struct ParsedMoof {
    parsed: Moof,
    mdat_len: usize,
}

enum Step {
    Fragment { moof: ParsedMoof, end: usize },
    Trailer { parsed: SegmentTrailer, end: usize },
}

/// Reads the whole fragment (`prft`, `moof`, `mdat` with the size the `moof` promises) or the
/// whole trailer (`uuid` and `mfra`) at `at`; `None` if there is neither.
fn next_fragment_or_trailer(data: &[u8], at: usize) -> Option<Step> {
    let first = mp4::next_box(data, at).ok()??;
    if first.uuid == Some(TRAILER_UUID) {
        let mfra = mp4::next_box(data, at + first.len).ok()??;
        let parsed = serde_json::from_slice::<SegmentTrailer>(first.payload).ok()?;
        return (&mfra.fourcc == b"mfra" && parsed.end_reason.parse::<EndReason>().is_ok())
            .then_some(Step::Trailer {
                parsed,
                end: at + first.len + mfra.len,
            });
    }
    if &first.fourcc != b"prft" {
        return None;
    }
    let moof = mp4::next_box(data, at + first.len).ok()??;
    let mdat = mp4::next_box(data, at + first.len + moof.len).ok()??;
    if &moof.fourcc != b"moof" || &mdat.fourcc != b"mdat" || mdat.len - mdat.payload.len() != 8 {
        return None;
    }
    let parsed = mp4::parse_moof(moof.payload).ok()?;
    let want: u64 = parsed.runs.iter().map(TrackRun::data_len).sum();
    if mdat.payload.len() as u64 != want
        || !parsed
            .runs
            .iter()
            .any(|r| r.track_id == mp4::VIDEO_TRACK_ID)
    {
        return None;
    }
    Some(Step::Fragment {
        moof: ParsedMoof {
            parsed,
            mdat_len: mdat.len,
        },
        end: at + first.len + moof.len + mdat.len,
    })
}

/// A segment file read back.
#[derive(Debug)]
pub struct Scanned {
    /// `None` when the file holds no durable fragment (an orphan to remove).
    pub summary: Option<Summary>,
    /// Length of the durable prefix: header and whole fragments, plus a whole trailer.
    pub valid_len: u64,
    /// The file has a complete trailer (it was closed cleanly).
    pub closed: bool,
}

/// A sliding window over a file being scanned: it holds the bytes from the current position
/// to what has been read, so a scan needs memory for one fragment, not for the file.
struct Window<'r> {
    reader: &'r mut dyn Read,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: usize,
    /// Bytes of `buf` already consumed; dropped when more is read.
    consumed: usize,
    eof: bool,
}

impl Window<'_> {
    /// Reads more of the file; `false` at its end.
    fn more(&mut self) -> Result<bool, Error> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.consumed);
        self.base += self.consumed;
        self.consumed = 0;
        let want = self.buf.len().clamp(64 * 1024, 8 << 20) as u64;
        // read_to_end fills spare capacity without zeroing it first.
        let n = (&mut *self.reader)
            .take(want)
            .read_to_end(&mut self.buf)
            .map_err(|e| err!(Unavailable, source: e, "reading a segment"))?;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Forgets the bytes before file offset `at`.
    fn consume_to(&mut self, at: usize) {
        self.consumed = at - self.base;
    }

    /// The bytes from the current position on.
    fn data(&self) -> &[u8] {
        &self.buf[self.consumed..]
    }
}

/// Reads a segment file back into its summary, streaming. Whatever follows the last whole
/// fragment (a fragment cut short by a crash) is not counted; the caller truncates to
/// `valid_len`. A file without a valid header or fragments has no summary.
pub fn scan(reader: &mut dyn Read) -> Result<Scanned, Error> {
    let orphan = Scanned {
        summary: None,
        valid_len: 0,
        closed: false,
    };
    let mut w = Window {
        reader,
        buf: Vec::new(),
        base: 0,
        consumed: 0,
        eof: false,
    };
    let mut at = 0;
    let mut header = None;
    while header.is_none() {
        let Some(b) = mp4::next_box(&w.buf, at)? else {
            if w.more()? {
                continue;
            }
            return Ok(orphan);
        };
        at += b.len;
        match (&b.fourcc, b.uuid) {
            (b"ftyp", _) if !b.payload.chunks(4).any(|c| c == mp4::SEGMENT_BRAND) => {
                bail!(
                    DataLoss,
                    "not a segment file: no {:?} brand",
                    mp4::SEGMENT_BRAND
                );
            }
            (b"uuid", Some(HEADER_UUID)) => {
                header = Some(
                    serde_json::from_slice::<SegmentHeader>(b.payload)
                        .map_err(|e| err!(DataLoss, "bad segment header: {e}"))?,
                );
            }
            _ => {}
        }
    }
    let header = header.expect("found");
    let mut builder = SummaryBuilder::new(header, &w.buf[..at]);
    w.consume_to(at);
    let mut trailer = None;
    // After the header, the first thing that is not a whole fragment or a whole trailer ends
    // the valid prefix: a crash may leave a torn or zero-filled tail, and it costs only itself.
    loop {
        match next_fragment_or_trailer(w.data(), 0) {
            Some(Step::Fragment { moof, end }) => {
                let data_offset = (at + end - moof.mdat_len + 8) as u64;
                builder.add(&moof.parsed, &w.data()[..end], data_offset);
                at += end;
                w.consume_to(at);
            }
            Some(Step::Trailer { parsed, end }) => {
                trailer = Some((parsed, at + end));
                break;
            }
            // Not whole yet, or not valid: only the end of the file tells which.
            None if w.more()? => {}
            None => break,
        }
    }
    let valid_len = trailer.as_ref().map_or(at, |(_, end)| *end);
    if builder.frames == 0 {
        return Ok(orphan);
    }
    let (end_reason, camera_offset_ms, closed) = match trailer {
        Some((t, _)) => (t.end_reason.parse()?, t.camera_offset_ms, true),
        None => (EndReason::Crash, None, false),
    };
    Ok(Scanned {
        summary: Some(builder.finish(end_reason, camera_offset_ms)),
        valid_len: valid_len as u64,
        closed,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::archive::fs::SimFs;
    use crate::archive::mp4::Sample;

    /// A plausible header for tests.
    pub fn header() -> SegmentHeader {
        SegmentHeader {
            format: SEGMENT_FORMAT_VERSION,
            recorder: RecorderId::generate(),
            camera: CameraId::generate(),
            stream: "main".into(),
            run: RunId::generate(),
            run_segment: 0,
            start_90k: 1_000_000,
            media_start_90k: 0,
            video_codec: "avc1.640028".into(),
            width: 640,
            height: 360,
            audio_codec: None,
            audio_sample_rate: None,
            recorder_synced: true,
            recorder_error_ms: Some(5),
        }
    }

    fn entry() -> Vec<u8> {
        let mut e = Vec::new();
        mp4::write_box(&mut e, b"avc1", |b| b.extend_from_slice(&[0; 78]));
        e
    }

    /// Writes a segment of `fragments` fragments of 15 frames (the first a keyframe).
    fn write(fs: &SimFs, path: &Path, fragments: usize) -> SegmentWriter {
        let entry = entry();
        let tracks = [TrackSpec {
            track_id: mp4::VIDEO_TRACK_ID,
            timescale: 90_000,
            sample_entry: &entry,
            video_size: Some((640, 360)),
        }];
        let mut w = SegmentWriter::create(Arc::new(fs.clone()), path, header(), &tracks).unwrap();
        for f in 0..fragments {
            let frames: Vec<Vec<u8>> = (0..15).map(|i| vec![i as u8; 100 + i * 7 + f]).collect();
            let run = TrackRun {
                track_id: mp4::VIDEO_TRACK_ID,
                base_decode_time: (f * 15 * 6000) as u64,
                samples: frames
                    .iter()
                    .enumerate()
                    .map(|(i, d)| Sample {
                        duration: 6000,
                        size: d.len() as u32,
                        sync: i == 0,
                    })
                    .collect(),
            };
            let data: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            w.write_fragment(f as u64, &[run], &data).unwrap();
        }
        w
    }

    #[test]
    fn live_summary_equals_scanned_summary() {
        let fs = SimFs::new(1);
        fs.preexisting_dir(Path::new("/r"));
        let path = Path::new("/r/s.mp4");
        let live = write(&fs, path, 4)
            .finish(EndReason::Rotated, Some(-20))
            .unwrap();
        assert_eq!(
            (live.frames, live.keyframes, live.media_duration_90k),
            (60, 4, 360_000)
        );
        let data = fs.read(path).unwrap();
        let scanned = scan(&mut data.as_slice()).unwrap();
        assert!(scanned.closed);
        assert_eq!(scanned.valid_len, data.len() as u64);
        assert_eq!(scanned.summary.as_ref(), Some(&live));

        // The frame table locates every frame's bytes in the file.
        let table = FrameTable::decode(&live.frame_table).unwrap();
        assert_eq!(table.len(), 60);
        for (i, f) in table.iter().enumerate() {
            let (frag, k) = (i / 15, i % 15);
            assert_eq!(f.size_bytes as usize, 100 + k * 7 + frag);
            assert_eq!(f.sync, k == 0);
            let bytes = &data[f.offset as usize..][..f.size_bytes as usize];
            assert!(
                bytes.iter().all(|&b| b == k as u8),
                "frame {i} at {}",
                f.offset
            );
            // Each fragment's first frame says where the fragment's boxes begin: at the
            // offset the summary recorded, with its prft.
            assert_eq!(f.fragment_start.is_some(), k == 0);
            if let Some(start) = f.fragment_start {
                assert_eq!(start, live.fragments[frag].1);
                assert_eq!(&data[start as usize + 4..][..4], b"prft");
            }
        }
        assert!(
            live.frame_table.len() <= 3 * 60,
            "{} bytes",
            live.frame_table.len()
        );
    }

    #[test]
    fn every_truncation_point_scans_to_whole_fragments() {
        let fs = SimFs::new(2);
        fs.preexisting_dir(Path::new("/r"));
        let path = Path::new("/r/s.mp4");
        let full = write(&fs, path, 3)
            .finish(EndReason::Rotated, None)
            .unwrap();
        let data = fs.read(path).unwrap();
        let ends: Vec<u64> = full
            .fragments
            .iter()
            .map(|&(_, o)| o)
            .skip(1)
            .chain([full.content_len])
            .collect();
        for cut in 0..data.len() {
            let s = scan(&mut &data[..cut]).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut as u64).count();
            match &s.summary {
                None => assert_eq!(whole, 0, "cut {cut}"),
                Some(summary) => {
                    assert_eq!(summary.frames as usize, whole * 15, "cut {cut}");
                    assert_eq!(summary.end_reason, EndReason::Crash);
                    assert_eq!(s.valid_len, ends[whole - 1]);
                    assert!(!s.closed);
                }
            }
        }
    }

    #[test]
    fn a_scan_reads_in_any_chunks() {
        /// Returns at most 7 bytes a read, as a slow pipe might.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let fs = SimFs::new(4);
        fs.preexisting_dir(Path::new("/r"));
        let path = Path::new("/r/s.mp4");
        let closed = write(&fs, path, 4)
            .finish(EndReason::Rotated, None)
            .unwrap();
        let data = fs.read(path).unwrap();
        let s = scan(&mut Trickle(&data)).unwrap();
        assert!(s.closed);
        assert_eq!(s.valid_len, data.len() as u64);
        assert_eq!(s.summary.unwrap(), closed);
    }

    #[test]
    fn a_torn_tail_costs_only_itself() {
        let fs = SimFs::new(9);
        fs.preexisting_dir(Path::new("/r"));
        let path = Path::new("/r/s.mp4");
        let w = write(&fs, path, 3);
        let whole = w.durable_len() as usize;
        drop(w);
        let data = fs.read(path).unwrap();
        for tail in [
            vec![0u8; 4096],
            vec![0xff; 100],
            b"\x00\x00\x00\x10prft garbage".to_vec(),
        ] {
            let mut torn = data.clone();
            torn.extend_from_slice(&tail);
            let s = scan(&mut torn.as_slice()).unwrap();
            assert_eq!(s.valid_len as usize, whole);
            assert_eq!(s.summary.unwrap().frames, 45);
        }
    }

    #[test]
    fn frame_table_round_trip_and_garbage() {
        let mut t = FrameTable::default();
        t.start_fragment(500, 300);
        t.push(3000, 10_000, true);
        t.push(3003, 900, false);
        t.start_fragment(12_000, 200);
        t.push(2997, 1100, false);
        let frames = FrameTable::decode(&t.bytes).unwrap();
        let got: Vec<_> = frames
            .iter()
            .map(|f| {
                (
                    f.duration_90k,
                    f.size_bytes,
                    f.sync,
                    f.offset,
                    f.fragment_start,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (3000, 10_000, true, 500, Some(200)),
                (3003, 900, false, 10_500, None),
                (2997, 1100, false, 12_000, Some(11_800))
            ]
        );
        for junk in [&[0xffu8; 12][..], &[0x80], &[3]] {
            let _ = FrameTable::decode(junk);
        }
    }
}
