//! ISO BMFF box parsing of our own, and the structure checks of a segment file
//! (spec/segment-format.md) and of a progressive export (`export.mp4` in the OpenAPI document).

use serde_json::Value;

/// One box: its type and where it and its payload lie in the file.
#[derive(Clone, Copy, Debug)]
pub struct Mp4Box {
    pub typ: [u8; 4],
    pub start: usize,
    /// Where the payload starts (after size, type, and a `uuid`'s extended type).
    pub body: usize,
    pub end: usize,
}

impl Mp4Box {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.typ).into_owned()
    }
}

/// The boxes that tile `data[from..to]`.
pub fn boxes(data: &[u8], from: usize, to: usize) -> Result<Vec<Mp4Box>, String> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        if to - at < 8 {
            return Err(format!("{} stray bytes at offset {at}", to - at));
        }
        let size32 = u32::from_be_bytes(bytes4(data, at)?) as usize;
        let typ = bytes4(data, at + 4)?;
        let (size, mut body) = match size32 {
            0 => (to - at, at + 8),
            1 => {
                let large = u64::from_be_bytes(bytes8(data, at + 8)?);
                let large = usize::try_from(large).map_err(|_| "a box too large".to_owned())?;
                (large, at + 16)
            }
            n => (n, at + 8),
        };
        if &typ == b"uuid" {
            body += 16;
        }
        let end = at
            .checked_add(size)
            .filter(|&e| e <= to && body <= e)
            .ok_or_else(|| {
                format!(
                    "box {:?} at offset {at} of size {size} overruns its container (ends at {to})",
                    String::from_utf8_lossy(&typ)
                )
            })?;
        out.push(Mp4Box {
            typ,
            start: at,
            body,
            end,
        });
        at = end;
    }
    Ok(out)
}

fn bytes4(d: &[u8], at: usize) -> Result<[u8; 4], String> {
    d.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("file ends within a field at offset {at}"))
}

fn bytes8(d: &[u8], at: usize) -> Result<[u8; 8], String> {
    d.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("file ends within a field at offset {at}"))
}

fn u32_at(d: &[u8], at: usize) -> Result<u32, String> {
    bytes4(d, at).map(u32::from_be_bytes)
}

fn u64_at(d: &[u8], at: usize) -> Result<u64, String> {
    bytes8(d, at).map(u64::from_be_bytes)
}

/// The children of `b`, its payload starting `skip` bytes in (a full box's version and flags,
/// a sample entry's fixed fields).
fn children(d: &[u8], b: &Mp4Box, skip: usize) -> Result<Vec<Mp4Box>, String> {
    boxes(d, b.body + skip, b.end).map_err(|e| format!("in {}: {e}", b.name()))
}

fn find<'a>(list: &'a [Mp4Box], typ: &[u8; 4]) -> Option<&'a Mp4Box> {
    list.iter().find(|b| &b.typ == typ)
}

fn need<'a>(list: &'a [Mp4Box], typ: &[u8; 4], within: &str) -> Result<&'a Mp4Box, String> {
    find(list, typ).ok_or_else(|| {
        format!(
            "no {} box in {within}",
            String::from_utf8_lossy(typ).into_owned()
        )
    })
}

/// A track of a `moov`.
#[derive(Debug)]
pub struct Track {
    pub id: u32,
    pub handler: [u8; 4],
    pub timescale: u32,
    /// The first sample entry's type and its child boxes' types.
    pub entry: [u8; 4],
    pub entry_children: Vec<[u8; 4]>,
    pub has_edit_list: bool,
}

/// The `ftyp` brands: (major, compatible).
pub fn brands(d: &[u8], ftyp: &Mp4Box) -> Result<([u8; 4], Vec<[u8; 4]>), String> {
    let major = bytes4(d, ftyp.body)?;
    let mut compatible = Vec::new();
    let mut at = ftyp.body + 8;
    while at + 4 <= ftyp.end {
        compatible.push(bytes4(d, at)?);
        at += 4;
    }
    Ok((major, compatible))
}

/// The `mvhd` timescale and the tracks of a `moov`.
pub fn parse_moov(d: &[u8], moov: &Mp4Box) -> Result<(u32, Vec<Track>), String> {
    let kids = children(d, moov, 0)?;
    let mvhd = need(&kids, b"mvhd", "moov")?;
    let timescale = full_box_timescale(d, mvhd)?;
    let mut tracks = Vec::new();
    for trak in kids.iter().filter(|b| &b.typ == b"trak") {
        let t = children(d, trak, 0)?;
        let tkhd = need(&t, b"tkhd", "trak")?;
        let version = *d.get(tkhd.body).ok_or("empty tkhd")?;
        let id = u32_at(d, tkhd.body + if version == 1 { 20 } else { 12 })?;
        let mdia = children(d, need(&t, b"mdia", "trak")?, 0)?;
        let mdhd = need(&mdia, b"mdhd", "mdia")?;
        let track_timescale = full_box_timescale(d, mdhd)?;
        let hdlr = need(&mdia, b"hdlr", "mdia")?;
        let handler = bytes4(d, hdlr.body + 8)?;
        let minf = children(d, need(&mdia, b"minf", "mdia")?, 0)?;
        let stbl = children(d, need(&minf, b"stbl", "minf")?, 0)?;
        let stsd = need(&stbl, b"stsd", "stbl")?;
        let entries = children(d, stsd, 8)?;
        let entry = entries
            .first()
            .ok_or_else(|| format!("track {id}: stsd has no sample entry"))?;
        let skip = match &handler {
            b"vide" => 78,
            b"soun" => 28,
            _ => 0,
        };
        let entry_children = if skip == 0 {
            Vec::new()
        } else {
            children(d, entry, skip)?.iter().map(|b| b.typ).collect()
        };
        let has_edit_list = find(&t, b"edts")
            .map(|e| children(d, e, 0))
            .transpose()?
            .is_some_and(|e| find(&e, b"elst").is_some());
        tracks.push(Track {
            id,
            handler,
            timescale: track_timescale,
            entry: entry.typ,
            entry_children,
            has_edit_list,
        });
    }
    Ok((timescale, tracks))
}

/// The timescale of an `mvhd` or `mdhd`.
fn full_box_timescale(d: &[u8], b: &Mp4Box) -> Result<u32, String> {
    let version = *d.get(b.body).ok_or_else(|| format!("empty {}", b.name()))?;
    u32_at(d, b.body + if version == 1 { 20 } else { 12 })
}

/// One fragment of a segment: `prft`, `moof` and `mdat`.
#[derive(Debug)]
pub struct Fragment {
    /// Offset of its `prft`.
    pub start: usize,
    /// Offset of its `moof`.
    pub moof: usize,
    pub end: usize,
    pub video_tfdt: u64,
    pub video_duration: u64,
    pub first_is_sync: bool,
    /// (tfdt, duration) of the audio run, when there is one.
    pub audio: Option<(u64, u64)>,
}

/// A segment file as spec/segment-format.md lays it out.
#[derive(Debug)]
pub struct Segment {
    pub header: Value,
    /// Bytes before the first fragment (the HLS init section).
    pub init_len: usize,
    pub fragments: Vec<Fragment>,
    pub trailer: Option<Value>,
    pub has_audio: bool,
}

/// The `trun` flags the format requires: data offset, and per sample duration, size, flags.
const TRUN_REQUIRED: u32 = 0x1 | 0x100 | 0x200 | 0x400;
/// `sample_is_non_sync_sample` in a sample's flags.
const NON_SYNC: u32 = 0x0001_0000;
/// `tfhd` flag: `default-base-is-moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// The header fields of spec/segment-format.md and the JSON types they take.
const HEADER_FIELDS: [(&str, &str); 14] = [
    ("format", "integer"),
    ("recorder", "ulid"),
    ("camera", "ulid"),
    ("stream", "string"),
    ("run", "ulid"),
    ("run_segment", "integer"),
    ("start_90k", "integer"),
    ("media_start_90k", "integer"),
    ("video_codec", "string"),
    ("width", "integer"),
    ("height", "integer"),
    ("audio_codec", "string|null"),
    ("audio_sample_rate", "integer|null"),
    ("recorder_synced", "boolean"),
];

/// The end reasons of spec/segment-format.md.
pub const END_REASONS: [&str; 11] = [
    "rotated",
    "disconnect",
    "stall",
    "camera_error",
    "codec_change",
    "clock_step",
    "disk_error",
    "crash",
    "recorder_stopped",
    "evicted",
    "disabled",
];

pub fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.starts_with(|c: char| ('0'..='7').contains(&c))
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

fn json_type_ok(v: &Value, want: &str) -> bool {
    want.split('|').any(|t| match t {
        "integer" => v.is_i64() || v.is_u64(),
        "string" => v.is_string(),
        "ulid" => v.as_str().is_some_and(is_ulid),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    })
}

/// Parses and checks a whole segment file: the layout, the header, and every fragment (whole,
/// with `tfdt` continuous from fragment to fragment, at most 1 s of video, the first sample a
/// keyframe).
pub fn parse_segment(d: &[u8]) -> Result<Segment, String> {
    let top = boxes(d, 0, d.len())?;
    let names: Vec<String> = top.iter().take(4).map(Mp4Box::name).collect();
    let [ftyp, moov, header_box, ..] = top.as_slice() else {
        return Err(format!("too few boxes: {names:?}"));
    };
    if &ftyp.typ != b"ftyp" || &moov.typ != b"moov" || !is_uuid(d, header_box, b"vms-seg-header-1")
    {
        return Err(format!(
            "the file starts with {names:?}, not ftyp, moov, uuid \"vms-seg-header-1\""
        ));
    }
    let (major, compatible) = brands(d, ftyp)?;
    if &major != b"iso6" {
        return Err(format!(
            "ftyp major brand {:?}, not \"iso6\"",
            String::from_utf8_lossy(&major)
        ));
    }
    for want in [b"iso6", b"isom", b"mp41", b"vms1"] {
        if !compatible.contains(want) {
            return Err(format!(
                "ftyp lacks the compatible brand {:?}",
                String::from_utf8_lossy(want)
            ));
        }
    }
    let header: Value = serde_json::from_slice(&d[header_box.body..header_box.end])
        .map_err(|e| format!("the header uuid is not JSON: {e}"))?;
    for (field, want) in HEADER_FIELDS {
        if !json_type_ok(&header[field], want) {
            return Err(format!(
                "header field {field} is {}, not {want}",
                header[field]
            ));
        }
    }
    if header["format"] != 1 {
        return Err(format!("header format {}, not 1", header["format"]));
    }
    if !json_type_ok(&header["recorder_error_ms"], "integer|null") {
        return Err("header field recorder_error_ms is not an integer or null".into());
    }
    let (timescale, tracks) = parse_moov(d, moov)?;
    if timescale != 90000 {
        return Err(format!("mvhd timescale {timescale}, not 90000"));
    }
    let video = tracks
        .iter()
        .find(|t| t.id == 1)
        .ok_or("no track 1 (video)")?;
    if &video.handler != b"vide" || video.timescale != 90000 {
        return Err(format!(
            "track 1 is {:?} with timescale {}, not video at 90000",
            String::from_utf8_lossy(&video.handler),
            video.timescale
        ));
    }
    let config = match &video.entry {
        b"avc1" => b"avcC",
        b"hvc1" => b"hvcC",
        other => {
            return Err(format!(
                "track 1 sample entry {:?}, not avc1 or hvc1",
                String::from_utf8_lossy(other)
            ));
        }
    };
    if !video.entry_children.contains(config) {
        return Err(format!(
            "track 1 sample entry {} has no {}",
            String::from_utf8_lossy(&video.entry),
            String::from_utf8_lossy(config)
        ));
    }
    let audio = tracks.iter().find(|t| t.id == 2);
    if let Some(a) = audio {
        if &a.handler != b"soun" || &a.entry != b"mp4a" || !a.entry_children.contains(b"esds") {
            return Err("track 2 is not AAC audio (soun, mp4a with esds)".into());
        }
        if header["audio_sample_rate"].as_u64() != Some(u64::from(a.timescale)) {
            return Err(format!(
                "track 2 timescale {} is not the header's audio_sample_rate {}",
                a.timescale, header["audio_sample_rate"]
            ));
        }
    }
    if audio.is_some() == header["audio_codec"].is_null() {
        return Err("the header's audio_codec disagrees with the tracks".into());
    }
    let mvex = children(d, need(&children(d, moov, 0)?, b"mvex", "moov")?, 0)?;
    let trex: Vec<u32> = mvex
        .iter()
        .filter(|b| &b.typ == b"trex")
        .map(|b| u32_at(d, b.body + 4))
        .collect::<Result<_, _>>()?;
    for t in &tracks {
        if !trex.contains(&t.id) {
            return Err(format!("mvex has no trex for track {}", t.id));
        }
    }

    let mut fragments = Vec::new();
    let mut i = 3;
    while i < top.len() && &top[i].typ == b"prft" {
        let (Some(moof), Some(mdat)) = (top.get(i + 1), top.get(i + 2)) else {
            return Err(format!(
                "fragment {} at offset {} is not prft, moof, mdat",
                fragments.len(),
                top[i].start
            ));
        };
        if &moof.typ != b"moof" || &mdat.typ != b"mdat" {
            return Err(format!(
                "fragment {} at offset {} is prft, {}, {}, not prft, moof, mdat",
                fragments.len(),
                top[i].start,
                moof.name(),
                mdat.name()
            ));
        }
        let f = parse_fragment(d, &top[i], moof, mdat, audio.is_some()).map_err(|e| {
            format!(
                "fragment {} at offset {}: {e}",
                fragments.len(),
                top[i].start
            )
        })?;
        fragments.push(f);
        i += 3;
    }
    let mut trailer = None;
    if let Some(b) = top.get(i)
        && is_uuid(d, b, b"vms-seg-trailr-1")
    {
        let t: Value = serde_json::from_slice(&d[b.body..b.end])
            .map_err(|e| format!("the trailer uuid is not JSON: {e}"))?;
        if !t["end_reason"]
            .as_str()
            .is_some_and(|r| END_REASONS.contains(&r))
        {
            return Err(format!(
                "the trailer's end_reason {} is not an end reason",
                t["end_reason"]
            ));
        }
        if !json_type_ok(&t["camera_offset_ms"], "integer|null") {
            return Err("the trailer's camera_offset_ms is not an integer or null".into());
        }
        trailer = Some(t);
        i += 1;
    }
    if top.get(i).is_some_and(|b| &b.typ == b"mfra") {
        i += 1;
    }
    if let Some(b) = top.get(i) {
        return Err(format!(
            "box {} at offset {} after the fragments, where only a trailer uuid and mfra may be",
            b.name(),
            b.start
        ));
    }
    let first = fragments.first().ok_or("no whole fragment")?;
    if !first.first_is_sync {
        return Err("the first sample of the segment is not a keyframe".into());
    }
    if header["media_start_90k"].as_u64() != Some(first.video_tfdt) {
        return Err(format!(
            "the header's media_start_90k {} is not the first video tfdt {}",
            header["media_start_90k"], first.video_tfdt
        ));
    }
    for (n, w) in fragments.windows(2).enumerate() {
        if w[0].video_tfdt + w[0].video_duration != w[1].video_tfdt {
            return Err(format!(
                "video tfdt is not continuous: fragment {n} starts at {} and lasts {}, fragment {} starts at {}",
                w[0].video_tfdt,
                w[0].video_duration,
                n + 1,
                w[1].video_tfdt
            ));
        }
        if let (Some((t0, d0)), Some((t1, _))) = (w[0].audio, w[1].audio)
            && t0 + d0 != t1
        {
            return Err(format!(
                "audio tfdt is not continuous: fragment {n} starts at {t0} and lasts {d0}, fragment {} starts at {t1}",
                n + 1
            ));
        }
    }
    Ok(Segment {
        header,
        init_len: first.start,
        fragments,
        trailer,
        has_audio: audio.is_some(),
    })
}

fn is_uuid(d: &[u8], b: &Mp4Box, ext: &[u8; 16]) -> bool {
    &b.typ == b"uuid" && d.get(b.start + 8..b.start + 24) == Some(&ext[..])
}

/// A track run's totals.
struct Run {
    track: u32,
    tfdt: u64,
    duration: u64,
    size: u64,
    samples: usize,
    first_sync: bool,
    data_offset: i64,
}

fn parse_fragment(
    d: &[u8],
    prft: &Mp4Box,
    moof: &Mp4Box,
    mdat: &Mp4Box,
    with_audio: bool,
) -> Result<Fragment, String> {
    let (version, flags) = version_flags(d, prft)?;
    if version != 1 || flags != 0 {
        return Err(format!(
            "prft version {version} flags {flags:#x}, not version 1 flags 0"
        ));
    }
    let prft_media_time = u64_at(d, prft.body + 16)?;
    let kids = children(d, moof, 0)?;
    if kids.first().is_none_or(|b| &b.typ != b"mfhd") {
        return Err("moof does not start with mfhd".into());
    }
    let mut runs = Vec::new();
    for traf in kids.iter().filter(|b| &b.typ == b"traf") {
        runs.push(parse_traf(d, traf)?);
    }
    let want = if with_audio { 2 } else { 1 };
    if runs.len() != want {
        return Err(format!(
            "{} traf boxes, not one per track ({want})",
            runs.len()
        ));
    }
    let video = runs
        .iter()
        .find(|r| r.track == 1)
        .ok_or("no traf for track 1")?;
    if prft_media_time != video.tfdt {
        return Err(format!(
            "prft media time {prft_media_time} is not the video tfdt {}",
            video.tfdt
        ));
    }
    let payload = (mdat.end - mdat.body) as u64;
    let sizes: u64 = runs.iter().map(|r| r.size).sum();
    if payload != sizes {
        return Err(format!(
            "mdat holds {payload} bytes, the trun sample sizes sum to {sizes}"
        ));
    }
    let data_start = (mdat.body - moof.start) as i64;
    if video.data_offset != data_start {
        return Err(format!(
            "the video trun's data offset {} is not the start of the mdat payload ({data_start})",
            video.data_offset
        ));
    }
    let audio = runs.iter().find(|r| r.track == 2);
    if let Some(a) = audio {
        let after_video = data_start + video.size as i64;
        if a.data_offset != after_video {
            return Err(format!(
                "the audio trun's data offset {} is not right after the video samples ({after_video})",
                a.data_offset
            ));
        }
    }
    if video.duration > 90000 {
        return Err(format!(
            "{} units (90 kHz) of video, more than 1 s",
            video.duration
        ));
    }
    if video.samples == 0 {
        return Err("no video sample".into());
    }
    Ok(Fragment {
        start: prft.start,
        moof: moof.start,
        end: mdat.end,
        video_tfdt: video.tfdt,
        video_duration: video.duration,
        first_is_sync: video.first_sync,
        audio: audio.map(|a| (a.tfdt, a.duration)),
    })
}

fn version_flags(d: &[u8], b: &Mp4Box) -> Result<(u8, u32), String> {
    let v = u32_at(d, b.body)?;
    Ok(((v >> 24) as u8, v & 0x00ff_ffff))
}

fn parse_traf(d: &[u8], traf: &Mp4Box) -> Result<Run, String> {
    let kids = children(d, traf, 0)?;
    let tfhd = need(&kids, b"tfhd", "traf")?;
    let (_, tfhd_flags) = version_flags(d, tfhd)?;
    let track = u32_at(d, tfhd.body + 4)?;
    if tfhd_flags & DEFAULT_BASE_IS_MOOF == 0 {
        return Err(format!("track {track}: tfhd is not default-base-is-moof"));
    }
    let tfdt = need(&kids, b"tfdt", "traf")?;
    let (tfdt_version, _) = version_flags(d, tfdt)?;
    if tfdt_version != 1 {
        return Err(format!("track {track}: tfdt version {tfdt_version}, not 1"));
    }
    let base = u64_at(d, tfdt.body + 4)?;
    let trun = need(&kids, b"trun", "traf")?;
    let (_, flags) = version_flags(d, trun)?;
    if flags & TRUN_REQUIRED != TRUN_REQUIRED {
        return Err(format!(
            "track {track}: trun flags {flags:#x} lack the data offset or a per-sample duration, size or flags"
        ));
    }
    let count = u32_at(d, trun.body + 4)? as usize;
    let mut at = trun.body + 8;
    let data_offset = i64::from(u32_at(d, at)? as i32);
    at += 4;
    let first_flags = if flags & 0x4 != 0 {
        let f = u32_at(d, at)?;
        at += 4;
        Some(f)
    } else {
        None
    };
    let per_sample = 12 + if flags & 0x800 != 0 { 4 } else { 0 };
    if at + count * per_sample > trun.end {
        return Err(format!(
            "track {track}: trun of {count} samples overruns its box"
        ));
    }
    let (mut duration, mut size, mut first_sync) = (0u64, 0u64, false);
    for n in 0..count {
        let s = at + n * per_sample;
        duration += u64::from(u32_at(d, s)?);
        size += u64::from(u32_at(d, s + 4)?);
        if n == 0 {
            let f = first_flags.unwrap_or(u32_at(d, s + 8)?);
            first_sync = f & NON_SYNC == 0;
        }
    }
    Ok(Run {
        track,
        tfdt: base,
        duration,
        size,
        samples: count,
        first_sync,
        data_offset,
    })
}

/// Checks a progressive export: `ftyp` first, `moov` before `mdat`, track 1 the video as
/// stored with an edit list, track 2 the wall clock as `tx3g` text, track 3 (if any) audio.
/// Returns a short description.
pub fn check_export(d: &[u8]) -> Result<String, String> {
    let top = boxes(d, 0, d.len())?;
    let order: Vec<String> = top.iter().map(Mp4Box::name).collect();
    if top.first().is_none_or(|b| &b.typ != b"ftyp") {
        return Err(format!("the file does not start with ftyp: {order:?}"));
    }
    let moov = top
        .iter()
        .position(|b| &b.typ == b"moov")
        .ok_or_else(|| format!("no moov: {order:?}"))?;
    let mdat = top
        .iter()
        .position(|b| &b.typ == b"mdat")
        .ok_or_else(|| format!("no mdat: {order:?}"))?;
    if moov > mdat {
        return Err(format!("mdat comes before moov: {order:?}"));
    }
    let (_, tracks) = parse_moov(d, &top[moov])?;
    let by_id = |id: u32| tracks.iter().find(|t| t.id == id);
    let video = by_id(1).ok_or("no track 1")?;
    if &video.handler != b"vide" || !matches!(&video.entry, b"avc1" | b"hvc1") {
        return Err(format!(
            "track 1 is {:?}/{:?}, not video avc1 or hvc1",
            String::from_utf8_lossy(&video.handler),
            String::from_utf8_lossy(&video.entry)
        ));
    }
    if !video.has_edit_list {
        return Err("track 1 has no edit list (edts/elst)".into());
    }
    let text = by_id(2).ok_or("no track 2 (the wall clock as text)")?;
    if &text.entry != b"tx3g" {
        return Err(format!(
            "track 2 sample entry {:?}, not tx3g",
            String::from_utf8_lossy(&text.entry)
        ));
    }
    if let Some(a) = by_id(3)
        && (&a.handler != b"soun" || &a.entry != b"mp4a")
    {
        return Err("track 3 is not AAC audio".into());
    }
    Ok(format!(
        "{} bytes: {}, {} tracks",
        d.len(),
        order.join(" "),
        tracks.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(payload);
        v
    }

    fn full(typ: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = (u32::from(version) << 24 | flags).to_be_bytes().to_vec();
        p.extend_from_slice(payload);
        bx(typ, &p)
    }

    fn uuid(ext: &[u8; 16], payload: &[u8]) -> Vec<u8> {
        let mut p = ext.to_vec();
        p.extend_from_slice(payload);
        bx(b"uuid", &p)
    }

    /// A sample: duration, size, flags.
    type Sample = (u32, u32, u32);
    /// A fragment: its tfdt and samples.
    type Frag<'a> = (u64, &'a [Sample]);

    /// A one-track segment of these fragments.
    fn segment(fragments: &[Frag]) -> Vec<u8> {
        let mut ftyp = b"iso6\0\0\0\0".to_vec();
        ftyp.extend_from_slice(b"iso6isommp41vms1");
        let mut out = bx(b"ftyp", &ftyp);
        let timescale = |v: u32| [&[0u8; 8][..], &v.to_be_bytes(), &[0u8; 4]].concat();
        let mvhd = full(b"mvhd", 0, 0, &timescale(90000));
        let tkhd = full(
            b"tkhd",
            0,
            0,
            &[&[0u8; 8][..], &1u32.to_be_bytes()].concat(),
        );
        let mdhd = full(b"mdhd", 0, 0, &timescale(90000));
        let hdlr = full(
            b"hdlr",
            0,
            0,
            &[&[0u8; 4][..], b"vide", &[0u8; 12]].concat(),
        );
        let avc1 = bx(
            b"avc1",
            &[&[0u8; 78][..], &bx(b"avcC", &[1, 2, 3])].concat(),
        );
        let stsd = full(b"stsd", 0, 0, &[&1u32.to_be_bytes()[..], &avc1].concat());
        let stbl = bx(b"stbl", &stsd);
        let minf = bx(b"minf", &stbl);
        let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
        let trak = bx(b"trak", &[tkhd, mdia].concat());
        let trex = full(
            b"trex",
            0,
            0,
            &[&1u32.to_be_bytes()[..], &[0u8; 16]].concat(),
        );
        let mvex = bx(b"mvex", &trex);
        out.extend(bx(b"moov", &[mvhd, trak, mvex].concat()));
        let header = serde_json::json!({"format": 1, "recorder": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "camera": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "stream": "main",
            "run": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "run_segment": 0, "start_90k": 1,
            "media_start_90k": fragments.first().map_or(0, |f| f.0), "video_codec": "avc1.640014",
            "width": 320, "height": 180, "audio_codec": null, "audio_sample_rate": null,
            "recorder_synced": true, "recorder_error_ms": null});
        out.extend(uuid(b"vms-seg-header-1", header.to_string().as_bytes()));
        for (n, (tfdt, samples)) in fragments.iter().enumerate() {
            let prft = full(
                b"prft",
                1,
                0,
                &[&1u32.to_be_bytes()[..], &[0u8; 8], &tfdt.to_be_bytes()].concat(),
            );
            let mfhd = full(b"mfhd", 0, 0, &(n as u32 + 1).to_be_bytes());
            let tfhd = full(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes());
            let tfdt_box = full(b"tfdt", 1, 0, &tfdt.to_be_bytes());
            let trun_len = 8 + 4 + 4 + 4 + 12 * samples.len();
            let traf_len = 8 + tfhd.len() + tfdt_box.len() + trun_len;
            let moof_len = 8 + mfhd.len() + traf_len;
            let mut trun = (samples.len() as u32).to_be_bytes().to_vec();
            trun.extend_from_slice(&(moof_len as u32 + 8).to_be_bytes());
            for (d, s, f) in samples.iter() {
                trun.extend([d.to_be_bytes(), s.to_be_bytes(), f.to_be_bytes()].concat());
            }
            let trun = full(b"trun", 0, 0x701, &trun);
            let traf = bx(b"traf", &[tfhd, tfdt_box, trun].concat());
            let moof = bx(b"moof", &[mfhd, traf].concat());
            assert_eq!(moof.len(), moof_len);
            let size: u32 = samples.iter().map(|s| s.1).sum();
            out.extend([prft, moof, bx(b"mdat", &vec![0u8; size as usize])].concat());
        }
        out
    }

    const SYNC: u32 = 0x0200_0000;
    const DEPENDENT: u32 = 0x0101_0000;

    #[test]
    fn a_well_formed_segment_parses() {
        let d = segment(&[
            (1000, &[(6000, 10, SYNC), (6000, 5, DEPENDENT)]),
            (13000, &[(6000, 10, SYNC)]),
        ]);
        let s = parse_segment(&d).expect("parses");
        assert_eq!(s.fragments.len(), 2);
        assert_eq!(s.fragments[1].video_tfdt, 13000);
        assert!(s.trailer.is_none() && !s.has_audio);
    }

    #[test]
    fn broken_segments_name_their_fault() {
        let cases: [(&[Frag], &str); 3] = [
            (
                &[(1000, &[(6000, 10, SYNC)]), (9000, &[(6000, 10, SYNC)])],
                "not continuous",
            ),
            (&[(1000, &[(6000, 10, DEPENDENT)])], "not a keyframe"),
            (&[(1000, &[(91000, 10, SYNC)])], "more than 1 s"),
        ];
        for (fragments, want) in cases {
            let e = parse_segment(&segment(fragments)).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let d = segment(&[(1000, &[(6000, 10, SYNC), (6000, 5, DEPENDENT)])]);
        for len in 0..d.len() {
            assert!(parse_segment(&d[..len]).is_err(), "{len}");
            let _ = check_export(&d[..len]);
        }
        for at in 0..d.len() {
            let mut c = d.clone();
            c[at] ^= 0xff;
            let _ = parse_segment(&c);
            let _ = check_export(&c);
        }
    }
}
