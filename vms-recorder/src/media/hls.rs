//! HLS VOD playlists over the archive (RFC 8216, version 7 for fMP4). A media segment is a
//! byte range of a stored segment file, from a fragment that starts with a keyframe to the
//! next such fragment: nothing is copied or transcoded. Each file's boxes before its first
//! fragment are its `EXT-X-MAP` init section. A gap or a codec change is an
//! `EXT-X-DISCONTINUITY`, with the wall clock of what follows in `EXT-X-PROGRAM-DATE-TIME`.

use std::fmt::Write;
use std::ops::Range;

use vms_core::gap::EndReason;
use vms_core::time::{Duration90k, Time90k};

use crate::archive::index::SegmentRow;
use crate::archive::segment::TableFrame;

/// One media segment: bytes of a file, and the wall time they cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub offset: u64,
    pub len: u64,
    pub start: Time90k,
    pub duration: Duration90k,
}

/// Length of a file's init section: everything before its first fragment.
pub fn init_len(frames: &[TableFrame]) -> Option<u64> {
    frames.first()?.fragment_start
}

/// The media segments of one stored segment that overlap `range`. The first starts at the
/// keyframe at or before `range.start`.
pub fn parts(row: &SegmentRow, frames: &[TableFrame], range: &Range<Time90k>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    let mut t = row.start;
    for f in frames {
        match f.fragment_start {
            Some(offset) if f.sync || out.is_empty() => {
                if let Some(last) = out.last_mut() {
                    last.len = offset - last.offset;
                }
                out.push(Part {
                    offset,
                    len: 0,
                    start: t,
                    duration: Duration90k(0),
                });
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.duration = last.duration + Duration90k(i64::from(f.duration_90k));
        }
        t = t + Duration90k(i64::from(f.duration_90k));
    }
    if let Some(last) = out.last_mut() {
        last.len = row.size_bytes.saturating_sub(last.offset);
    }
    out.retain(|p| p.start < range.end && p.start + p.duration > range.start);
    out
}

/// Whether `row` carries on from `prev` without a break a player must know of.
fn continues(prev: &SegmentRow, row: &SegmentRow) -> bool {
    prev.run == row.run && prev.end_reason == EndReason::Rotated && prev.end() == row.start
}

/// The playlist of `segments` (oldest first, each with its decoded frame table) over
/// `range`. `uri` names a stored segment for the player, relative to the playlist.
pub fn playlist(
    segments: &[(SegmentRow, Vec<TableFrame>)],
    range: &Range<Time90k>,
    uri: impl Fn(&SegmentRow) -> String,
) -> String {
    let mut body = String::new();
    let mut longest = Duration90k(0);
    let mut prev: Option<&SegmentRow> = None;
    for (row, frames) in segments {
        let parts = parts(row, frames, range);
        let (Some(init), Some(first)) = (init_len(frames), parts.first()) else {
            continue;
        };
        let file = uri(row);
        if let Some(p) = prev
            && !continues(p, row)
        {
            body.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if prev.is_none_or(|p| !continues(p, row)) {
            let _ = writeln!(
                body,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                first.start.timestamp().strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
        }
        let _ = writeln!(body, "#EXT-X-MAP:URI=\"{file}\",BYTERANGE=\"{init}@0\"");
        for p in &parts {
            longest = longest.max(p.duration);
            let _ = writeln!(
                body,
                "#EXTINF:{:.3},\n#EXT-X-BYTERANGE:{}@{}\n{file}",
                p.duration.as_secs_f64(),
                p.len,
                p.offset
            );
        }
        prev = Some(row);
    }
    let target = longest.as_secs_f64().ceil().max(1.0) as u64;
    format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n{body}#EXT-X-ENDLIST\n"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use vms_core::id::{CameraId, RunId, StorageRootId};

    use super::*;

    /// A row for `frames`, starting at `start` (90 kHz).
    pub fn row(start: i64, frames: &[TableFrame], run: RunId, end_reason: EndReason) -> SegmentRow {
        let last = frames.last().unwrap();
        SegmentRow {
            camera: CameraId::generate(),
            stream: "main".into(),
            root: StorageRootId::generate(),
            run,
            run_segment: 0,
            start: Time90k(start),
            media_start_90k: 0,
            duration: Duration90k(frames.iter().map(|f| i64::from(f.duration_90k)).sum()),
            frames: frames.len() as u32,
            keyframes: frames.iter().filter(|f| f.sync).count() as u32,
            size_bytes: last.offset + u64::from(last.size_bytes) + 50,
            sha256: [0; 32],
            end_reason,
            recorder_synced: true,
            recorder_error_ms: None,
            camera_offset_ms: None,
            video_codec: "avc1.64001e".into(),
            width: 640,
            height: 360,
            audio_codec: None,
        }
    }

    /// 4 fragments of 15 frames at 15 fps; a keyframe every `gop` fragments.
    fn frames(gop: usize) -> Vec<TableFrame> {
        let mut out = Vec::new();
        let mut offset = 1000;
        for frag in 0..4 {
            for k in 0..15 {
                let fragment_start = (k == 0).then_some(offset);
                if k == 0 {
                    offset += 200;
                }
                out.push(TableFrame {
                    duration_90k: 6000,
                    size_bytes: 100,
                    sync: k == 0 && frag % gop == 0,
                    offset,
                    fragment_start,
                });
                offset += 100;
            }
        }
        out
    }

    #[test]
    fn parts_start_at_keyframes_and_tile_the_file() {
        let f = frames(2);
        let r = row(0, &f, RunId::generate(), EndReason::Rotated);
        let all = parts(&r, &f, &(Time90k::MIN..Time90k::MAX));
        // Keyframes open fragments 0 and 2: two parts of two fragments each.
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].offset, 1000);
        assert_eq!(all[0].offset + all[0].len, all[1].offset);
        assert_eq!(all[1].offset + all[1].len, r.size_bytes);
        assert_eq!(all[1].start, Time90k(180_000));
        assert!(all.iter().all(|p| p.duration == Duration90k(180_000)));
        // A start inside the second part begins at its keyframe.
        let some = parts(&r, &f, &(Time90k(200_000)..Time90k(210_000)));
        assert_eq!(some, all[1..]);
        assert!(parts(&r, &f, &(Time90k(400_000)..Time90k(500_000))).is_empty());
    }

    #[test]
    fn breaks_are_discontinuities() {
        let f = frames(1);
        let run = RunId::generate();
        let a = row(0, &f, run, EndReason::Rotated);
        let b = row(360_000, &f, run, EndReason::Disconnect);
        let c = row(1_000_000, &f, RunId::generate(), EndReason::RecorderStopped);
        let segs = vec![(a, f.clone()), (b, f.clone()), (c, f.clone())];
        let text = playlist(&segs, &(Time90k::MIN..Time90k::MAX), |r| {
            format!("s/{}.mp4", r.start.0)
        });
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1);
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 2);
        assert_eq!(text.matches("#EXTINF:1.000,").count(), 12);
        assert_eq!(
            text.matches("#EXT-X-MAP:URI=\"s/360000.mp4\",BYTERANGE=\"1000@0\"")
                .count(),
            1
        );
        assert!(text.contains("#EXT-X-TARGETDURATION:1\n"));
    }
}
