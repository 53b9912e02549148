//! Decoding of stored H.264/H.265 on demand, never on the recording path: the picture of one
//! frame, and its JPEG for snapshots and thumbnails. The only module that touches ffmpeg-next.
//!
//! Input is what the archive stores: the `avc1`/`hvc1` sample entry and samples of
//! length-prefixed NAL units. ffmpeg-next has no safe way to hand a decoder its extradata, so
//! the decoder is fed Annex B: each length prefix becomes a start code, and the parameter sets
//! of the sample entry go in front of every keyframe.
//!
//! Everything here is CPU-bound and blocking: callers run it on `spawn_blocking` or a thread of
//! their own. Decoders use one thread each (FFmpeg's default).

use std::sync::OnceLock;

use ff::format::Pixel;
use ffmpeg_next as ff;
use vms_core::{Error, bail, err};

use crate::archive::mp4;

/// Bytes of a VisualSampleEntry's own fields (ISO/IEC 14496-12 §12.1.3), between the box
/// header and its child boxes.
const VISUAL_SAMPLE_ENTRY_FIELDS: usize = 78;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The clock of every timestamp here: 90 kHz, as stored.
const TIME_BASE: (i32, i32) = (1, 90_000);

/// MJPEG's quantiser scale at JPEG quality 1 and 100.
const QSCALE_WORST: u32 = 31;
const QSCALE_BEST: u32 = 2;

/// The video codecs the archive stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    fn id(self) -> ff::codec::Id {
        match self {
            Codec::H264 => ff::codec::Id::H264,
            Codec::H265 => ff::codec::Id::HEVC,
        }
    }

    /// The configuration box inside this codec's sample entry.
    fn config_box(self) -> &'static str {
        match self {
            Codec::H264 => "avcC",
            Codec::H265 => "hvcC",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::H265 => "H.265",
        })
    }
}

/// One stored frame (an MP4 sample): NAL units, each after its big-endian length.
#[derive(Clone, Copy, Debug)]
pub struct StoredFrame<'a> {
    pub data: &'a [u8],
    pub keyframe: bool,
}

/// Sets FFmpeg up once: its error messages registered, and its logging silenced, because a
/// library does not print. Every failure reaches the caller as an [`Error`] instead.
fn init() -> Result<(), Error> {
    static INIT: OnceLock<Result<(), ff::Error>> = OnceLock::new();
    let result = INIT.get_or_init(|| {
        ff::log::set_level(ff::log::Level::Quiet);
        ff::init()
    });
    result.map_err(|e| err!(Internal, source: e, "initialising FFmpeg"))
}

/// The codec of an `avc1`/`hvc1` sample entry and the payload of its `avcC`/`hvcC` box: the
/// decoder configuration (extradata in FFmpeg's terms).
pub fn extradata_from_sample_entry(entry: &[u8]) -> Result<(Codec, Vec<u8>), Error> {
    let b = mp4::next_box(entry, 0)
        .map_err(|e| e.context("sample entry"))?
        .ok_or_else(|| {
            err!(
                DataLoss,
                "sample entry of {} bytes is truncated",
                entry.len()
            )
        })?;
    let codec = match &b.fourcc {
        b"avc1" => Codec::H264,
        b"hvc1" => Codec::H265,
        other => bail!(
            InvalidArgument,
            "sample entry {:?} is neither avc1 nor hvc1",
            String::from_utf8_lossy(other)
        ),
    };
    let children = b.payload.get(VISUAL_SAMPLE_ENTRY_FIELDS..).ok_or_else(|| {
        err!(
            DataLoss,
            "{codec} sample entry of {} bytes is too short for its fields",
            b.len
        )
    })?;
    let want = codec.config_box().as_bytes();
    mp4::children(children)
        .map_err(|e| e.context(format_args!("{codec} sample entry")))?
        .into_iter()
        .find(|c| c.fourcc == want)
        .map(|c| (codec, c.payload.to_vec()))
        .ok_or_else(|| {
            err!(
                DataLoss,
                "{codec} sample entry has no {} box",
                codec.config_box()
            )
        })
}

/// Reads a decoder configuration record, failing with its name and the offset.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.data.get(self.at..end))
            .ok_or_else(|| err!(DataLoss, "{} is truncated at byte {}", self.what, self.at))?;
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Copies a parameter set (16-bit length, then the NAL unit) to `out` in Annex B.
    fn parameter_set(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let at = self.at;
        let len = usize::from(self.u16()?);
        if len == 0 {
            bail!(
                DataLoss,
                "{} has an empty parameter set at byte {at}",
                self.what
            );
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(self.take(len)?);
        Ok(())
    }
}

/// What a decoder needs from a sample entry.
struct StreamConfig {
    codec: Codec,
    /// Bytes of each NAL unit's length prefix in the samples: 1, 2 or 4.
    length_size: usize,
    /// The parameter sets, in Annex B.
    parameter_sets: Vec<u8>,
}

impl StreamConfig {
    fn from_sample_entry(entry: &[u8]) -> Result<StreamConfig, Error> {
        let (codec, record) = extradata_from_sample_entry(entry)?;
        let what = codec.config_box();
        let mut r = Reader {
            data: &record,
            at: 0,
            what,
        };
        let version = r.u8()?;
        if version != 1 {
            bail!(DataLoss, "{what} has version {version}, want 1");
        }
        let mut parameter_sets = Vec::new();
        let length_byte = match codec {
            Codec::H264 => {
                r.take(3)?; // profile, compatibility, level
                let length_byte = r.u8()?;
                for _ in 0..r.u8()? & 0x1f {
                    r.parameter_set(&mut parameter_sets)?; // sequence parameter sets
                }
                for _ in 0..r.u8()? {
                    r.parameter_set(&mut parameter_sets)?; // picture parameter sets
                }
                length_byte
            }
            Codec::H265 => {
                r.take(20)?; // profile, tier, level, format and rate fields
                let length_byte = r.u8()?;
                for _ in 0..r.u8()? {
                    r.u8()?; // NAL unit type of the array
                    for _ in 0..r.u16()? {
                        r.parameter_set(&mut parameter_sets)?;
                    }
                }
                length_byte
            }
        };
        let length_size = usize::from(length_byte & 3) + 1;
        if length_size == 3 {
            bail!(DataLoss, "{what} gives NAL unit lengths of 3 bytes");
        }
        if parameter_sets.is_empty() {
            bail!(DataLoss, "{what} holds no parameter sets");
        }
        Ok(StreamConfig {
            codec,
            length_size,
            parameter_sets,
        })
    }
}

/// Appends the NAL units of a length-prefixed sample to `out` in Annex B.
fn append_annex_b(out: &mut Vec<u8>, sample: &[u8], length_size: usize) -> Result<(), Error> {
    if sample.is_empty() {
        bail!(DataLoss, "the frame is empty");
    }
    let mut at = 0;
    while at < sample.len() {
        let start = at + length_size;
        let prefix = sample.get(at..start).ok_or_else(|| {
            err!(
                DataLoss,
                "{} bytes at byte {at} are too few for a NAL unit length",
                sample.len() - at
            )
        })?;
        let len = prefix.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        if len == 0 {
            bail!(DataLoss, "empty NAL unit at byte {at}");
        }
        let nal = sample.get(start..start + len).ok_or_else(|| {
            err!(
                DataLoss,
                "NAL unit at byte {at} claims {len} bytes; {} remain",
                sample.len() - start
            )
        })?;
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
        at = start + len;
    }
    Ok(())
}

/// Whether a receive found nothing ready: more input is needed (`EAGAIN`), or all was flushed.
fn is_drained(e: &ff::Error) -> bool {
    matches!(
        e,
        ff::Error::Eof
            | ff::Error::Other {
                errno: ff::error::EAGAIN
            }
    )
}

/// A decoder fed stored frames.
struct Decoder {
    config: StreamConfig,
    inner: ff::decoder::Video,
    annex_b: Vec<u8>,
}

impl Decoder {
    fn open(entry: &[u8]) -> Result<Decoder, Error> {
        init()?;
        let config = StreamConfig::from_sample_entry(entry)?;
        let codec = ff::decoder::find(config.codec.id()).ok_or_else(|| {
            err!(
                FailedPrecondition,
                "this FFmpeg has no {} decoder",
                config.codec
            )
        })?;
        let mut decoder = ff::codec::Context::new_with_codec(codec).decoder();
        decoder.set_packet_time_base(TIME_BASE);
        let inner = decoder
            .video()
            .map_err(|e| err!(Internal, source: e, "opening the {} decoder", config.codec))?;
        Ok(Decoder {
            config,
            inner,
            annex_b: Vec::new(),
        })
    }

    /// Sends one frame; its `pts` comes back on its picture.
    fn send(&mut self, frame: StoredFrame<'_>, pts: i64) -> Result<(), Error> {
        self.annex_b.clear();
        if frame.keyframe {
            self.annex_b.extend_from_slice(&self.config.parameter_sets);
        }
        append_annex_b(&mut self.annex_b, frame.data, self.config.length_size)?;
        let mut packet = ff::Packet::copy(&self.annex_b);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        if frame.keyframe {
            packet.set_flags(ff::packet::Flags::KEY);
        }
        self.inner
            .send_packet(&packet)
            .map_err(|e| err!(DataLoss, source: e, "the {} decoder rejects it", self.config.codec))
    }

    /// Tells the decoder that no more frames follow, so it gives up the pictures it holds.
    fn send_eof(&mut self) -> Result<(), Error> {
        self.inner
            .send_eof()
            .map_err(|e| err!(Internal, source: e, "flushing the decoder"))
    }

    /// The next picture, if one is ready.
    fn receive(&mut self) -> Result<Option<ff::frame::Video>, Error> {
        let mut picture = ff::frame::Video::empty();
        match self.inner.receive_frame(&mut picture) {
            Ok(()) => Ok(Some(picture)),
            Err(e) if is_drained(&e) => Ok(None),
            Err(e) => Err(err!(DataLoss, source: e, "decoding {}", self.config.codec)),
        }
    }
}

/// A decoded picture.
pub struct DecodedFrame(ff::frame::Video);

impl DecodedFrame {
    pub fn width(&self) -> u32 {
        self.0.width()
    }

    pub fn height(&self) -> u32 {
        self.0.height()
    }
}

/// Decodes `frames[wanted]`. `frames` start at a keyframe and run in decode order at least up
/// to `wanted`; `entry` is their `avc1`/`hvc1` sample entry.
pub fn decode_frame(
    entry: &[u8],
    frames: &[StoredFrame<'_>],
    wanted: usize,
) -> Result<DecodedFrame, Error> {
    let n = frames.len();
    if wanted >= n {
        bail!(InvalidArgument, "frame {wanted} wanted of {n}");
    }
    if !frames[0].keyframe {
        bail!(
            InvalidArgument,
            "frame 0 of {n} is not a keyframe; decoding starts at one"
        );
    }
    let mut decoder = Decoder::open(entry)?;
    // A picture decoded with errors (concealed) spoils what depends on it: with no way to
    // tell what does, a damaged picture on the way spoils the wanted one.
    let mut damaged = None;
    let mut take = |picture: ff::frame::Video| -> Result<Option<DecodedFrame>, Error> {
        let label = picture.pts();
        if picture.has_decode_errors() || picture.is_corrupt() {
            damaged = damaged.or(label);
        }
        match damaged {
            _ if label != Some(wanted as i64) => Ok(None),
            None => Ok(Some(DecodedFrame(picture))),
            Some(k) if k == wanted as i64 => {
                bail!(DataLoss, "frame {wanted} of {n} decoded with errors")
            }
            Some(k) => bail!(
                DataLoss,
                "frame {k} of {n} decoded with errors, so frame {wanted} cannot be trusted"
            ),
        }
    };
    for (i, frame) in frames[..=wanted].iter().enumerate() {
        let at = |e: Error| e.context(format_args!("frame {i} of {n}"));
        decoder.send(*frame, i as i64).map_err(at)?;
        while let Some(picture) = decoder.receive().map_err(at)? {
            if let Some(found) = take(picture)? {
                return Ok(found);
            }
        }
    }
    decoder.send_eof()?;
    while let Some(picture) = decoder.receive()? {
        if let Some(found) = take(picture)? {
            return Ok(found);
        }
    }
    bail!(DataLoss, "no picture decoded for frame {wanted} of {n}")
}

/// The size of a picture of `width`×`height` scaled down, keeping its aspect, to at most
/// `max_width` wide.
fn scaled_size(width: u32, height: u32, max_width: Option<u32>) -> Result<(u32, u32), Error> {
    match max_width {
        Some(0) => bail!(InvalidArgument, "a maximum width of 0"),
        Some(max) if max < width => {
            let h = (u64::from(height) * u64::from(max) + u64::from(width / 2)) / u64::from(width);
            Ok((max, u32::try_from(h).unwrap_or(u32::MAX).max(1)))
        }
        _ => Ok((width, height)),
    }
}

/// Encodes a picture as a JPEG: at full resolution, or scaled down (keeping its aspect) to at
/// most `max_width` wide for a thumbnail. `quality` runs from 1 (smallest) to 100 (best); it
/// maps linearly onto MJPEG's quantiser scale, 31 to 2.
pub fn jpeg(frame: &DecodedFrame, max_width: Option<u32>, quality: u8) -> Result<Vec<u8>, Error> {
    if !(1..=100).contains(&quality) {
        bail!(InvalidArgument, "JPEG quality {quality} is not in 1..=100");
    }
    let src = &frame.0;
    let (width, height) = scaled_size(src.width(), src.height(), max_width)?;
    let mut scaler = ff::software::scaling::Context::get(
        src.format(),
        src.width(),
        src.height(),
        Pixel::YUVJ420P,
        width,
        height,
        ff::software::scaling::Flags::BICUBIC,
    )
    .map_err(|e| {
        err!(Internal, source: e, "scaling {:?} {}x{} to {width}x{height}", src.format(), src.width(), src.height())
    })?;
    let mut yuv = ff::frame::Video::empty();
    scaler
        .run(src, &mut yuv)
        .map_err(|e| err!(Internal, source: e, "scaling to {width}x{height}"))?;

    let codec = ff::encoder::find(ff::codec::Id::MJPEG)
        .ok_or_else(|| err!(FailedPrecondition, "this FFmpeg has no MJPEG encoder"))?;
    let mut encoder = ff::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| err!(Internal, source: e, "setting up the MJPEG encoder"))?;
    encoder.set_width(width);
    encoder.set_height(height);
    encoder.set_format(Pixel::YUVJ420P);
    encoder.set_time_base((1, 1));
    // A fixed quantiser rather than a bit rate; qmin = qmax leaves the encoder no other
    // choice (it clamps its quantiser into that range).
    let qscale = QSCALE_WORST - (u32::from(quality - 1) * (QSCALE_WORST - QSCALE_BEST) + 49) / 99;
    encoder.set_flags(ff::codec::Flags::QSCALE);
    encoder.set_qmin(qscale as i32);
    encoder.set_qmax(qscale as i32);
    let mut encoder = encoder
        .open_as(codec)
        .map_err(|e| err!(Internal, source: e, "opening the MJPEG encoder"))?;
    encoder
        .send_frame(&yuv)
        .and_then(|()| encoder.send_eof())
        .map_err(|e| err!(Internal, source: e, "encoding a JPEG"))?;
    let mut packet = ff::Packet::empty();
    encoder
        .receive_packet(&mut packet)
        .map_err(|e| err!(Internal, source: e, "encoding a JPEG"))?;
    match packet.data() {
        Some(data) if !data.is_empty() => Ok(data.to_vec()),
        _ => bail!(Internal, "the MJPEG encoder gave an empty picture"),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::OnceLock;

    use vms_core::ErrorKind;

    use super::*;

    const WIDTH: u32 = 640;
    const HEIGHT: u32 = 360;
    const FRAMES: usize = 30;
    /// The frame that decoding tests ask for.
    const WANTED: usize = 7;

    /// One MP4 sample.
    struct Sample {
        data: Vec<u8>,
        keyframe: bool,
        pts_90k: i64,
    }

    /// A video track that the `ffmpeg` CLI encoded from its test pattern.
    struct Track {
        entry: Vec<u8>,
        /// The samples, in decode order.
        samples: Vec<Sample>,
        /// The Y plane of frame [`WANTED`] (in decode order), as `ffmpeg` decodes it.
        wanted_luma: Vec<u8>,
    }

    impl Track {
        fn frames(&self) -> Vec<StoredFrame<'_>> {
            self.samples
                .iter()
                .map(|s| StoredFrame {
                    data: &s.data,
                    keyframe: s.keyframe,
                })
                .collect()
        }
    }

    fn run(cmd: &mut Command) -> Vec<u8> {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The payload of the box at `path` below `payload`.
    fn find<'a>(payload: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        path.iter().fold(payload, |p, fourcc| {
            mp4::children(p)
                .unwrap()
                .into_iter()
                .find(|b| &b.fourcc == *fourcc)
                .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(*fourcc)))
                .payload
        })
    }

    /// The entries of a full box's table: `count` after version and flags, then `width`
    /// 32-bit words each.
    fn table(payload: &[u8], first: usize, width: usize) -> Vec<Vec<u32>> {
        let count = be32(payload, first) as usize;
        (0..count)
            .map(|i| {
                (0..width)
                    .map(|k| be32(payload, first + 4 + (i * width + k) * 4))
                    .collect()
            })
            .collect()
    }

    /// Reads the first track of a progressive MP4 as `ffmpeg` writes it.
    fn read_mp4(file: &[u8]) -> (Vec<u8>, Vec<Sample>) {
        let trak = find(file, &[b"moov", b"trak"]);
        let mdhd = find(trak, &[b"mdia", b"mdhd"]);
        let timescale = i64::from(be32(mdhd, if mdhd[0] == 1 { 20 } else { 12 }));
        let stbl = find(trak, &[b"mdia", b"minf", b"stbl"]);
        let stsd = find(stbl, &[b"stsd"]);
        let entry_len = mp4::next_box(stsd, 8).unwrap().unwrap().len;
        let entry = stsd[8..8 + entry_len].to_vec();
        let stsz = find(stbl, &[b"stsz"]);
        assert_eq!(be32(stsz, 4), 0, "samples of one size");
        let sizes: Vec<usize> = table(stsz, 8, 1).iter().map(|e| e[0] as usize).collect();
        let chunks = table(find(stbl, &[b"stco"]), 4, 1);
        let stsc = table(find(stbl, &[b"stsc"]), 4, 3);
        let sync: Vec<u32> = table(find(stbl, &[b"stss"]), 4, 1).concat();
        let deltas = table(find(stbl, &[b"stts"]), 4, 2)
            .iter()
            .flat_map(|e| std::iter::repeat_n(i64::from(e[1]), e[0] as usize))
            .collect::<Vec<_>>();
        let offsets: Vec<i64> = mp4::children(stbl)
            .unwrap()
            .iter()
            .find(|b| &b.fourcc == b"ctts")
            .map(|ctts| {
                table(ctts.payload, 4, 2)
                    .iter()
                    .flat_map(|e| std::iter::repeat_n(i64::from(e[1] as i32), e[0] as usize))
                    .collect()
            })
            .unwrap_or_else(|| vec![0; sizes.len()]);
        let mut samples = Vec::new();
        let mut dts = 0;
        for (c, chunk) in chunks.iter().enumerate() {
            let per_chunk = stsc.iter().rev().find(|e| e[0] as usize <= c + 1).unwrap()[1];
            let mut at = chunk[0] as usize;
            for _ in 0..per_chunk {
                let i = samples.len();
                samples.push(Sample {
                    data: file[at..at + sizes[i]].to_vec(),
                    keyframe: sync.contains(&(i as u32 + 1)),
                    pts_90k: (dts + offsets[i]) * 90_000 / timescale,
                });
                at += sizes[i];
                dts += deltas[i];
            }
        }
        assert_eq!(samples.len(), sizes.len());
        (entry, samples)
    }

    /// Encodes two seconds of `ffmpeg`'s test pattern at 15 frames/s with `codec_args`.
    fn generate(codec_args: &[&str]) -> Track {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.mp4");
        let quiet = ["-hide_banner", "-loglevel", "error", "-nostdin"];
        run(Command::new("ffmpeg")
            .args(quiet)
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={WIDTH}x{HEIGHT}:rate=15"))
            .args(["-t", "2", "-pix_fmt", "yuv420p"])
            .args(codec_args)
            .arg(&path));
        let (entry, samples) = read_mp4(&std::fs::read(&path).unwrap());
        assert_eq!(samples.len(), FRAMES);
        // The wanted frame in presentation order, which is how ffmpeg counts.
        let shown = samples
            .iter()
            .filter(|s| s.pts_90k < samples[WANTED].pts_90k)
            .count();
        let yuv = run(Command::new("ffmpeg")
            .args(quiet)
            .arg("-i")
            .arg(&path)
            .arg("-vf")
            .arg(format!("select=eq(n\\,{shown})"))
            .args([
                "-frames:v",
                "1",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
                "-",
            ]));
        Track {
            entry,
            samples,
            wanted_luma: yuv[..(WIDTH * HEIGHT) as usize].to_vec(),
        }
    }

    fn h264() -> &'static Track {
        static TRACK: OnceLock<Track> = OnceLock::new();
        TRACK.get_or_init(|| generate(&["-c:v", "libx264", "-g", "15", "-bf", "0"]))
    }

    /// H.264 with B-frames: pictures come out of the decoder later than their frames go in.
    fn h264_b_frames() -> &'static Track {
        static TRACK: OnceLock<Track> = OnceLock::new();
        TRACK.get_or_init(|| generate(&["-c:v", "libx264", "-g", "15", "-bf", "2"]))
    }

    fn h265() -> &'static Track {
        static TRACK: OnceLock<Track> = OnceLock::new();
        TRACK.get_or_init(|| {
            generate(&[
                "-c:v",
                "libx265",
                "-x265-params",
                "keyint=15:bframes=0:no-open-gop=1:log-level=error",
                "-tag:v",
                "hvc1",
            ])
        })
    }

    /// The Y plane of a picture, without stride padding.
    fn luma(picture: &DecodedFrame) -> Vec<u8> {
        let (f, width) = (&picture.0, picture.width() as usize);
        f.data(0)
            .chunks(f.stride(0))
            .take(picture.height() as usize)
            .flat_map(|row| &row[..width])
            .copied()
            .collect()
    }

    /// Mean absolute difference of two Y planes over the rectangle `x0..x1` × `y0..y1`.
    fn mean_difference(a: &[u8], b: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize)) -> f64 {
        let w = WIDTH as usize;
        let sum: u64 = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| y * w + x))
            .map(|i| u64::from(a[i].abs_diff(b[i])))
            .sum();
        sum as f64 / ((x1 - x0) * (y1 - y0)) as f64
    }

    fn probe(dir: &std::path::Path, name: &str, bytes: &[u8], format_args: &[&str]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(Command::new("ffprobe")
            .args(["-v", "error"])
            .args(format_args)
            .args(["-count_frames", "-show_entries"])
            .arg("stream=codec_name,width,height,nb_read_frames")
            .args(["-of", "csv=p=0"])
            .arg(&path));
        String::from_utf8(out).unwrap().trim().to_owned()
    }

    #[test]
    fn types_cross_threads() {
        fn send<T: Send>() {}
        send::<DecodedFrame>();
    }

    #[test]
    fn sample_entries_give_their_configuration() {
        let (codec, avcc) = extradata_from_sample_entry(&h264().entry).unwrap();
        assert_eq!((codec, avcc[0]), (Codec::H264, 1));
        let config = StreamConfig::from_sample_entry(&h264().entry).unwrap();
        // SPS and PPS.
        assert_eq!(
            (
                config.length_size,
                nal_types(&config.parameter_sets, 0x1f, 0)
            ),
            (4, vec![7, 8])
        );

        let (codec, hvcc) = extradata_from_sample_entry(&h265().entry).unwrap();
        assert_eq!((codec, hvcc[0]), (Codec::H265, 1));
        let config = StreamConfig::from_sample_entry(&h265().entry).unwrap();
        // VPS, SPS, PPS and x265's SEI.
        assert_eq!(
            (
                config.length_size,
                nal_types(&config.parameter_sets, 0x7e, 1)
            ),
            (4, vec![32, 33, 34, 39])
        );
    }

    /// The NAL unit types in Annex B `data`: the first header byte, masked and shifted.
    fn nal_types(data: &[u8], mask: u8, shift: u8) -> Vec<u8> {
        data.windows(5)
            .filter(|w| w[..4] == START_CODE)
            .map(|w| (w[4] & mask) >> shift)
            .collect()
    }

    #[test]
    fn wrong_or_damaged_sample_entries_are_errors() {
        let entry = &h264().entry;
        for cut in 0..entry.len() {
            assert!(
                StreamConfig::from_sample_entry(&entry[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..entry.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut e = entry.clone();
                e[i] ^= flip;
                let _ = StreamConfig::from_sample_entry(&e);
            }
        }
        let mut audio = Vec::new();
        mp4::write_box(&mut audio, b"mp4a", |b| b.extend_from_slice(&[0; 28]));
        let e = extradata_from_sample_entry(&audio).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let mut bare = Vec::new();
        mp4::write_box(&mut bare, b"avc1", |b| b.extend_from_slice(&[0; 78]));
        let e = extradata_from_sample_entry(&bare).unwrap_err();
        assert_eq!(e.to_string(), "H.264 sample entry has no avcC box");
        let mut renamed = entry.clone();
        renamed[4..8].copy_from_slice(b"hvc1");
        let e = extradata_from_sample_entry(&renamed).unwrap_err();
        assert_eq!(e.to_string(), "H.265 sample entry has no hvcC box");

        // H.264 frames with an H.265 sample entry decode to nothing.
        let e = decode_frame(&h265().entry, &h264().frames(), WANTED)
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::DataLoss, "{e}");
    }

    #[test]
    fn decodes_the_wanted_frame() {
        for (name, track) in [
            ("h264", h264()),
            ("h264 with B-frames", h264_b_frames()),
            ("h265", h265()),
        ] {
            let frames = track.frames();
            // Only frames up to the wanted one: a delayed picture must be flushed out.
            let picture = decode_frame(&track.entry, &frames[..=WANTED], WANTED).unwrap();
            assert_eq!(
                (picture.width(), picture.height()),
                (WIDTH, HEIGHT),
                "{name}"
            );
            assert!(
                luma(&picture) == track.wanted_luma,
                "{name}: not ffmpeg's picture"
            );
            let later = decode_frame(&track.entry, &frames, WANTED).unwrap();
            assert!(
                luma(&later) == track.wanted_luma,
                "{name}: with later frames"
            );
            let first = decode_frame(&track.entry, &frames, 0).unwrap();
            assert!(
                luma(&first) != track.wanted_luma,
                "{name}: pictures all alike"
            );
            // From the second keyframe on.
            let second = decode_frame(&track.entry, &frames[15..], 0).unwrap();
            assert!(luma(&second) != luma(&first), "{name}: second keyframe");
        }
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        let track = h264();
        let frames = track.frames();
        let mut damaged = frames.clone();
        let third = &track.samples[3].data;
        damaged[3].data = &third[..third.len() - 10];
        let e = decode_frame(&track.entry, &damaged, WANTED).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::DataLoss);
        assert!(
            e.to_string().starts_with("frame 3 of 30: NAL unit at byte"),
            "{e}"
        );
        damaged[3].data = &[];
        let e = decode_frame(&track.entry, &damaged, WANTED).err().unwrap();
        assert_eq!(e.to_string(), "frame 3 of 30: the frame is empty");
        damaged[3].data = &[0, 0, 0];
        assert!(decode_frame(&track.entry, &damaged, WANTED).is_err());

        let e = decode_frame(&track.entry, &frames, FRAMES).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = decode_frame(&track.entry, &frames[1..], 3).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);

        // Garbage inside NAL units (their lengths kept): whatever the decoder makes of it,
        // an error or a picture, never a panic.
        for (seed, track) in [h264(), h265()].into_iter().cycle().take(16).enumerate() {
            let samples: Vec<Vec<u8>> = track
                .samples
                .iter()
                .enumerate()
                .map(|(i, s)| garble(&s.data, 13 + seed, seed * 7 + i))
                .collect();
            let frames: Vec<StoredFrame<'_>> = samples
                .iter()
                .zip(&track.samples)
                .map(|(data, s)| StoredFrame {
                    data,
                    keyframe: s.keyframe,
                })
                .collect();
            if let Ok(picture) = decode_frame(&track.entry, &frames, WANTED) {
                jpeg(&picture, Some(160), 75).unwrap();
            }
        }
        // A picture the decoder had to conceal spoils the frames after it.
        let mut damaged = track.frames();
        let garbled = garble(&track.samples[3].data, 3, 40);
        damaged[3].data = &garbled;
        let e = decode_frame(&track.entry, &damaged, WANTED).err().unwrap();
        assert_eq!(
            e.to_string(),
            "frame 3 of 30 decoded with errors, so frame 7 cannot be trusted"
        );
    }

    /// `sample` with every `step`th byte of each NAL unit changed from `offset` on, past the
    /// NAL unit header; lengths are kept.
    fn garble(sample: &[u8], step: usize, offset: usize) -> Vec<u8> {
        let mut out = sample.to_vec();
        let mut at = 0;
        while at + 4 <= out.len() {
            let start = at + 4;
            let end = (start + be32(&out, at) as usize).min(out.len());
            for k in (start + 2 + offset..end).step_by(step) {
                out[k] ^= 0x5a;
            }
            at = end;
        }
        out
    }

    #[test]
    fn snapshots_and_thumbnails_are_jpegs() {
        let dir = tempfile::tempdir().unwrap();
        let track = h265();
        let picture = decode_frame(&track.entry, &track.frames(), WANTED).unwrap();
        let snapshot = jpeg(&picture, None, 85).unwrap();
        assert_eq!(
            probe(dir.path(), "snapshot.jpg", &snapshot, &[]),
            "mjpeg,640,360,1"
        );
        // The JPEG shows the picture: its full-range luma matches the source's.
        let decoded = run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(dir.path().join("snapshot.jpg"))
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"]));
        let full_range: Vec<u8> = track
            .wanted_luma
            .iter()
            .map(|&y| {
                ((f64::from(y) - 16.0) * 255.0 / 219.0)
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        let whole = (0, 0, WIDTH as usize, HEIGHT as usize);
        let d = mean_difference(&decoded, &full_range, whole);
        assert!(d < 3.0, "JPEG luma differs by {d:.2} on average");

        let thumbnail = jpeg(&picture, Some(160), 85).unwrap();
        assert_eq!(
            probe(dir.path(), "thumbnail.jpg", &thumbnail, &[]),
            "mjpeg,160,90,1"
        );
        let wide = jpeg(&picture, Some(1920), 85).unwrap();
        assert_eq!(probe(dir.path(), "wide.jpg", &wide, &[]), "mjpeg,640,360,1");

        let (worst, best) = (
            jpeg(&picture, None, 1).unwrap(),
            jpeg(&picture, None, 100).unwrap(),
        );
        assert!(
            worst.len() * 4 < snapshot.len() * 3 && snapshot.len() * 4 < best.len() * 3,
            "sizes at quality 1, 85, 100: {} {} {}",
            worst.len(),
            snapshot.len(),
            best.len()
        );
        for (max_width, quality) in [(None, 0), (None, 101), (Some(0), 85)] {
            let e = jpeg(&picture, max_width, quality).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
    }
}
