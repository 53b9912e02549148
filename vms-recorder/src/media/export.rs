//! Progressive MP4 exports, built from the stored fragments without re-encoding: `ftyp`, then
//! `moov` (so a player starts at once), then one `mdat` whose bytes are runs of the stored
//! files, referenced in place. The header comes from the index's frame tables alone.
//!
//! - The export starts at the keyframe at or before the requested start; an edit list makes
//!   the presentation start exactly at it and end exactly at the requested end.
//! - Gaps are collapsed in media time, so the file plays straight through; a `tx3g` text track
//!   shows the wall clock, second by second, so the jump is visible.
//! - A codec change inside the range splits the export into parts, one per configuration.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use vms_core::gap::EndReason;
use vms_core::time::{Duration90k, Time90k};
use vms_core::{Error, bail, err};

use crate::archive::index::SegmentRow;
use crate::archive::mp4::{
    self, Handler, Sample, TrackRun, TrackSpec, Trak, put_u16, put_u32, put_u64, write_box,
    write_full_box, write_trak_box,
};
use crate::archive::segment::TableFrame;
use crate::ingest::VideoParams;
use crate::media::decode::{EncodedPacket, StoredFrame, TranscodeOptions, Transcoder};
use crate::media::serve::Piece;
use crate::service::hole_reason;

/// A stored segment an export may draw on.
pub struct Source {
    pub row: SegmentRow,
    pub frames: Vec<TableFrame>,
    pub path: PathBuf,
    /// The file's video sample entry.
    pub entry: Vec<u8>,
    /// The file's audio, when it has any.
    pub audio: Option<AudioSource>,
}

/// The audio of a stored segment, read from its init section and its fragments' `moof`s.
pub struct AudioSource {
    pub entry: Vec<u8>,
    pub timescale: u32,
    /// Each fragment's audio run and the file offset of its data, by the fragment's offset.
    pub fragments: BTreeMap<u64, (TrackRun, u64)>,
}

/// A stretch of audio continuous with its video: one run, no gap.
struct Stretch {
    /// Export media time (90 kHz) of its first video frame, and that frame's run time.
    video_at: i64,
    video_run: i64,
    /// Export media time (audio timescale) of its first audio sample, and that sample's run
    /// time.
    audio_at: i64,
    audio_run: i64,
    video_len: i64,
    audio_len: i64,
}

/// A planned export file.
pub struct Export {
    pub pieces: Vec<Piece>,
    /// Gaps collapsed out of the media timeline: wall-clock start, end, reason.
    pub gaps: Vec<(Time90k, Time90k, EndReason)>,
    /// The wall-clock range the file presents.
    pub delivered: Range<Time90k>,
    /// How many files the range needs, one per codec configuration.
    pub parts: usize,
}

/// One frame chosen for the export.
struct Picked<'a> {
    src: &'a Source,
    frame: &'a TableFrame,
    wall: Time90k,
}

impl Picked<'_> {
    fn end(&self) -> Time90k {
        self.wall + Duration90k(i64::from(self.frame.duration_90k))
    }
}

/// The frames of `sources` that `range` needs, split by codec configuration: each part starts
/// at the keyframe at or before the range's start (or its first keyframe).
fn pick<'a>(sources: &'a [Source], range: &Range<Time90k>) -> Vec<Vec<Picked<'a>>> {
    let mut parts: Vec<Vec<Picked<'a>>> = Vec::new();
    let mut entry: Option<&[u8]> = None;
    for src in sources {
        let mut wall = src.row.start;
        let mut chosen = Vec::new();
        for frame in &src.frames {
            let end = wall + Duration90k(i64::from(frame.duration_90k));
            if wall < range.end && end > range.start {
                chosen.push(Picked { src, frame, wall });
            } else if wall < range.start && frame.sync {
                // A keyframe before the range: the part starts here if nothing comes between.
                chosen.clear();
                chosen.push(Picked { src, frame, wall });
            } else if wall < range.start && !chosen.is_empty() {
                chosen.push(Picked { src, frame, wall });
            }
            wall = end;
        }
        // Frames before the range that no frame of the range follows are not needed.
        if chosen.last().is_some_and(|p| p.end() <= range.start) {
            chosen.clear();
        }
        if chosen.is_empty() {
            continue;
        }
        if entry != Some(src.entry.as_slice()) || parts.is_empty() {
            parts.push(Vec::new());
            entry = Some(&src.entry);
        }
        parts.last_mut().expect("pushed").extend(chosen);
    }
    parts
}

/// Plans part `part` (from 0) of the export of `range`.
pub fn build(sources: &[Source], range: &Range<Time90k>, part: usize) -> Result<Export, Error> {
    let parts = pick(sources, range);
    let count = parts.len();
    let Some(picked) = parts.into_iter().nth(part) else {
        if count == 0 {
            bail!(NotFound, "no footage in that range");
        }
        bail!(
            NotFound,
            "the range has {count} parts (one per codec configuration); no part {part}"
        );
    };
    let first = &picked[0];
    let last = picked.last().expect("a part has frames");
    let lead = (range.start - first.wall).0.max(0);
    let trail = (last.end() - range.end).0.max(0);
    let media: i64 = picked.iter().map(|p| i64::from(p.frame.duration_90k)).sum();
    let presented = u64::try_from(media - lead - trail).unwrap_or(0);
    let delivered = first.wall.max(range.start)..last.end().min(range.end);

    // Gaps, and the wall clock as text: a sample per displayed second, cut at every gap.
    let mut gaps = Vec::new();
    let mut texts: Vec<(String, u32)> = Vec::new();
    for (i, p) in picked.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &picked[j]);
        let jump = prev.is_some_and(|q| p.wall > q.end());
        if let Some(q) = prev.filter(|_| jump) {
            gaps.push((q.end(), p.wall, hole_reason(q.src.row.end_reason)));
        }
        let label = p
            .wall
            .timestamp()
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        match texts.last_mut() {
            Some((l, d)) if !jump && *l == label => *d += p.frame.duration_90k,
            _ => texts.push((label, p.frame.duration_90k)),
        }
    }

    // Video chunks: runs of frames adjacent in one file.
    let mut chunks: Vec<(usize, Piece)> = Vec::new();
    for (i, p) in picked.iter().enumerate() {
        let size = u64::from(p.frame.size_bytes);
        let adjacent = i > 0
            && std::ptr::eq(picked[i - 1].src, p.src)
            && picked[i - 1].frame.offset + u64::from(picked[i - 1].frame.size_bytes)
                == p.frame.offset;
        match chunks.last_mut() {
            Some((n, Piece::File { len, .. })) if adjacent => {
                *n += 1;
                *len += size;
            }
            _ => chunks.push((
                1,
                Piece::File {
                    path: p.src.path.clone(),
                    offset: p.frame.offset,
                    len: size,
                },
            )),
        }
    }
    let mut text_data = Vec::new();
    let mut text_sizes = Vec::new();
    for (label, _) in &texts {
        let start = text_data.len();
        put_u16(&mut text_data, label.len() as u16);
        text_data.extend_from_slice(label.as_bytes());
        text_sizes.push((text_data.len() - start) as u32);
    }

    let video = Track {
        durations: picked.iter().map(|p| p.frame.duration_90k).collect(),
        sizes: picked.iter().map(|p| p.frame.size_bytes).collect(),
        syncs: Some(picked.iter().map(|p| p.frame.sync).collect()),
        chunks: chunks.iter().map(|(n, c)| (*n, c.size())).collect(),
    };
    let text = Track {
        durations: texts.iter().map(|(_, d)| *d).collect(),
        sizes: text_sizes,
        syncs: None,
        chunks: vec![(texts.len(), text_data.len() as u64)],
    };
    let audio = audio_track(&picked, lead as u64, presented);
    let (width, height) = (first.src.row.width, first.src.row.height);
    let video_edits = [(presented, lead)];
    let text_entry = tx3g_entry();
    let mut tracks = vec![
        (
            Trak {
                track_id: 1,
                timescale: 90_000,
                sample_entry: &first.src.entry,
                handler: Handler::Video { width, height },
                duration: presented,
                media_duration: media as u64,
                edits: &video_edits,
            },
            &video,
        ),
        (
            Trak {
                track_id: 2,
                timescale: 90_000,
                sample_entry: &text_entry,
                handler: Handler::Text { width, height },
                duration: presented,
                media_duration: media as u64,
                edits: &video_edits,
            },
            &text,
        ),
    ];
    if let Some((entry, timescale, track, edits, _)) = &audio {
        tracks.push((
            Trak {
                track_id: 3,
                timescale: *timescale,
                sample_entry: entry,
                handler: Handler::Audio,
                duration: presented,
                media_duration: track.durations.iter().map(|&d| u64::from(d)).sum(),
                edits,
            },
            track,
        ));
    }
    // The moov's length does not depend on the offsets in it (co64 entries are fixed size):
    // write it once to learn where the data starts, then for real.
    let mut head = ftyp();
    let probe = moov(presented, &tracks, 0);
    let data_start = (head.len() + probe.len() + 16) as u64;
    head.extend_from_slice(&moov(presented, &tracks, data_start));
    let data_len: u64 = tracks.iter().map(|(_, t)| t.data_len()).sum();
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"mdat");
    head.extend_from_slice(&(data_len + 16).to_be_bytes());
    let mut pieces = vec![Piece::Mem(Bytes::from(head))];
    pieces.extend(chunks.into_iter().map(|(_, c)| c));
    pieces.push(Piece::Mem(Bytes::from(text_data)));
    if let Some((_, _, _, _, audio_pieces)) = audio {
        pieces.extend(audio_pieces);
    }
    Ok(Export {
        pieces,
        gaps,
        delivered,
        parts: count,
    })
}

/// The audio of the picked frames' fragments, when every source has audio of one kind: its
/// sample entry, timescale, tables, edit list (one edit per stretch continuous with the
/// video, so that gaps collapse alike) and data.
#[allow(clippy::type_complexity)]
fn audio_track<'a>(
    picked: &[Picked<'a>],
    lead: u64,
    presented: u64,
) -> Option<(&'a [u8], u32, Track, Vec<(u64, i64)>, Vec<Piece>)> {
    let first = picked.first()?.src.audio.as_ref()?;
    let same = |s: &Source| {
        s.audio
            .as_ref()
            .is_some_and(|a| a.entry == first.entry && a.timescale == first.timescale)
    };
    if !picked.iter().all(|p| same(p.src)) {
        return None;
    }
    let rate = i64::from(first.timescale);
    let mut track = Track {
        durations: Vec::new(),
        sizes: Vec::new(),
        syncs: None,
        chunks: Vec::new(),
    };
    let mut pieces = Vec::new();
    let mut stretches: Vec<Stretch> = Vec::new();
    let (mut video_at, mut audio_at) = (0i64, 0i64);
    for (i, p) in picked.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &picked[j]);
        let video_run = p.src.row.media_start_90k + (p.wall - p.src.row.start).0;
        let fragment = p
            .frame
            .fragment_start
            .and_then(|f| p.src.audio.as_ref()?.fragments.get(&f));
        if let Some((run, data_offset)) = fragment {
            let breaks = prev.is_none_or(|q| p.wall > q.end() || q.src.row.run != p.src.row.run);
            if breaks || stretches.is_empty() {
                stretches.push(Stretch {
                    video_at,
                    video_run,
                    audio_at,
                    audio_run: run.base_decode_time as i64,
                    video_len: 0,
                    audio_len: 0,
                });
            }
            let len = run.data_len();
            if !run.samples.is_empty() {
                track.chunks.push((run.samples.len(), len));
                pieces.push(Piece::File {
                    path: p.src.path.clone(),
                    offset: *data_offset,
                    len,
                });
            }
            for sample in &run.samples {
                track.durations.push(sample.duration);
                track.sizes.push(sample.size);
                audio_at += i64::from(sample.duration);
                if let Some(st) = stretches.last_mut() {
                    st.audio_len += i64::from(sample.duration);
                }
            }
        }
        if let Some(st) = stretches.last_mut() {
            st.video_len += i64::from(p.frame.duration_90k);
        }
        video_at += i64::from(p.frame.duration_90k);
    }
    // Presentation time t (90 kHz) shows video media time t + lead; each stretch maps it to
    // the audio recorded at the same run time.
    let (lead, presented) = (lead as i64, presented as i64);
    let mut edits = Vec::new();
    for st in &stretches {
        let from = st.video_at.max(lead) - lead;
        let to = (st.video_at + st.video_len).min(lead + presented) - lead;
        if to <= from {
            continue;
        }
        let run_time = st.video_run + (from + lead - st.video_at);
        let mut media = st.audio_at + run_time * rate / 90_000 - st.audio_run;
        let mut dur = to - from;
        if media < st.audio_at {
            // The audio of this stretch starts a little after its video.
            let empty = ((st.audio_at - media) * 90_000 / rate).min(dur);
            edits.push((empty as u64, -1));
            dur -= empty;
            media = st.audio_at;
        }
        if dur > 0 {
            if media >= st.audio_at + st.audio_len {
                edits.push((dur as u64, -1));
            } else {
                edits.push((dur as u64, media));
            }
        }
    }
    Some((&first.entry, first.timescale, track, edits, pieces))
}

/// Writes part `part` of `range` transcoded to H.264 with `camera` and the wall clock burned
/// in, as a fragmented MP4 of fragments of about a second, so it streams as it is encoded.
/// Gaps are collapsed as in [`build`]; it starts at the keyframe at or before the range.
pub fn transcode(
    sources: &[Source],
    range: &Range<Time90k>,
    part: usize,
    camera: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let parts = pick(sources, range);
    let count = parts.len();
    let Some(picked) = parts.into_iter().nth(part) else {
        bail!(NotFound, "no part {part} of {count} in that range");
    };
    let mut coder = Transcoder::new(&picked[0].src.entry, camera, &TranscodeOptions::default())?;
    let mut writer = FragmentWriter::default();
    let mut file: Option<(&Path, std::fs::File)> = None;
    let mut pts = 0i64;
    for p in &picked {
        if file
            .as_ref()
            .is_none_or(|(path, _)| *path != p.src.path.as_path())
        {
            let f = std::fs::File::open(&p.src.path)
                .map_err(|e| err!(Unavailable, source: e, "opening {}", p.src.path.display()))?;
            file = Some((p.src.path.as_path(), f));
        }
        let (_, f) = file.as_mut().expect("opened");
        let mut data = vec![0; p.frame.size_bytes as usize];
        f.seek(SeekFrom::Start(p.frame.offset))
            .and_then(|_| f.read_exact(&mut data))
            .map_err(|e| err!(Unavailable, source: e, "reading {}", p.src.path.display()))?;
        let clock = p
            .wall
            .timestamp()
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        writer.walls.insert(pts, p.wall);
        let frame = StoredFrame {
            data: &data,
            keyframe: p.frame.sync,
        };
        let packets = coder.push(frame, Duration90k(pts), &clock)?;
        writer.add(packets, coder.params(), out)?;
        pts += i64::from(p.frame.duration_90k);
        writer.last_duration = p.frame.duration_90k;
    }
    let finished = coder.finish()?;
    writer.add(finished.packets, Some(&finished.params), out)?;
    writer.flush(true, out)
}

/// Encoded packets on their way into fragments.
#[derive(Default)]
struct FragmentWriter {
    pending: Vec<EncodedPacket>,
    /// Wall-clock time of each input frame, by its media time, for the fragments' `prft`.
    walls: std::collections::BTreeMap<i64, Time90k>,
    init_written: bool,
    params: Option<VideoParams>,
    sequence: u32,
    last_duration: u32,
}

impl FragmentWriter {
    fn add(
        &mut self,
        packets: Vec<EncodedPacket>,
        params: Option<&VideoParams>,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        if self.params.is_none() {
            self.params = params.cloned();
        }
        self.pending.extend(packets);
        // A fragment of a second or more, cut before a keyframe where the GOP allows.
        let span = match (self.pending.first(), self.pending.last()) {
            (Some(a), Some(b)) => b.dts.0 - a.dts.0,
            _ => 0,
        };
        if span >= 90_000 {
            self.flush(false, out)?;
        }
        Ok(())
    }

    /// Writes the pending packets as one fragment; the last one waits for its successor
    /// (which gives its duration) unless this is the end.
    fn flush(&mut self, end: bool, out: &mut dyn Write) -> Result<(), Error> {
        let Some(params) = &self.params else {
            return Ok(());
        };
        let io = |e: std::io::Error| err!(Unavailable, source: e, "sending the transcode");
        if !self.init_written {
            let mut b = ftyp();
            mp4::write_moov(
                &mut b,
                &[TrackSpec {
                    track_id: mp4::VIDEO_TRACK_ID,
                    timescale: 90_000,
                    sample_entry: &params.sample_entry,
                    video_size: Some((params.width, params.height)),
                }],
            );
            out.write_all(&b).map_err(io)?;
            self.init_written = true;
        }
        let keep = usize::from(!end);
        if self.pending.len() <= keep {
            return Ok(());
        }
        let rest = self.pending.split_off(self.pending.len() - keep);
        let packets = std::mem::replace(&mut self.pending, rest);
        let next = self.pending.first().map(|p| p.dts);
        let samples = packets
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let after = packets.get(i + 1).map(|n| n.dts).or(next);
                Sample {
                    duration: after.map_or(self.last_duration, |n| (n.0 - p.dts.0) as u32),
                    size: p.data.len() as u32,
                    sync: p.keyframe,
                }
            })
            .collect();
        let first = packets[0].dts.0;
        let wall = self
            .walls
            .range(..=first)
            .next_back()
            .map_or(Time90k(0), |(&t, &w)| w + Duration90k(first - t));
        self.walls = self.walls.split_off(&first);
        let runs = [TrackRun {
            track_id: mp4::VIDEO_TRACK_ID,
            base_decode_time: first as u64,
            samples,
        }];
        self.sequence += 1;
        let mut b = Vec::new();
        mp4::write_fragment_header(&mut b, self.sequence, wall.to_ntp(), &runs);
        out.write_all(&b).map_err(io)?;
        for p in &packets {
            out.write_all(&p.data).map_err(io)?;
        }
        Ok(())
    }
}

/// The sample tables of one track.
struct Track {
    durations: Vec<u32>,
    sizes: Vec<u32>,
    /// Which samples are sync samples; `None`: all are.
    syncs: Option<Vec<bool>>,
    /// Samples and bytes per chunk, in data order.
    chunks: Vec<(usize, u64)>,
}

impl Track {
    /// `stts`, `stss`, `stsz`, `stsc` and `co64`, the chunks starting at `offset`.
    fn tables(&self, b: &mut Vec<u8>, mut offset: u64) {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &d in &self.durations {
            match runs.last_mut() {
                Some((n, delta)) if *delta == d => *n += 1,
                _ => runs.push((1, d)),
            }
        }
        write_full_box(b, b"stts", 0, 0, |b| {
            put_u32(b, runs.len() as u32);
            for (n, d) in &runs {
                put_u32(b, *n);
                put_u32(b, *d);
            }
        });
        if let Some(syncs) = &self.syncs {
            let numbers: Vec<u32> = (1..)
                .zip(syncs)
                .filter(|(_, s)| **s)
                .map(|(i, _)| i)
                .collect();
            write_full_box(b, b"stss", 0, 0, |b| {
                put_u32(b, numbers.len() as u32);
                numbers.iter().for_each(|&n| put_u32(b, n));
            });
        }
        write_full_box(b, b"stsz", 0, 0, |b| {
            put_u32(b, 0);
            put_u32(b, self.sizes.len() as u32);
            self.sizes.iter().for_each(|&s| put_u32(b, s));
        });
        let mut per_chunk: Vec<(u32, u32)> = Vec::new();
        for (i, (n, _)) in (1..).zip(&self.chunks) {
            if per_chunk.last().is_none_or(|(_, m)| *m != *n as u32) {
                per_chunk.push((i, *n as u32));
            }
        }
        write_full_box(b, b"stsc", 0, 0, |b| {
            put_u32(b, per_chunk.len() as u32);
            for (first, n) in &per_chunk {
                put_u32(b, *first);
                put_u32(b, *n);
                put_u32(b, 1);
            }
        });
        write_full_box(b, b"co64", 0, 0, |b| {
            put_u32(b, self.chunks.len() as u32);
            for (_, len) in &self.chunks {
                put_u64(b, offset);
                offset += len;
            }
        });
    }

    fn data_len(&self) -> u64 {
        self.chunks.iter().map(|(_, l)| l).sum()
    }
}

fn ftyp() -> Vec<u8> {
    let mut b = Vec::new();
    write_box(&mut b, b"ftyp", |b| {
        b.extend_from_slice(b"isom");
        put_u32(b, 0x200);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            b.extend_from_slice(brand);
        }
    });
    b
}

/// The `tx3g` sample entry: white text, bottom centre.
fn tx3g_entry() -> Vec<u8> {
    let mut b = Vec::new();
    write_box(&mut b, b"tx3g", |b| {
        b.extend_from_slice(&[0; 6]);
        put_u16(b, 1); // data reference index
        put_u32(b, 0); // display flags
        b.extend_from_slice(&[1, 0xff]); // centred, at the bottom
        b.extend_from_slice(&[0, 0, 0, 0]); // background
        b.extend_from_slice(&[0; 8]); // default text box
        put_u16(b, 0); // style: first char
        put_u16(b, 0); // last char
        put_u16(b, 1); // font id
        b.push(0); // face
        b.push(18); // size
        b.extend_from_slice(&[0xff; 4]); // colour
        write_box(b, b"ftab", |b| {
            put_u16(b, 1);
            put_u16(b, 1);
            let name = b"Sans-Serif";
            b.push(name.len() as u8);
            b.extend_from_slice(name);
        });
    });
    b
}

/// The `moov` of `tracks`, whose data lies in the `mdat` in this order from `data_start`.
fn moov(presented: u64, tracks: &[(Trak<'_>, &Track)], data_start: u64) -> Vec<u8> {
    let mut b = Vec::new();
    write_box(&mut b, b"moov", |b| {
        write_full_box(b, b"mvhd", 1, 0, |b| {
            put_u64(b, 0);
            put_u64(b, 0);
            put_u32(b, 90_000);
            put_u64(b, presented);
            put_u32(b, 0x0001_0000); // rate
            put_u16(b, 0x0100); // volume
            b.extend_from_slice(&[0; 10]);
            mp4::UNITY_MATRIX.iter().for_each(|&m| put_u32(b, m));
            b.extend_from_slice(&[0; 24]);
            put_u32(b, tracks.len() as u32 + 1); // next track id
        });
        let mut offset = data_start;
        for (trak, track) in tracks {
            write_trak_box(b, trak, |b| track.tables(b, offset));
            offset += track.data_len();
        }
    });
    b
}

#[cfg(test)]
mod tests {
    use vms_core::id::RunId;

    use super::*;
    use crate::archive::mp4::{Sample, TrackRun};
    use crate::media::hls::tests::row;

    /// A segment of `n` frames at 15 fps starting at `start` seconds, a keyframe every 15
    /// frames, one fragment per keyframe.
    fn source(start: i64, n: usize, entry: &[u8], end_reason: EndReason) -> Source {
        let mut frames = Vec::new();
        let mut offset = 500;
        for i in 0..n {
            let fragment_start = (i % 15 == 0).then(|| {
                offset += 100;
                offset - 100
            });
            frames.push(TableFrame {
                duration_90k: 6000,
                size_bytes: 1000 + i as u32,
                sync: i % 15 == 0,
                offset,
                fragment_start,
            });
            offset += 1000 + i as u64;
        }
        Source {
            row: row(start * 90_000, &frames, RunId::generate(), end_reason),
            frames,
            path: format!("/r/{start}.mp4").into(),
            entry: entry.to_vec(),
            audio: None,
        }
    }

    fn secs(s: f64) -> Time90k {
        Time90k((s * 90_000.0) as i64)
    }

    #[test]
    fn starts_at_the_keyframe_before_and_edits_to_the_exact_range() {
        // 0–10 s, 10–20 s (a disconnect after it), 30–40 s.
        let sources = [
            source(0, 150, b"A", EndReason::Rotated),
            source(10, 150, b"A", EndReason::Disconnect),
            source(30, 150, b"A", EndReason::RecorderStopped),
        ];
        let range = secs(2.5)..secs(35.5);
        let e = build(&sources, &range, 0).unwrap();
        assert_eq!(e.parts, 1);
        assert_eq!(e.gaps, [(secs(20.0), secs(30.0), EndReason::Disconnect)]);
        assert_eq!(e.delivered, range);
        // The first chunk starts at the keyframe of 2 s: frame 30 of the first file.
        let first_chunk = e.pieces.iter().find(|p| matches!(p, Piece::File { .. }));
        assert_eq!(
            first_chunk,
            Some(&Piece::File {
                path: "/r/0.mp4".into(),
                offset: sources[0].frames[30].offset,
                len: (30..45).map(|i| 1000 + i).sum(),
            })
        );
        // Video samples: 2 s .. 20 s and 30 s .. 36 s (the frame at 35.46 s ends at 35.53 s).
        let Piece::Mem(head) = &e.pieces[0] else {
            panic!("the header comes first")
        };
        let head = head.as_ref();
        let elst = head.windows(4).position(|w| w == b"elst").unwrap();
        let entry = &head[elst + 12..elst + 28];
        let presented = u64::from_be_bytes(entry[..8].try_into().unwrap());
        let media_time = u64::from_be_bytes(entry[8..].try_into().unwrap());
        assert_eq!(media_time, 45_000, "0.5 s from the keyframe at 2 s");
        assert_eq!(presented, (33 - 10) * 90_000, "the range less the 10 s gap");
        assert!(head.windows(4).any(|w| w == b"tx3g"));
        let total: u64 = e.pieces.iter().map(Piece::size).sum();
        let mdat = head.windows(4).position(|w| w == b"mdat").unwrap();
        let mdat_size = u64::from_be_bytes(head[mdat + 4..mdat + 12].try_into().unwrap());
        assert_eq!(
            mdat as u64 - 4 + mdat_size,
            total,
            "the mdat runs to the end"
        );
    }

    /// Gives a source one audio run per fragment: 48 kHz, 1024-sample frames, in step with
    /// the video (a fragment of `f` seconds of run time has audio from `f` seconds).
    fn with_audio(mut src: Source, first_fragment_secs: u64) -> Source {
        let mut fragments = BTreeMap::new();
        let starts: Vec<u64> = src.frames.iter().filter_map(|f| f.fragment_start).collect();
        for (k, start) in starts.into_iter().enumerate() {
            let run = TrackRun {
                track_id: mp4::AUDIO_TRACK_ID,
                base_decode_time: (first_fragment_secs + k as u64) * 48_000,
                samples: vec![
                    Sample {
                        duration: 1024,
                        size: 300,
                        sync: true,
                    };
                    47
                ],
            };
            fragments.insert(start, (run, 1_000_000 + start));
        }
        src.audio = Some(AudioSource {
            entry: b"mp4a".to_vec(),
            timescale: 48_000,
            fragments,
        });
        src
    }

    /// The audio track's edit list: `(duration, media time)` entries.
    fn audio_edits(head: &[u8]) -> Vec<(u64, i64)> {
        let elst = head
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"elst")
            .map(|(i, _)| i)
            .nth(2)
            .expect("video, text and audio edit lists");
        let n = u32::from_be_bytes(head[elst + 8..elst + 12].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| {
                let e = elst + 12 + i * 20;
                (
                    u64::from_be_bytes(head[e..e + 8].try_into().unwrap()),
                    i64::from_be_bytes(head[e + 8..e + 16].try_into().unwrap()),
                )
            })
            .collect()
    }

    #[test]
    fn audio_follows_the_video_across_a_gap() {
        // 0–10 s, then after a disconnect a new run at 30–40 s.
        let sources = [
            with_audio(source(0, 150, b"A", EndReason::Disconnect), 0),
            with_audio(source(30, 150, b"A", EndReason::RecorderStopped), 0),
        ];
        let range = secs(2.5)..secs(35.5);
        let e = build(&sources, &range, 0).unwrap();
        let Piece::Mem(head) = &e.pieces[0] else {
            panic!("the header comes first")
        };
        let edits = audio_edits(head);
        // Each stretch starts its audio at the run time its video shows: 2.5 s into the first
        // run (2 s of its fragments skipped: 0.5 s in), 0 s into the second.
        assert_eq!(edits.len(), 2, "{edits:?}");
        // 7.5 s of the first run, starting 0.5 s into its audio (24000 samples).
        assert_eq!(edits[0], (675_000, 24_000));
        // Then 5.5 s of the second run, from its first audio sample, which follows the first
        // stretch's 8 fragments of audio in the track.
        assert_eq!(edits[1], (495_000, 8 * 47 * 1024));
        let presented: u64 = edits.iter().map(|(d, _)| d).sum();
        assert_eq!(
            presented,
            13 * 90_000,
            "the range less the 20 s gap, like the video"
        );
    }

    #[test]
    fn a_codec_change_splits_the_export_and_empty_ranges_are_refused() {
        let sources = [
            source(0, 150, b"A", EndReason::CodecChange),
            source(10, 150, b"B", EndReason::RecorderStopped),
        ];
        let range = secs(5.0)..secs(15.0);
        let a = build(&sources, &range, 0).unwrap();
        let b = build(&sources, &range, 1).unwrap();
        assert_eq!((a.parts, b.parts), (2, 2));
        assert_eq!(a.delivered, secs(5.0)..secs(10.0));
        assert_eq!(b.delivered, secs(10.0)..secs(15.0));
        assert_eq!(
            build(&sources, &range, 2).err().unwrap().kind(),
            vms_core::ErrorKind::NotFound
        );
        let none = build(&sources, &(secs(50.0)..secs(60.0)), 0);
        assert_eq!(none.err().unwrap().kind(), vms_core::ErrorKind::NotFound);
    }
}
