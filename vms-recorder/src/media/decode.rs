//! Decoding of stored H.264/H.265 on demand, never on the recording path: the picture of one
//! frame (snapshots, thumbnails), its JPEG, and the H.265 → H.264 transcoder of exports with
//! the camera name and wall-clock time burned in. The only module that touches ffmpeg-next.
//!
//! Input is what the archive stores: the `avc1`/`hvc1` sample entry and samples of
//! length-prefixed NAL units. ffmpeg-next has no safe way to hand a decoder its extradata, so
//! the decoder is fed Annex B: each length prefix becomes a start code, and the parameter sets
//! of the sample entry go in front of every keyframe. The encoder's output goes the other way:
//! x264 writes Annex B with in-band parameter sets, which become an `avcC` and length-prefixed
//! samples again.
//!
//! Everything here is CPU-bound and blocking: callers run it on `spawn_blocking` or a thread of
//! their own. Decoders and the encoder use one thread each (FFmpeg's default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ff::format::Pixel;
use ffmpeg_next as ff;
use vms_core::time::Duration90k;
use vms_core::{Error, bail, err};

use crate::archive::mp4;
use crate::ingest::VideoParams;

/// Bytes of a VisualSampleEntry's own fields (ISO/IEC 14496-12 §12.1.3), between the box
/// header and its child boxes.
const VISUAL_SAMPLE_ENTRY_FIELDS: usize = 78;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The clock of every timestamp here: 90 kHz, as stored.
const TIME_BASE: (i32, i32) = (1, 90_000);

/// The font of the burned-in text unless [`TranscodeOptions`] names another (Debian package
/// `fonts-dejavu-core`, installed by `deploy/setup.sh`).
pub const DEFAULT_FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Frame metadata keys that carry the burned-in text from [`Transcoder::push`] to `drawtext`.
const CAMERA_KEY: &str = "vms_camera";
const CLOCK_KEY: &str = "vms_clock";

/// Longest interval between keyframes of a transcoded export, beyond the source's own
/// keyframes (which are kept).
const MAX_KEYFRAME_INTERVAL_SECS: u32 = 4;

/// Frame rate assumed for an export too short to measure one.
const FALLBACK_FPS: i32 = 25;

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

/// Settings of a [`Transcoder`].
#[derive(Clone, Debug)]
pub struct TranscodeOptions {
    /// TrueType font of the burned-in text. Default: [`DEFAULT_FONT_FILE`].
    pub font_file: PathBuf,
    /// x264's constant rate factor, 0 (lossless) to 51; lower is better and larger.
    /// Default: 23.
    pub crf: u8,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        TranscodeOptions {
            font_file: PathBuf::from(DEFAULT_FONT_FILE),
            crf: 23,
        }
    }
}

/// One encoded H.264 frame, ready to be an MP4 sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPacket {
    /// NAL units, each after its 4-byte big-endian length; parameter sets are in the sample
    /// entry, not here.
    pub data: Vec<u8>,
    /// Presentation and decode time, on the input's media timeline. They are equal: the
    /// encoder makes no B-frames, so MP4 needs no composition offsets.
    pub pts: Duration90k,
    pub dts: Duration90k,
    pub keyframe: bool,
}

/// What a [`Transcoder`] leaves when it finishes.
#[derive(Debug)]
pub struct Finished {
    /// The packets still held by the encoder.
    pub packets: Vec<EncodedPacket>,
    /// The `avc1` sample entry (with `avcC`), codec string and size of the output.
    pub params: VideoParams,
}

/// Escapes `value` for one level of FFmpeg's option syntax (`av_get_token`): a backslash goes
/// before every character in `special` and every whitespace character, so that each stands for
/// itself.
fn escape(value: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if special.contains(&c) || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes the value of a filter option given to `avfilter_init_str`, where `:` separates
/// options.
fn escape_option(value: &str) -> String {
    escape(value, &['\\', '\'', ':'])
}

/// Text for burning in: control characters (a NUL above all, which FFmpeg's C strings cannot
/// hold) become spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The filter graph `buffer → drawtext → buffersink (yuv420p)` for pictures like `first`.
///
/// The burned-in text never enters the filter description: drawtext prints it from each
/// frame's metadata (`%{metadata:…}`), verbatim, so nothing a camera name holds can change the
/// filter. Only the font path is escaped.
fn build_filter(first: &ff::frame::Video, font: &str) -> Result<ff::filter::Graph, Error> {
    let filter = |name: &str| {
        ff::filter::find(name)
            .ok_or_else(|| err!(FailedPrecondition, "this FFmpeg has no {name} filter"))
    };
    let graph_err = |e: ff::Error| err!(Internal, source: e, "building the text filter");
    let mut graph = ff::filter::Graph::new();
    let aspect = first.aspect_ratio();
    let aspect = if aspect.numerator() > 0 && aspect.denominator() > 0 {
        aspect
    } else {
        ff::Rational(1, 1)
    };
    let buffer_args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        first.width(),
        first.height(),
        ff::ffi::AVPixelFormat::from(first.format()) as i32,
        TIME_BASE.0,
        TIME_BASE.1,
        aspect.numerator(),
        aspect.denominator(),
    );
    let size = (first.height() / 24).max(12);
    let pad = size / 3;
    let drawtext_args = format!(
        "fontfile={}:text={}:fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:\
         boxborderw={pad}:x={pad}:y={pad}",
        escape_option(font),
        escape_option(&format!(
            "%{{metadata:{CAMERA_KEY}}}  %{{metadata:{CLOCK_KEY}}}"
        )),
    );
    let mut source = graph
        .add(&filter("buffer")?, "in", &buffer_args)
        .map_err(graph_err)?;
    let mut text = graph
        .add(&filter("drawtext")?, "text", &drawtext_args)
        .map_err(|e| err!(FailedPrecondition, source: e, "setting up drawtext with font {font}"))?;
    let mut sink = graph
        .add(&filter("buffersink")?, "out", "")
        .map_err(graph_err)?;
    sink.set_pixel_format(Pixel::YUV420P);
    source.link(0, &mut text, 0);
    text.link(0, &mut sink, 0);
    graph.validate().map_err(graph_err)?;
    Ok(graph)
}

/// The `avcC` record, codec string and sample entry of x264's output.
fn h264_params(sps: &[u8], pps: &[u8], width: u32, height: u32) -> Result<VideoParams, Error> {
    let (Some(&[profile, compatibility, level]), Ok(sps_len), Ok(pps_len)) = (
        sps.get(1..4),
        u16::try_from(sps.len()),
        u16::try_from(pps.len()),
    ) else {
        bail!(
            Internal,
            "x264 gave an SPS of {} bytes and a PPS of {}",
            sps.len(),
            pps.len()
        );
    };
    let mut avcc = vec![1, profile, compatibility, level, 0xfc | 3, 0xe0 | 1];
    avcc.extend_from_slice(&sps_len.to_be_bytes());
    avcc.extend_from_slice(sps);
    avcc.push(1);
    avcc.extend_from_slice(&pps_len.to_be_bytes());
    avcc.extend_from_slice(pps);
    if matches!(profile, 100 | 110 | 122 | 144) {
        // The encoder is fed 8-bit 4:2:0: chroma_format_idc 1, bit depths 8, no SPS extensions.
        avcc.extend_from_slice(&[0xfc | 1, 0xf8, 0xf8, 0]);
    }
    let (Ok(w16), Ok(h16)) = (u16::try_from(width), u16::try_from(height)) else {
        bail!(Internal, "{width}x{height} does not fit a sample entry");
    };
    let mut sample_entry = Vec::new();
    mp4::write_box(&mut sample_entry, b"avc1", |b| {
        b.extend_from_slice(&[0; 6]); // reserved
        b.extend_from_slice(&1u16.to_be_bytes()); // data reference index
        b.extend_from_slice(&[0; 16]); // pre-defined and reserved
        b.extend_from_slice(&w16.to_be_bytes());
        b.extend_from_slice(&h16.to_be_bytes());
        b.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
        b.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        b.extend_from_slice(&[0; 4]); // reserved
        b.extend_from_slice(&1u16.to_be_bytes()); // frames per sample
        b.extend_from_slice(&[0; 32]); // compressor name
        b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth: colour
        b.extend_from_slice(&(-1i16).to_be_bytes()); // pre-defined
        mp4::write_box(b, b"avcC", |b| b.extend_from_slice(&avcc));
    });
    Ok(VideoParams {
        sample_entry,
        codec: format!("avc1.{profile:02x}{compatibility:02x}{level:02x}"),
        width,
        height,
    })
}

/// The NAL units of an Annex B buffer.
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &(_, payload)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |&(next, _)| next);
        let mut nal = &data[payload..end];
        // A zero before the next start code belongs to it (a 4-byte start code).
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            out.push(nal);
        }
    }
    out
}

/// H.264 NAL unit types of the parameter sets, which go into the `avcC`.
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// The H.264 encoder, opened once the first two pictures give the frame rate.
enum Encoder {
    Waiting(Vec<ff::frame::Video>),
    Open(ff::encoder::video::Encoder),
}

/// Transcodes stored frames to H.264 (libx264, preset `veryfast`) for players that cannot play
/// H.265, burning the camera name and each frame's wall-clock time into the picture. Frames go
/// in with [`push`](Self::push) in decode order from a keyframe, with strictly increasing
/// timestamps; packets come out in the same order with the same timestamps, as the encoder
/// gives them up.
pub struct Transcoder {
    decoder: Decoder,
    camera: String,
    font: String,
    crf: u8,
    /// The text of frames sent to the decoder whose picture has not come out yet, by pts.
    clock_texts: BTreeMap<i64, String>,
    last_pts: Option<i64>,
    pushed: u64,
    filter: Option<ff::filter::Graph>,
    encoder: Encoder,
    /// Parameter sets from x264's first keyframe, and what they give.
    params: Option<(Vec<u8>, Vec<u8>, VideoParams)>,
}

impl Transcoder {
    /// A transcoder for frames of the `avc1`/`hvc1` sample entry `entry`, from camera
    /// `camera_name`.
    pub fn new(
        entry: &[u8],
        camera_name: &str,
        options: &TranscodeOptions,
    ) -> Result<Transcoder, Error> {
        let decoder = Decoder::open(entry)?;
        if options.crf > 51 {
            bail!(InvalidArgument, "x264 CRF {} is not in 0..=51", options.crf);
        }
        if ff::encoder::find_by_name("libx264").is_none() {
            bail!(FailedPrecondition, "this FFmpeg has no libx264 encoder");
        }
        let font = font_path(&options.font_file)?;
        Ok(Transcoder {
            decoder,
            camera: printable(camera_name),
            font,
            crf: options.crf,
            clock_texts: BTreeMap::new(),
            last_pts: None,
            pushed: 0,
            filter: None,
            encoder: Encoder::Waiting(Vec::new()),
            params: None,
        })
    }

    /// The output's sample entry, codec string and size, once the first packet is out.
    pub fn params(&self) -> Option<&VideoParams> {
        self.params.as_ref().map(|(_, _, p)| p)
    }

    /// Transcodes one frame with presentation time `pts`, burning in `wall_clock` after the
    /// camera name. Returns the packets the encoder gave up, maybe none.
    pub fn push(
        &mut self,
        frame: StoredFrame<'_>,
        pts: Duration90k,
        wall_clock: &str,
    ) -> Result<Vec<EncodedPacket>, Error> {
        let index = self.pushed;
        let at = |e: Error| e.context(format_args!("transcoding frame {index} (pts {})", pts.0));
        if index == 0 && !frame.keyframe {
            return Err(at(err!(
                InvalidArgument,
                "the first frame is not a keyframe"
            )));
        }
        if let Some(last) = self.last_pts.filter(|&last| pts.0 <= last) {
            return Err(at(err!(
                InvalidArgument,
                "pts does not follow the previous {last}"
            )));
        }
        self.pushed += 1;
        self.last_pts = Some(pts.0);
        self.clock_texts.insert(pts.0, printable(wall_clock));
        self.decoder.send(frame, pts.0).map_err(at)?;
        let mut out = Vec::new();
        self.drain_decoder(&mut out).map_err(at)?;
        Ok(out)
    }

    /// Flushes decoder, filter and encoder, and returns the last packets and the output's
    /// parameters.
    pub fn finish(mut self) -> Result<Finished, Error> {
        let at = |e: Error| e.context("finishing a transcode");
        let mut packets = Vec::new();
        self.decoder.send_eof().map_err(at)?;
        self.drain_decoder(&mut packets).map_err(at)?;
        if let Some(graph) = &mut self.filter {
            filter_context(graph, "in")
                .map_err(at)?
                .source()
                .flush()
                .map_err(|e| at(err!(Internal, source: e, "flushing the text filter")))?;
            self.drain_filter(&mut packets).map_err(at)?;
        }
        if let Encoder::Waiting(pending) = &self.encoder
            && !pending.is_empty()
        {
            self.open_encoder().map_err(at)?;
            self.drain_encoder(&mut packets).map_err(at)?;
        }
        if let Encoder::Open(encoder) = &mut self.encoder {
            encoder
                .send_eof()
                .map_err(|e| at(err!(Internal, source: e, "flushing x264")))?;
            self.drain_encoder(&mut packets).map_err(at)?;
        }
        match self.params {
            Some((_, _, params)) => Ok(Finished { packets, params }),
            None => Err(at(err!(
                DataLoss,
                "no picture decoded from {} frames",
                self.pushed
            ))),
        }
    }

    /// Burns text into every picture the decoder has ready and passes it on.
    fn drain_decoder(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), Error> {
        while let Some(mut picture) = self.decoder.receive()? {
            let pts = picture.pts().unwrap_or(i64::MIN);
            // Pictures come out in presentation order: texts before this one are of frames
            // the decoder dropped.
            let later = self.clock_texts.split_off(&pts.saturating_add(1));
            let clock = std::mem::replace(&mut self.clock_texts, later)
                .remove(&pts)
                .unwrap_or_default();
            let mut metadata = ff::Dictionary::new();
            metadata.set(CAMERA_KEY, &self.camera);
            metadata.set(CLOCK_KEY, &clock);
            picture.set_metadata(metadata);
            // Keep the source's keyframes; x264 picks the type of every other picture.
            picture.set_kind(if picture.is_key() {
                ff::picture::Type::I
            } else {
                ff::picture::Type::None
            });
            let graph = match &mut self.filter {
                Some(graph) => graph,
                None => self.filter.insert(build_filter(&picture, &self.font)?),
            };
            filter_context(graph, "in")?
                .source()
                .add(&picture)
                .map_err(|e| err!(Internal, source: e, "feeding the text filter"))?;
            self.drain_filter(out)?;
        }
        Ok(())
    }

    /// Encodes every picture the filter has ready.
    fn drain_filter(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), Error> {
        let Some(graph) = &mut self.filter else {
            return Ok(());
        };
        let mut sink = filter_context(graph, "out")?;
        loop {
            let mut picture = ff::frame::Video::empty();
            match sink.sink().frame(&mut picture) {
                Ok(()) => {}
                Err(e) if is_drained(&e) => return Ok(()),
                Err(e) => bail!(Internal, source: e, "running the text filter"),
            }
            match &mut self.encoder {
                Encoder::Open(encoder) => {
                    encoder
                        .send_frame(&picture)
                        .map_err(|e| err!(Internal, source: e, "x264 rejects a picture"))?;
                    self.drain_encoder(out)?;
                }
                Encoder::Waiting(pending) => {
                    pending.push(picture);
                    if pending.len() == 2 {
                        self.open_encoder()?;
                        self.drain_encoder(out)?;
                    }
                }
            }
        }
    }

    /// Opens x264 for the pictures waiting, at the frame rate of their first two, and sends
    /// them.
    fn open_encoder(&mut self) -> Result<(), Error> {
        let Encoder::Waiting(pending) = &mut self.encoder else {
            return Ok(());
        };
        let pending = std::mem::take(pending);
        let Some(first) = pending.first() else {
            bail!(Internal, "opening x264 without a picture");
        };
        let fps = match (first.pts(), pending.get(1).and_then(|p| p.pts())) {
            (Some(a), Some(b)) if b > a => {
                ff::Rational(TIME_BASE.1, i32::try_from(b - a).unwrap_or(i32::MAX)).reduce()
            }
            _ => ff::Rational(FALLBACK_FPS, 1),
        };
        let codec = ff::encoder::find_by_name("libx264")
            .ok_or_else(|| err!(FailedPrecondition, "this FFmpeg has no libx264 encoder"))?;
        let mut encoder = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| err!(Internal, source: e, "setting up x264"))?;
        encoder.set_width(first.width());
        encoder.set_height(first.height());
        encoder.set_format(Pixel::YUV420P);
        encoder.set_aspect_ratio(first.aspect_ratio());
        encoder.set_time_base(TIME_BASE);
        encoder.set_frame_rate(Some(fps));
        encoder.set_max_b_frames(0);
        let keyint = (f64::from(fps) * f64::from(MAX_KEYFRAME_INTERVAL_SECS)).round();
        encoder.set_gop((keyint as u32).max(1));
        let mut options = ff::Dictionary::new();
        options.set("preset", "veryfast");
        options.set("crf", &self.crf.to_string());
        let mut encoder = encoder.open_as_with(codec, options).map_err(
            |e| err!(Internal, source: e, "opening x264 for {}x{}", first.width(), first.height()),
        )?;
        for picture in &pending {
            encoder
                .send_frame(picture)
                .map_err(|e| err!(Internal, source: e, "x264 rejects a picture"))?;
        }
        self.encoder = Encoder::Open(encoder);
        Ok(())
    }

    /// Converts every packet the encoder has ready.
    fn drain_encoder(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), Error> {
        let Encoder::Open(encoder) = &mut self.encoder else {
            return Ok(());
        };
        let (width, height) = (encoder.width(), encoder.height());
        let mut packet = ff::Packet::empty();
        loop {
            match encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(e) if is_drained(&e) => return Ok(()),
                Err(e) => bail!(Internal, source: e, "encoding with x264"),
            }
            let mut data = Vec::with_capacity(packet.size() + 16);
            let (mut sps, mut pps) = (None, None);
            for nal in split_annex_b(packet.data().unwrap_or_default()) {
                match nal[0] & 0x1f {
                    NAL_SPS => sps = Some(nal),
                    NAL_PPS => pps = Some(nal),
                    _ => {
                        let len = u32::try_from(nal.len()).map_err(|_| {
                            err!(Internal, "x264 gave a NAL unit of {} bytes", nal.len())
                        })?;
                        data.extend_from_slice(&len.to_be_bytes());
                        data.extend_from_slice(nal);
                    }
                }
            }
            match (&self.params, sps, pps) {
                (None, Some(sps), Some(pps)) => {
                    let params = h264_params(sps, pps, width, height)?;
                    self.params = Some((sps.to_vec(), pps.to_vec(), params));
                }
                (None, _, _) => bail!(Internal, "x264's first packet lacks its parameter sets"),
                (Some((s, p, _)), sps, pps)
                    if sps.is_some_and(|x| x != s) || pps.is_some_and(|x| x != p) =>
                {
                    bail!(Internal, "x264 changed its parameter sets mid-stream")
                }
                _ => {}
            }
            let (Some(pts), Some(dts)) = (packet.pts(), packet.dts()) else {
                bail!(Internal, "x264 gave a packet without timestamps");
            };
            out.push(EncodedPacket {
                data,
                pts: Duration90k(pts),
                dts: Duration90k(dts),
                keyframe: packet.is_key(),
            });
        }
    }
}

/// A filter of the graph by name.
fn filter_context(graph: &mut ff::filter::Graph, name: &str) -> Result<ff::filter::Context, Error> {
    graph
        .get(name)
        .ok_or_else(|| err!(Internal, "the text filter has no {name:?}"))
}

/// The font file as drawtext will be given it: it must exist, and be UTF-8.
fn font_path(path: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(path).map_err(
        |e| err!(FailedPrecondition, source: e, "font file {} for burned-in text", path.display()),
    )?;
    if !meta.is_file() {
        bail!(
            FailedPrecondition,
            "font file {} is not a file",
            path.display()
        );
    }
    path.to_str().map(str::to_owned).ok_or_else(|| {
        err!(
            FailedPrecondition,
            "font file {} is not UTF-8",
            path.display()
        )
    })
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
        send::<Transcoder>();
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

    /// Transcodes `track` and returns every packet and the output's parameters.
    fn transcode(
        track: &Track,
        frames: usize,
        camera: &str,
        options: &TranscodeOptions,
    ) -> Result<(Vec<EncodedPacket>, VideoParams), Error> {
        let mut t = Transcoder::new(&track.entry, camera, options)?;
        let mut packets = Vec::new();
        for (i, (frame, sample)) in track
            .frames()
            .into_iter()
            .zip(&track.samples)
            .enumerate()
            .take(frames)
        {
            let clock = format!("2026-11-26 12:00:{:02}.{:03}", i / 15, i % 15 * 66);
            packets.extend(t.push(frame, Duration90k(sample.pts_90k), &clock)?);
            if !packets.is_empty() {
                assert!(t.params().is_some());
            }
        }
        let finished = t.finish()?;
        packets.extend(finished.packets);
        Ok((packets, finished.params))
    }

    /// An H.264 elementary stream (Annex B) of an `avcC` and length-prefixed packets.
    fn annex_b(params: &VideoParams, packets: &[EncodedPacket]) -> Vec<u8> {
        let config = StreamConfig::from_sample_entry(&params.sample_entry).unwrap();
        let mut out = config.parameter_sets.clone();
        for p in packets {
            append_annex_b(&mut out, &p.data, 4).unwrap();
        }
        out
    }

    #[test]
    fn transcodes_h265_to_h264_with_burned_in_text() {
        let dir = tempfile::tempdir().unwrap();
        let track = h265();
        let (packets, params) =
            transcode(track, FRAMES, "Gate 3", &TranscodeOptions::default()).unwrap();

        let avcc = extradata_from_sample_entry(&params.sample_entry).unwrap().1;
        let codec = format!("avc1.{:02x}{:02x}{:02x}", avcc[1], avcc[2], avcc[3]);
        assert_eq!(
            (params.codec.as_str(), params.width, params.height),
            (codec.as_str(), WIDTH, HEIGHT)
        );
        let pts: Vec<i64> = packets.iter().map(|p| p.pts.0).collect();
        let want: Vec<i64> = track.samples.iter().map(|s| s.pts_90k).collect();
        assert_eq!(pts, want);
        assert!(packets.iter().all(|p| p.dts == p.pts));
        let keyframes: Vec<usize> = (0..FRAMES).filter(|&i| packets[i].keyframe).collect();
        assert_eq!(keyframes, [0, 15], "the source's keyframes");

        let stream = annex_b(&params, &packets);
        assert_eq!(
            probe(dir.path(), "export.h264", &stream, &["-f", "h264"]),
            "h264,640,360,30"
        );

        // Decoded again: the text box is in the top left corner, the rest is the source.
        let frames: Vec<StoredFrame<'_>> = packets
            .iter()
            .map(|p| StoredFrame {
                data: &p.data,
                keyframe: p.keyframe,
            })
            .collect();
        let out = luma(&decode_frame(&params.sample_entry, &frames, WANTED).unwrap());
        let text = mean_difference(&out, &track.wanted_luma, (6, 6, 150, 20));
        let rest = mean_difference(&out, &track.wanted_luma, (0, 60, 640, 360));
        assert!(
            text > 20.0 && rest < 4.0,
            "difference {text:.1} in the text box, {rest:.1} below"
        );
    }

    #[test]
    fn camera_names_and_font_paths_cannot_change_the_filter() {
        assert_eq!(escape_option("a'b:c\\d e"), "a\\'b\\:c\\\\d\\ e");
        let dir = tempfile::tempdir().unwrap();
        let font = dir.path().join("it's: [a], b; c=\\ d.ttf");
        std::fs::copy(DEFAULT_FONT_FILE, &font).unwrap();
        let options = TranscodeOptions {
            font_file: font,
            ..TranscodeOptions::default()
        };
        let name = "Cam 'A': \\ %{pts} [x],;=\0\n:text=evil";
        let (packets, _) = transcode(h265(), 3, name, &options).unwrap();
        assert_eq!(packets.len(), 3);
    }

    #[test]
    fn transcoder_errors() {
        let track = h265();
        let options = TranscodeOptions {
            font_file: PathBuf::from("/nonexistent/font.ttf"),
            ..TranscodeOptions::default()
        };
        let e = Transcoder::new(&track.entry, "cam", &options)
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        let options = TranscodeOptions {
            crf: 52,
            ..TranscodeOptions::default()
        };
        let e = Transcoder::new(&track.entry, "cam", &options)
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

        let frames = track.frames();
        let options = TranscodeOptions::default();
        let mut t = Transcoder::new(&track.entry, "cam", &options).unwrap();
        let e = t.push(frames[1], Duration90k(0), "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        t.push(frames[0], Duration90k(6000), "").unwrap();
        let e = t.push(frames[1], Duration90k(6000), "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let cut = StoredFrame {
            data: &frames[1].data[..frames[1].data.len() - 1],
            keyframe: false,
        };
        let e = t.push(cut, Duration90k(12_000), "").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("transcoding frame 1 (pts 12000): NAL unit"),
            "{e}"
        );

        // Garbage inside NAL units: errors or pictures, never a panic.
        for track in [h264(), h265()] {
            let mut t = Transcoder::new(&track.entry, "cam", &options).unwrap();
            for (i, s) in track.samples.iter().enumerate() {
                let garbled = garble(&s.data, 11, i);
                let frame = StoredFrame {
                    data: &garbled,
                    keyframe: s.keyframe,
                };
                let _ = t.push(frame, Duration90k(s.pts_90k), "");
            }
            let _ = t.finish();
        }

        // Nothing decodable: finishing says so.
        let mut t = Transcoder::new(&track.entry, "cam", &options).unwrap();
        let garbage = [0, 0, 0, 4, 0x26, 0x01, 0xff, 0xff];
        let _ = t.push(
            StoredFrame {
                data: &garbage,
                keyframe: true,
            },
            Duration90k(0),
            "",
        );
        let e = t.finish().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DataLoss, "{e}");
    }
}
