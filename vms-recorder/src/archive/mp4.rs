//! ISO BMFF (MP4) boxes of a segment file, written and read back: the init section (`ftyp`,
//! `moov`), one fragment (`prft`, `moof`, `mdat`), our `uuid` boxes, and the `mfra` trailer.
//! Layout and semantics are normative in `spec/segment-format.md`.

use vms_core::{Error, bail, err};

/// Brand that marks our segment format, and its version (`vms1` = format 1).
pub const SEGMENT_BRAND: &[u8; 4] = b"vms1";

/// Track ids inside a segment.
pub const VIDEO_TRACK_ID: u32 = 1;
pub const AUDIO_TRACK_ID: u32 = 2;

/// Sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample, and a sample that depends on others.
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Appends a box: 32-bit size, type, then whatever `body` writes.
pub fn write_box(buf: &mut Vec<u8>, fourcc: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(fourcc);
    body(buf);
    let size = u32::try_from(buf.len() - start).expect("boxes here stay under 4 GiB");
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (version and flags after the type).
pub fn write_full_box(
    buf: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    write_box(buf, fourcc, |b| {
        b.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(b);
    });
}

pub fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// What the init section needs to describe one track.
pub struct TrackSpec<'a> {
    pub track_id: u32,
    pub timescale: u32,
    /// The complete sample entry box (`avc1`, `hvc1`, `mp4a`, …).
    pub sample_entry: &'a [u8],
    /// Display size for video; `None` marks an audio track.
    pub video_size: Option<(u32, u32)>,
}

/// Writes `ftyp` and `moov` for a fragmented file with the given tracks.
pub fn write_init(buf: &mut Vec<u8>, tracks: &[TrackSpec<'_>]) {
    write_box(buf, b"ftyp", |b| {
        b.extend_from_slice(b"iso6");
        put_u32(b, 0);
        for brand in [b"iso6", b"isom", b"mp41", SEGMENT_BRAND] {
            b.extend_from_slice(brand);
        }
    });
    write_moov(buf, tracks);
}

/// Writes the `moov` of a fragmented file with the given tracks.
pub fn write_moov(buf: &mut Vec<u8>, tracks: &[TrackSpec<'_>]) {
    write_box(buf, b"moov", |b| {
        write_full_box(b, b"mvhd", 0, 0, |b| {
            put_u32(b, 0); // creation time
            put_u32(b, 0); // modification time
            put_u32(b, 90_000); // timescale
            put_u32(b, 0); // duration: fragmented
            put_u32(b, 0x0001_0000); // rate 1.0
            put_u16(b, 0x0100); // volume 1.0
            b.extend_from_slice(&[0; 10]);
            UNITY_MATRIX.iter().for_each(|&m| put_u32(b, m));
            b.extend_from_slice(&[0; 24]); // pre_defined
            put_u32(b, tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1);
        });
        for t in tracks {
            write_trak(b, t);
        }
        write_box(b, b"mvex", |b| {
            for t in tracks {
                write_full_box(b, b"trex", 0, 0, |b| {
                    put_u32(b, t.track_id);
                    put_u32(b, 1); // sample description index
                    put_u32(b, 0);
                    put_u32(b, 0);
                    put_u32(b, 0);
                });
            }
        });
    });
}

fn write_trak(b: &mut Vec<u8>, t: &TrackSpec<'_>) {
    let handler = match t.video_size {
        Some((width, height)) => Handler::Video { width, height },
        None => Handler::Audio,
    };
    write_trak_box(
        b,
        &Trak {
            track_id: t.track_id,
            timescale: t.timescale,
            sample_entry: t.sample_entry,
            handler,
            duration: 0,
            media_duration: 0,
            edits: &[],
        },
        |b| {
            for empty in [b"stts", b"stsc", b"stco"] {
                write_full_box(b, empty, 0, 0, |b| put_u32(b, 0));
            }
            write_full_box(b, b"stsz", 0, 0, |b| {
                put_u32(b, 0);
                put_u32(b, 0);
            });
        },
    );
}

/// What a track carries.
#[derive(Clone, Copy, Debug)]
pub enum Handler {
    Video {
        width: u32,
        height: u32,
    },
    Audio,
    /// Timed text (3GPP `tx3g`), drawn over a video of this size.
    Text {
        width: u32,
        height: u32,
    },
}

/// One `trak` of a fragmented init section or of a progressive file.
pub struct Trak<'a> {
    pub track_id: u32,
    pub timescale: u32,
    /// The complete sample entry box.
    pub sample_entry: &'a [u8],
    pub handler: Handler,
    /// Presentation length in the movie timescale (90 kHz); 0 when fragmented.
    pub duration: u64,
    /// Media length in the track's timescale; 0 when fragmented.
    pub media_duration: u64,
    /// The edit list: `(presentation length in the movie timescale, media time where it
    /// starts in the track's timescale, or -1 for an empty edit)`; none when empty.
    pub edits: &'a [(u64, i64)],
}

/// Writes a version 0 full box, or version 1 when a 64-bit duration needs it; `fields`
/// writes what follows the times (or, given `true`, their 64-bit form).
fn write_timed_full_box(
    b: &mut Vec<u8>,
    fourcc: &[u8; 4],
    flags: u32,
    duration: u64,
    before_duration: impl FnOnce(&mut Vec<u8>, bool),
    after_duration: impl FnOnce(&mut Vec<u8>),
) {
    let wide = duration > u64::from(u32::MAX);
    write_full_box(b, fourcc, u8::from(wide), flags, |b| {
        before_duration(b, wide);
        if wide {
            put_u64(b, duration);
        } else {
            put_u32(b, duration as u32);
        }
        after_duration(b);
    });
}

/// Creation and modification times, 0 (unknown), in a box's version.
fn put_times(b: &mut Vec<u8>, wide: bool) {
    if wide {
        put_u64(b, 0);
        put_u64(b, 0);
    } else {
        put_u32(b, 0);
        put_u32(b, 0);
    }
}

/// Writes a `trak`; `tables` writes the boxes of its `stbl` after `stsd`.
pub fn write_trak_box(b: &mut Vec<u8>, t: &Trak<'_>, tables: impl FnOnce(&mut Vec<u8>)) {
    let (width, height) = match t.handler {
        Handler::Video { width, height } | Handler::Text { width, height } => (width, height),
        Handler::Audio => (0, 0),
    };
    write_box(b, b"trak", |b| {
        write_timed_full_box(
            b,
            b"tkhd",
            3,
            t.duration,
            |b, wide| {
                put_times(b, wide);
                put_u32(b, t.track_id);
                put_u32(b, 0);
            },
            |b| {
                b.extend_from_slice(&[0; 8]);
                put_u16(b, 0); // layer
                put_u16(b, 0); // alternate group
                put_u16(
                    b,
                    if matches!(t.handler, Handler::Audio) {
                        0x0100
                    } else {
                        0
                    },
                );
                put_u16(b, 0);
                UNITY_MATRIX.iter().for_each(|&m| put_u32(b, m));
                put_u32(b, width << 16);
                put_u32(b, height << 16);
            },
        );
        if !t.edits.is_empty() {
            write_box(b, b"edts", |b| {
                write_full_box(b, b"elst", 1, 0, |b| {
                    put_u32(b, t.edits.len() as u32);
                    for &(duration, media_time) in t.edits {
                        put_u64(b, duration);
                        b.extend_from_slice(&media_time.to_be_bytes());
                        put_u32(b, 0x0001_0000); // rate 1.0
                    }
                });
            });
        }
        write_box(b, b"mdia", |b| {
            write_timed_full_box(
                b,
                b"mdhd",
                0,
                t.media_duration,
                |b, wide| {
                    put_times(b, wide);
                    put_u32(b, t.timescale);
                },
                |b| {
                    put_u16(b, 0x55c4); // language "und"
                    put_u16(b, 0);
                },
            );
            let (handler, name): (&[u8; 4], &[u8]) = match t.handler {
                Handler::Video { .. } => (b"vide", b"VideoHandler\0"),
                Handler::Audio => (b"soun", b"SoundHandler\0"),
                Handler::Text { .. } => (b"text", b"WallClock\0"),
            };
            write_full_box(b, b"hdlr", 0, 0, |b| {
                put_u32(b, 0);
                b.extend_from_slice(handler);
                b.extend_from_slice(&[0; 12]);
                b.extend_from_slice(name);
            });
            write_box(b, b"minf", |b| {
                match t.handler {
                    Handler::Video { .. } => {
                        write_full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]))
                    }
                    Handler::Audio => write_full_box(b, b"smhd", 0, 0, |b| put_u32(b, 0)),
                    Handler::Text { .. } => write_full_box(b, b"nmhd", 0, 0, |_| {}),
                }
                write_box(b, b"dinf", |b| {
                    write_full_box(b, b"dref", 0, 0, |b| {
                        put_u32(b, 1);
                        write_full_box(b, b"url ", 0, 1, |_| {});
                    });
                });
                write_box(b, b"stbl", |b| {
                    write_full_box(b, b"stsd", 0, 0, |b| {
                        put_u32(b, 1);
                        b.extend_from_slice(t.sample_entry);
                    });
                    tables(b);
                });
            });
        });
    });
}

/// One sample of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
}

/// One track's run of samples in a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    /// `tfdt`: decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

impl TrackRun {
    pub fn data_len(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.size)).sum()
    }
}

/// Writes `prft` (version 1), `moof` and the `mdat` header for a fragment whose sample data
/// (track after track, in `runs` order) follows immediately. `ntp` is the wall-clock time of
/// the first sample of the first run, as a 64-bit NTP timestamp.
pub fn write_fragment_header(buf: &mut Vec<u8>, sequence: u32, ntp: u64, runs: &[TrackRun]) {
    if let Some(first) = runs.first() {
        write_full_box(buf, b"prft", 1, 0, |b| {
            put_u32(b, first.track_id);
            put_u64(b, ntp);
            put_u64(b, first.base_decode_time);
        });
    }
    let moof_start = buf.len();
    let mut offset_fields = Vec::with_capacity(runs.len());
    write_box(buf, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| put_u32(b, sequence));
        for run in runs {
            write_box(b, b"traf", |b| {
                // default-base-is-moof: data offsets count from the start of this moof.
                write_full_box(b, b"tfhd", 0, 0x02_0000, |b| put_u32(b, run.track_id));
                write_full_box(b, b"tfdt", 1, 0, |b| put_u64(b, run.base_decode_time));
                // data-offset, sample duration, size and flags present.
                write_full_box(b, b"trun", 0, 0x0000_0701, |b| {
                    put_u32(b, run.samples.len() as u32);
                    offset_fields.push(b.len());
                    put_u32(b, 0);
                    for s in &run.samples {
                        put_u32(b, s.duration);
                        put_u32(b, s.size);
                        put_u32(
                            b,
                            if s.sync {
                                SYNC_SAMPLE_FLAGS
                            } else {
                                NON_SYNC_SAMPLE_FLAGS
                            },
                        );
                    }
                });
            });
        }
    });
    let moof_len = buf.len() - moof_start;
    let mut data_offset = moof_len as u64 + 8;
    for (field, run) in offset_fields.into_iter().zip(runs) {
        let v = u32::try_from(data_offset).expect("fragment under 4 GiB");
        buf[field..field + 4].copy_from_slice(&v.to_be_bytes());
        data_offset += run.data_len();
    }
    let mdat_len = 8 + runs.iter().map(TrackRun::data_len).sum::<u64>();
    put_u32(buf, u32::try_from(mdat_len).expect("fragment under 4 GiB"));
    buf.extend_from_slice(b"mdat");
}

/// Writes a `uuid` box: our 16-byte type id, then `payload`.
pub fn write_uuid_box(buf: &mut Vec<u8>, uuid: &[u8; 16], payload: &[u8]) {
    write_box(buf, b"uuid", |b| {
        b.extend_from_slice(uuid);
        b.extend_from_slice(payload);
    });
}

/// Writes `mfra` with one `tfra` for `track_id` listing `(decode time, moof offset)` pairs, and
/// the closing `mfro`, so that the file's last 16 bytes locate the fragment table.
pub fn write_mfra(buf: &mut Vec<u8>, track_id: u32, entries: &[(u64, u64)]) {
    let start = buf.len();
    write_box(buf, b"mfra", |b| {
        write_full_box(b, b"tfra", 1, 0, |b| {
            put_u32(b, track_id);
            put_u32(b, 0); // 1-byte traf/trun/sample numbers
            put_u32(b, entries.len() as u32);
            for &(time, offset) in entries {
                put_u64(b, time);
                put_u64(b, offset);
                b.extend_from_slice(&[1, 1, 1]);
            }
        });
        let mfra_len = (b.len() - start + 16) as u32;
        write_full_box(b, b"mfro", 0, 0, |b| put_u32(b, mfra_len));
    });
}

/// A box found by [`next_box`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxRef<'a> {
    pub fourcc: [u8; 4],
    /// Offset of the box in the buffer it was found in.
    pub offset: usize,
    /// Everything after the header (and after the 16-byte id, for `uuid`).
    pub payload: &'a [u8],
    /// For `uuid` boxes, the 16-byte type id.
    pub uuid: Option<[u8; 16]>,
    /// Total length, header included.
    pub len: usize,
}

/// Reads the box at `data[at..]`. `Ok(None)` when fewer bytes remain than the box claims
/// (a box cut short by a crash); `Err` when the header itself is impossible.
pub fn next_box(data: &[u8], at: usize) -> Result<Option<BoxRef<'_>>, Error> {
    let rest = &data[at.min(data.len())..];
    if rest.len() < 8 {
        return Ok(None);
    }
    let size32 = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes"));
    let fourcc: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
    let (len, header) = match size32 {
        0 => bail!(
            DataLoss,
            "box {} at byte {at} has size 0 (to end of file)",
            show(&fourcc)
        ),
        1 => {
            let Some(large) = rest.get(8..16) else {
                return Ok(None);
            };
            let large = u64::from_be_bytes(large.try_into().expect("8 bytes"));
            (usize::try_from(large).unwrap_or(usize::MAX), 16)
        }
        n => (n as usize, 8),
    };
    if len < header {
        bail!(
            DataLoss,
            "box {} at byte {at} claims {len} bytes",
            show(&fourcc)
        );
    }
    if rest.len() < len {
        return Ok(None);
    }
    let mut payload = &rest[header..len];
    let mut uuid = None;
    if &fourcc == b"uuid" {
        let Some(id) = payload.get(..16) else {
            bail!(DataLoss, "uuid box at byte {at} is too short");
        };
        uuid = Some(id.try_into().expect("16 bytes"));
        payload = &payload[16..];
    }
    Ok(Some(BoxRef {
        fourcc,
        offset: at,
        payload,
        uuid,
        len,
    }))
}

/// The child boxes of a container payload; an incomplete child is an error here, since the
/// container itself was complete.
pub fn children(payload: &[u8]) -> Result<Vec<BoxRef<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let b = next_box(payload, at)?
            .ok_or_else(|| err!(DataLoss, "child box at byte {at} runs past its container"))?;
        at += b.len;
        out.push(b);
    }
    Ok(out)
}

/// One track of an init section.
pub struct InitTrack {
    pub track_id: u32,
    pub timescale: u32,
    /// The complete sample entry box.
    pub sample_entry: Vec<u8>,
}

/// The tracks of an init section (`ftyp` … `moov`), in `trak` order.
pub fn sample_entries(init: &[u8]) -> Result<Vec<InitTrack>, Error> {
    let mut at = 0;
    let moov = loop {
        let b = next_box(init, at)?.ok_or_else(|| err!(DataLoss, "no moov in the init section"))?;
        if &b.fourcc == b"moov" {
            break b;
        }
        at += b.len;
    };
    let find = |payload, fourcc: &[u8; 4]| -> Result<BoxRef<'_>, Error> {
        children(payload)?
            .into_iter()
            .find(|c| &c.fourcc == fourcc)
            .ok_or_else(|| err!(DataLoss, "no {} box", show(fourcc)))
    };
    let mut out = Vec::new();
    for trak in children(moov.payload)?
        .into_iter()
        .filter(|b| &b.fourcc == b"trak")
    {
        let tkhd = find(trak.payload, b"tkhd")?.payload;
        let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
        let id = tkhd
            .get(id_at..id_at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| err!(DataLoss, "tkhd too short"))?;
        let mdia = find(trak.payload, b"mdia")?;
        let mdhd = find(mdia.payload, b"mdhd")?.payload;
        let scale_at = if mdhd.first() == Some(&1) { 20 } else { 12 };
        let timescale = mdhd
            .get(scale_at..scale_at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| err!(DataLoss, "mdhd too short"))?;
        let stbl = find(find(mdia.payload, b"minf")?.payload, b"stbl")?;
        let stsd = find(stbl.payload, b"stsd")?.payload;
        let entry = next_box(stsd, 8)?.ok_or_else(|| err!(DataLoss, "empty stsd"))?;
        out.push(InitTrack {
            track_id: id,
            timescale,
            sample_entry: stsd[8..8 + entry.len].to_vec(),
        });
    }
    Ok(out)
}

fn show(fourcc: &[u8; 4]) -> String {
    String::from_utf8_lossy(fourcc).into_owned()
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Cursor { data, at: 0, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let s = self
            .data
            .get(self.at..self.at + n)
            .ok_or_else(|| err!(DataLoss, "{} is truncated at byte {}", self.what, self.at))?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// The contents of a `moof`, as this module writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moof {
    pub sequence: u32,
    pub runs: Vec<TrackRun>,
}

/// Parses a `moof` payload. Only what [`write_fragment_header`] produces is accepted: one
/// `trun` per `traf`, base at the `moof`, explicit duration, size and flags per sample.
pub fn parse_moof(payload: &[u8]) -> Result<Moof, Error> {
    let mut sequence = None;
    let mut runs = Vec::new();
    for child in children(payload)? {
        match &child.fourcc {
            b"mfhd" => {
                let mut c = Cursor::new(child.payload, "mfhd");
                c.u32()?;
                sequence = Some(c.u32()?);
            }
            b"traf" => runs.push(parse_traf(child.payload)?),
            _ => {}
        }
    }
    Ok(Moof {
        sequence: sequence.ok_or_else(|| err!(DataLoss, "moof without mfhd"))?,
        runs,
    })
}

fn parse_traf(payload: &[u8]) -> Result<TrackRun, Error> {
    let mut track_id = None;
    let mut base = None;
    let mut samples = None;
    for child in children(payload)? {
        let mut c = Cursor::new(child.payload, "traf child");
        match &child.fourcc {
            b"tfhd" => {
                c.u32()?;
                track_id = Some(c.u32()?);
            }
            b"tfdt" => {
                let version = c.u32()? >> 24;
                base = Some(if version == 1 {
                    c.u64()?
                } else {
                    u64::from(c.u32()?)
                });
            }
            b"trun" => {
                let flags = c.u32()? & 0x00ff_ffff;
                if flags != 0x0000_0701 {
                    bail!(DataLoss, "trun flags {flags:#x} are not ours");
                }
                let count = c.u32()? as usize;
                c.u32()?; // data offset: samples are read in order after the moof
                if count > child.payload.len() / 12 {
                    bail!(
                        DataLoss,
                        "trun claims {count} samples in {} bytes",
                        child.payload.len()
                    );
                }
                let mut v = Vec::with_capacity(count);
                for _ in 0..count {
                    let duration = c.u32()?;
                    let size = c.u32()?;
                    let flags = c.u32()?;
                    v.push(Sample {
                        duration,
                        size,
                        sync: flags == SYNC_SAMPLE_FLAGS,
                    });
                }
                samples = Some(v);
            }
            _ => {}
        }
    }
    Ok(TrackRun {
        track_id: track_id.ok_or_else(|| err!(DataLoss, "traf without tfhd"))?,
        base_decode_time: base.ok_or_else(|| err!(DataLoss, "traf without tfdt"))?,
        samples: samples.ok_or_else(|| err!(DataLoss, "traf without trun"))?,
    })
}

/// Parses a `prft` payload: `(ntp, media_time)`.
pub fn parse_prft(payload: &[u8]) -> Result<(u64, u64), Error> {
    let mut c = Cursor::new(payload, "prft");
    let version = c.u32()? >> 24;
    if version != 1 {
        bail!(DataLoss, "prft version {version}, want 1");
    }
    c.u32()?;
    Ok((c.u64()?, c.u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs() -> Vec<TrackRun> {
        vec![
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: 1 << 40,
                samples: vec![
                    Sample {
                        duration: 6000,
                        size: 5,
                        sync: true,
                    },
                    Sample {
                        duration: 6000,
                        size: 3,
                        sync: false,
                    },
                ],
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: 1024,
                samples: vec![Sample {
                    duration: 1024,
                    size: 4,
                    sync: true,
                }],
            },
        ]
    }

    #[test]
    fn fragment_round_trip() {
        let mut buf = Vec::new();
        write_fragment_header(&mut buf, 7, 0xdead_beef_0000_0001, &runs());
        buf.extend_from_slice(&[1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]);
        let prft = next_box(&buf, 0).unwrap().unwrap();
        assert_eq!(&prft.fourcc, b"prft");
        assert_eq!(
            parse_prft(prft.payload).unwrap(),
            (0xdead_beef_0000_0001, 1 << 40)
        );
        let moof = next_box(&buf, prft.len).unwrap().unwrap();
        let parsed = parse_moof(moof.payload).unwrap();
        assert_eq!(
            parsed,
            Moof {
                sequence: 7,
                runs: runs()
            }
        );
        let mdat = next_box(&buf, prft.len + moof.len).unwrap().unwrap();
        assert_eq!((&mdat.fourcc, mdat.payload.len()), (b"mdat", 12));
        assert_eq!(prft.len + moof.len + mdat.len, buf.len());
        // The video data offset points at the first byte of mdat's payload.
        let trun_offset = buf.windows(4).position(|w| w == b"trun").unwrap() + 12;
        let off = u32::from_be_bytes(buf[trun_offset..trun_offset + 4].try_into().unwrap());
        assert_eq!(off as usize, moof.len + 8);
    }

    #[test]
    fn truncated_boxes_are_incomplete_not_errors() {
        let mut buf = Vec::new();
        write_fragment_header(&mut buf, 1, 0, &runs());
        let prft_len = next_box(&buf, 0).unwrap().unwrap().len;
        for cut in prft_len..buf.len() - 8 {
            assert_eq!(
                next_box(&buf[..cut], prft_len).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        assert!(next_box(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], 0).is_err());
        assert!(next_box(&[0, 0, 0, 0, b'm', b'd', b'a', b't'], 0).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap stand-in for the fuzz target: every prefix and many byte flips.
        let mut buf = Vec::new();
        write_fragment_header(&mut buf, 1, 0, &runs());
        for i in 0..buf.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] ^= flip;
                let mut at = 0;
                while let Ok(Some(x)) = next_box(&b, at) {
                    let _ = parse_moof(x.payload);
                    let _ = parse_prft(x.payload);
                    at += x.len;
                }
            }
        }
    }

    #[test]
    fn init_and_trailer_are_well_formed() {
        let entry = {
            let mut e = Vec::new();
            write_box(&mut e, b"avc1", |b| b.extend_from_slice(&[0; 78]));
            e
        };
        let mut buf = Vec::new();
        write_init(
            &mut buf,
            &[TrackSpec {
                track_id: 1,
                timescale: 90_000,
                sample_entry: &entry,
                video_size: Some((640, 360)),
            }],
        );
        write_uuid_box(&mut buf, &[9; 16], b"{}");
        write_mfra(&mut buf, 1, &[(0, 100), (90_000, 2000)]);
        let mut at = 0;
        let mut kinds = Vec::new();
        while let Some(b) = next_box(&buf, at).unwrap() {
            kinds.push(b.fourcc);
            at += b.len;
        }
        assert_eq!(kinds, [*b"ftyp", *b"moov", *b"uuid", *b"mfra"]);
        assert_eq!(at, buf.len());
        let mfro_len = u32::from_be_bytes(buf[buf.len() - 4..].try_into().unwrap()) as usize;
        assert_eq!(
            &buf[buf.len() - mfro_len + 4..buf.len() - mfro_len + 8],
            b"mfra"
        );
    }
}
