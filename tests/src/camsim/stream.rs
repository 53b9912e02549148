//! One simulated camera stream: the media it currently feeds, the faults in force, the pacing
//! of frames onto the media's timeline, and the record of every frame that went out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as gst_rtsp_server;
use gstreamer_rtsp_server::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{Codec, Mode, ParameterSets, StreamConfig};
use super::encode::{self, AccessUnit, Clip, Encoding, LiveEncoder, LiveOutput};
use super::media::{self, Media};
use super::schedule::Scheduler;
use super::{nal, rtp};

/// A fault injected into a stream at run time (the control API's request body).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Close every RTSP connection that plays this stream.
    Drop,
    /// Keep the sessions but send nothing for a while.
    Stall { duration_ms: u64 },
    /// Add an offset to every RTP timestamp from now on (may be negative).
    TimestampJump { offset_ms: i64 },
    /// Send the next `packets` video packets with a corrupt NAL header.
    Corrupt {
        #[serde(default = "one")]
        packets: u32,
    },
    /// Switch to another resolution; the next frame is a keyframe with a new SPS.
    Resolution { width: u32, height: u32 },
    /// Make RTCP sender reports claim a camera clock this far ahead of real time (negative:
    /// behind). Replaces any earlier skew; 0 restores the true clock.
    ClockSkew { offset_ms: i64 },
}

fn one() -> u32 {
    1
}

/// One frame as it left the simulator: taken from the RTP packets after every fault was applied.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct FrameRecord {
    /// Position in the stream's whole output, from 0; consecutive unless the record overflowed.
    pub seq: u64,
    /// The RTP timestamp on the wire (90 kHz).
    pub rtp_timestamp: u32,
    /// Wall-clock time the frame's first packet left the payloader, µs since the Unix epoch.
    pub sent_unix_us: i64,
    /// The frame is a keyframe (or carries the parameter sets sent with one).
    pub keyframe: bool,
}

struct Record {
    frames: VecDeque<FrameRecord>,
    capacity: usize,
    next_seq: u64,
}

impl Record {
    fn observe(&mut self, rtp_timestamp: u32, keyframe: bool) {
        if let Some(last) = self.frames.back_mut()
            && last.rtp_timestamp == rtp_timestamp
        {
            last.keyframe |= keyframe;
            return;
        }
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
        }
        let sent_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.frames.push_back(FrameRecord {
            seq: self.next_seq,
            rtp_timestamp,
            sent_unix_us,
            keyframe,
        });
        self.next_seq += 1;
    }
}

/// Puts frame `k` of a track at `t0 + k·period` in real time and stamps it `rt0 + k·period` on
/// the media's running time. The period is `num/den` ns; each offset is rounded up, and `rt0`
/// is a whole millisecond, so the payloader's RTP timestamps land exactly on the frame grid.
pub struct Pacer {
    src: gst_app::AppSrc,
    num: u64,
    den: u64,
    start: Option<(Instant, u64)>,
    k: u64,
    /// Video whose parameter sets must not travel in-band: the codec to strip them for.
    strip_parameter_sets: Option<Codec>,
}

impl Pacer {
    pub fn new(src: gst_app::AppSrc, num: u64, den: u64) -> Pacer {
        Pacer {
            src,
            num,
            den,
            start: None,
            k: 0,
            strip_parameter_sets: None,
        }
    }

    /// Leaves the parameter sets out of every keyframe pushed from now on.
    fn stripping_parameter_sets(mut self, codec: Codec) -> Pacer {
        self.strip_parameter_sets = Some(codec);
        self
    }

    fn offset_ns(&self, k: u64) -> u64 {
        let ns = (u128::from(k) * u128::from(self.num)).div_ceil(u128::from(self.den));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Starts the clock once the media's pipeline runs; false until then. Running time means
    /// something only in PLAYING: before, the element may have a clock but no base time yet,
    /// and a "running time" read then is the raw clock, days ahead of the sinks.
    pub fn ready(&mut self) -> bool {
        if self.start.is_none()
            && self.src.current_state() == gst::State::Playing
            && let Some(rt) = self.src.current_running_time()
        {
            let rt0 = rt.nseconds().div_ceil(1_000_000) * 1_000_000;
            self.start = Some((Instant::now(), rt0));
        }
        self.start.is_some()
    }

    /// When the next frame is due. Only meaningful once [`Pacer::ready`].
    pub fn due(&self) -> Instant {
        let (t0, _) = self.start.expect("due() after ready()");
        t0 + Duration::from_nanos(self.offset_ns(self.k))
    }

    /// Sends `au` as the next frame, or skips its slot when `silent`. Err when the media
    /// refused it (flushing, or gone).
    pub fn push(&mut self, au: &AccessUnit, silent: bool) -> Result<(), gst::FlowError> {
        let (_, rt0) = self.start.expect("push() after ready()");
        let (from, to) = (self.offset_ns(self.k), self.offset_ns(self.k + 1));
        self.k += 1;
        if silent {
            return Ok(());
        }
        let stripped = match self.strip_parameter_sets {
            Some(codec) if au.keyframe => au
                .buffer
                .map_readable()
                .ok()
                .and_then(|map| nal::without_parameter_sets(codec, &map)),
            _ => None,
        };
        let mut buffer = stripped.map_or_else(|| au.buffer.copy(), gst::Buffer::from_mut_slice);
        {
            let b = buffer.get_mut().expect("a fresh copy is writable");
            let pts = gst::ClockTime::from_nseconds(rt0 + from);
            b.set_pts(pts);
            b.set_dts(pts);
            b.set_duration(gst::ClockTime::from_nseconds(to - from));
        }
        self.src.push_buffer(buffer).map(|_| ())
    }
}

/// The sources of the media a stream is feeding now.
struct LiveFeed {
    generation: u64,
    video: Pacer,
    audio: Option<Pacer>,
    /// Access units that came before the media's pipeline ran: the first is the keyframe.
    pending: VecDeque<AccessUnit>,
}

/// A camera stream and everything the simulator knows about it.
pub struct Stream {
    pub camera: String,
    pub config: StreamConfig,
    /// Mount path: `/{camera}/{stream}`; both names are validated to `[A-Za-z0-9_-]`.
    pub path: String,
    /// Bumped for every new media; pacers of an older media stop.
    generation: AtomicU64,
    /// The newest media and whether it was ever prepared, and the part of the media key that
    /// changes once that media shuts down.
    media: Mutex<(glib::WeakRef<gst_rtsp_server::RTSPMedia>, bool)>,
    media_epoch: AtomicU64,
    /// `loop` mode: the clip being replayed, replaced on a resolution change.
    clip: Mutex<Option<Arc<Clip>>>,
    clip_version: AtomicU64,
    /// The parameter sets (NAL units) of the latest keyframe encoded, for the SDP.
    parameter_sets: Mutex<Vec<Vec<u8>>>,
    /// `live` mode: the encoder and the feed of the current media.
    live: Mutex<Option<(LiveEncoder, LiveFeed)>>,
    resolution: Mutex<(u32, u32)>,
    stall_until: Mutex<Option<Instant>>,
    ts_offset: AtomicU32,
    corrupt_pending: AtomicU32,
    clock_skew_ms: AtomicI64,
    record: Mutex<Record>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stream {
    pub fn new(
        camera: &str,
        config: StreamConfig,
        clip: Option<Arc<Clip>>,
        record_capacity: usize,
    ) -> Stream {
        let stream = Stream {
            path: format!("/{camera}/{}", config.name),
            camera: camera.to_owned(),
            resolution: Mutex::new((config.width, config.height)),
            config,
            generation: AtomicU64::new(0),
            media: Mutex::new((glib::WeakRef::new(), false)),
            media_epoch: AtomicU64::new(0),
            clip: Mutex::new(clip.clone()),
            clip_version: AtomicU64::new(0),
            parameter_sets: Mutex::new(Vec::new()),
            live: Mutex::new(None),
            stall_until: Mutex::new(None),
            ts_offset: AtomicU32::new(0),
            corrupt_pending: AtomicU32::new(0),
            clock_skew_ms: AtomicI64::new(0),
            record: Mutex::new(Record {
                frames: VecDeque::new(),
                capacity: record_capacity,
                next_seq: 0,
            }),
        };
        if let Some(first) = clip.as_ref().and_then(|c| c.video.first()) {
            stream.remember_parameter_sets(first);
        }
        stream
    }

    /// Keeps the parameter sets a keyframe carries, if it carries any.
    fn remember_parameter_sets(&self, au: &AccessUnit) {
        let Ok(map) = au.buffer.map_readable() else {
            return;
        };
        let sets = nal::parameter_sets(self.config.codec, &map);
        if !sets.is_empty() {
            *lock(&self.parameter_sets) = sets;
        }
    }

    /// Edits the SDP a DESCRIBE answers with, for where this stream's parameter sets travel:
    /// the video `fmtp` loses its `sprop-*` parameters, or gets them from the encoder when the
    /// payloader never saw them in-band.
    pub fn edit_sdp(&self, sdp: &mut gst_rtsp_server::gst_sdp::SDPMessageRef) {
        let policy = self.config.parameter_sets;
        if policy == ParameterSets::SdpAndInBand {
            return;
        }
        let sets = policy.in_sdp().then(|| lock(&self.parameter_sets).clone());
        let codec = self.config.codec;
        for media in sdp.medias_mut() {
            if media.media() != Some("video") {
                continue;
            }
            let fmtp = (0..media.attributes_len()).find_map(|i| {
                let a = media.attribute(i)?;
                (a.key() == "fmtp").then(|| (i, a.value().unwrap_or_default().to_owned()))
            });
            match fmtp {
                Some((i, value)) => {
                    let value = nal::rewrite_fmtp(&value, codec, sets.as_deref());
                    let attr = gst_rtsp_server::gst_sdp::SDPAttribute::new("fmtp", Some(&value));
                    if let Err(e) = media.replace_attribute(i, attr) {
                        tracing::error!(stream = %self.path, err = %e, "cannot edit the SDP");
                    }
                }
                // The payloader writes no fmtp when it saw no parameter sets.
                None => {
                    if let Some(format) = media.format(0)
                        && (codec == Codec::H264 || sets.is_some())
                    {
                        let value = nal::rewrite_fmtp(format, codec, sets.as_deref());
                        media.add_attribute("fmtp", Some(&value));
                    }
                }
            }
        }
    }

    /// The pipeline the RTSP server builds for each media of this stream.
    pub fn launch(&self) -> String {
        let pay = match self.config.codec {
            Codec::H264 => "rtph264pay",
            Codec::H265 => "rtph265pay",
        };
        let mut launch = format!(
            "( appsrc name=vsrc is-live=true format=time ! {pay} name=pay0 pt=96 config-interval=-1"
        );
        if self.config.audio {
            launch.push_str(
                " appsrc name=asrc is-live=true format=time ! rtpmp4gpay name=pay1 pt=97",
            );
        }
        launch.push_str(" )");
        launch
    }

    /// The key under which the RTSP server shares this stream's media between clients, asked
    /// for every client about to be handed the media. A prepared media is held prepared for
    /// a moment, so that it cannot go away before that client prepares it too; once it starts
    /// shutting down the key changes, so that the client gets a new media instead.
    pub fn media_key(&self) -> String {
        use gst_rtsp_server::RTSPMediaStatus as Status;
        // Not under the lock: preparing takes the media's own locks.
        let (newest, was_prepared) = {
            let newest = lock(&self.media);
            (newest.0.upgrade(), newest.1)
        };
        let going = newest.is_some_and(|m| match m.status() {
            Status::Prepared | Status::Suspended => !media::hold_briefly(&m),
            Status::Unpreparing | Status::Error => true,
            // Prepared once and unprepared again, it cannot be prepared again; it stays in
            // the server's cache for a moment after it finished shutting down.
            Status::Unprepared => was_prepared,
            _ => false,
        });
        let epoch = if going {
            self.media_epoch.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.media_epoch.load(Ordering::Acquire)
        };
        format!("{}#{epoch}", self.path)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn resolution(&self) -> (u32, u32) {
        *lock(&self.resolution)
    }

    /// The current clip and its version (`loop` mode).
    pub fn clip(&self) -> (Option<Arc<Clip>>, u64) {
        let clip = lock(&self.clip).clone();
        (clip, self.clip_version.load(Ordering::Acquire))
    }

    pub fn clip_version(&self) -> u64 {
        self.clip_version.load(Ordering::Acquire)
    }

    pub fn stalled(&self, now: Instant) -> bool {
        lock(&self.stall_until).is_some_and(|until| now < until)
    }

    /// Frames recorded after `after` (all when `None`), at most `limit`.
    pub fn frames(&self, after: Option<u64>, limit: usize) -> Vec<FrameRecord> {
        let record = lock(&self.record);
        record
            .frames
            .iter()
            .filter(|f| after.is_none_or(|a| f.seq > a))
            .take(limit)
            .copied()
            .collect()
    }

    /// Applies a fault that acts on the stream itself. `Drop` acts on the RTSP server and is
    /// handled there; a `loop` resolution change encodes a new clip and may take a while.
    pub fn apply(&self, fault: &Fault) -> Result<(), String> {
        match *fault {
            Fault::Drop => {}
            Fault::Stall { duration_ms } => {
                *lock(&self.stall_until) =
                    Some(Instant::now() + Duration::from_millis(duration_ms));
            }
            Fault::TimestampJump { offset_ms } => {
                let ticks = offset_ms.wrapping_mul(90) as u32;
                self.ts_offset.fetch_add(ticks, Ordering::AcqRel);
            }
            Fault::Corrupt { packets } => {
                self.corrupt_pending.fetch_add(packets, Ordering::AcqRel);
            }
            Fault::ClockSkew { offset_ms } => {
                self.clock_skew_ms.store(offset_ms, Ordering::Release)
            }
            Fault::Resolution { width, height } => {
                let mut shape = self.config.clone();
                shape.width = width;
                shape.height = height;
                shape.validate()?;
                match self.config.mode {
                    Mode::Loop => {
                        let clip =
                            encode::encode_clip(&Encoding::of(&self.config).at(width, height))?;
                        if let Some(first) = clip.video.first() {
                            self.remember_parameter_sets(first);
                        }
                        *lock(&self.clip) = Some(clip);
                        self.clip_version.fetch_add(1, Ordering::AcqRel);
                    }
                    Mode::Live => {
                        if let Some((encoder, _)) = lock(&self.live).as_ref() {
                            encoder.set_resolution(width, height);
                        }
                    }
                }
                *lock(&self.resolution) = (width, height);
            }
        }
        Ok(())
    }

    /// Wires a new media of this stream: caps, probes, and a frame source.
    pub fn configure_media(
        self: &Arc<Self>,
        media: &gst_rtsp_server::RTSPMedia,
        scheduler: &Scheduler,
    ) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        Media::attach(media, self);
        *lock(&self.media) = (media.downgrade(), false);
        let Some(bin) = media.element().downcast::<gst::Bin>().ok() else {
            tracing::error!(stream = %self.path, "media element is not a bin");
            return;
        };
        let appsrc = |name: &str| {
            bin.by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let Some(vsrc) = appsrc("vsrc") else {
            tracing::error!(stream = %self.path, "media has no video appsrc");
            return;
        };
        vsrc.set_caps(Some(&encode::video_caps(self.config.codec)));
        let asrc = appsrc("asrc");
        if let Some(pad) = bin.by_name("pay0").and_then(|p| p.static_pad("src")) {
            let stream = Arc::downgrade(self);
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    if let Some(stream) = stream.upgrade() {
                        stream.on_video_probe(info);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        let stream = Arc::downgrade(self);
        media.connect_prepared(move |media| {
            if let Some(stream) = stream.upgrade() {
                let mut newest = lock(&stream.media);
                if newest.0.upgrade().as_ref() == Some(media) {
                    newest.1 = true;
                }
                drop(newest);
                stream.watch_rtcp(media);
            }
        });
        let stream = Arc::downgrade(self);
        media.connect_unprepared(move |_| {
            if let Some(stream) = stream.upgrade() {
                stream.media_gone(generation);
            }
        });

        let mut video_pacer = Pacer::new(vsrc, 1_000_000_000, u64::from(self.config.fps));
        if !self.config.parameter_sets.in_band() {
            video_pacer = video_pacer.stripping_parameter_sets(self.config.codec);
        }
        let audio_pacer = asrc.map(|src| {
            Pacer::new(
                src,
                1_000_000_000 * encode::AUDIO_SAMPLES_PER_AU,
                encode::AUDIO_RATE,
            )
        });
        match self.config.mode {
            Mode::Loop => {
                let (clip, _) = self.clip();
                if let (Some(src), Some(caps)) = (
                    audio_pacer.as_ref().map(|p| p.src.clone()),
                    clip.as_ref().and_then(|c| c.audio_caps.clone()),
                ) {
                    src.set_caps(Some(&caps));
                }
                scheduler.add(self.clone(), generation, video_pacer, false);
                if let Some(p) = audio_pacer {
                    scheduler.add(self.clone(), generation, p, true);
                }
            }
            Mode::Live => {
                let weak = Arc::downgrade(self);
                let (width, height) = self.resolution();
                let encoding = Encoding::of(&self.config).at(width, height);
                let encoder = LiveEncoder::start(&encoding, move |out| {
                    if let Some(stream) = weak.upgrade() {
                        stream.on_live_output(out);
                    }
                });
                match encoder {
                    Ok(encoder) => {
                        let feed = LiveFeed {
                            generation,
                            video: video_pacer,
                            audio: audio_pacer,
                            pending: VecDeque::new(),
                        };
                        *lock(&self.live) = Some((encoder, feed));
                    }
                    Err(e) => tracing::error!(stream = %self.path, err = %e, "live encoder failed"),
                }
            }
        }
        tracing::debug!(stream = %self.path, generation, "media configured");
    }

    fn media_gone(&self, generation: u64) {
        // Only the media of this generation goes; a newer one may already be running.
        let _ = self.generation.compare_exchange(
            generation,
            generation + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let mut live = lock(&self.live);
        if live
            .as_ref()
            .is_some_and(|(_, feed)| feed.generation == generation)
        {
            *live = None;
        }
        tracing::debug!(stream = %self.path, generation, "media gone");
    }

    fn on_live_output(&self, out: LiveOutput) {
        let silent = self.stalled(Instant::now());
        let mut live = lock(&self.live);
        let Some((_, feed)) = live.as_mut() else {
            return;
        };
        let ok = match out {
            LiveOutput::Video(au) => {
                if au.keyframe {
                    self.remember_parameter_sets(&au);
                }
                if !feed.video.ready() {
                    // Hold what the encoder made before the media ran: it starts with the keyframe.
                    if feed.pending.len() < 256 {
                        feed.pending.push_back(au);
                    }
                    return;
                }
                let mut ok = true;
                while let Some(held) = feed.pending.pop_front() {
                    ok &= feed.video.push(&held, silent).is_ok();
                }
                ok && feed.video.push(&au, silent).is_ok()
            }
            LiveOutput::Audio(au, caps) => match feed.audio.as_mut() {
                Some(pacer) => {
                    if pacer.src.caps().is_none() {
                        pacer.src.set_caps(Some(&caps));
                    }
                    !pacer.ready() || pacer.push(&au, silent).is_ok()
                }
                None => true,
            },
        };
        if !ok {
            tracing::debug!(stream = %self.path, "live media stopped accepting frames");
        }
    }

    /// Looks at (and, for faults, edits) every RTP packet leaving the video payloader.
    fn on_video_probe(&self, info: &mut gst::PadProbeInfo) {
        match info.data {
            Some(gst::PadProbeData::Buffer(ref mut buffer)) => {
                self.on_video_packet(buffer.make_mut())
            }
            Some(gst::PadProbeData::BufferList(ref mut list)) => {
                let list = list.make_mut();
                for i in 0..list.len() {
                    if let Some(b) = list.get_mut(i) {
                        self.on_video_packet(b);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_video_packet(&self, buffer: &mut gst::BufferRef) {
        let mut prefix = [0u8; 48];
        let n = buffer.size().min(prefix.len());
        if buffer.copy_to_slice(0, &mut prefix[..n]).is_err() {
            return;
        }
        let Some(header) = rtp::parse_rtp_header(&prefix[..n]) else {
            return;
        };
        let offset = self.ts_offset.load(Ordering::Acquire);
        let timestamp = header.timestamp.wrapping_add(offset);
        if offset != 0 {
            let mut fixed = [0u8; rtp::RTP_FIXED_HEADER_BYTES];
            fixed.copy_from_slice(&prefix[..rtp::RTP_FIXED_HEADER_BYTES]);
            rtp::set_rtp_timestamp(&mut fixed, timestamp);
            let _ = buffer.copy_from_slice(0, &fixed);
        }
        let payload = &prefix[header.payload_offset..n];
        let keyframe = rtp::is_keyframe_payload(self.config.codec, payload);
        if !payload.is_empty()
            && self
                .corrupt_pending
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
        {
            let mut first = [payload[0]];
            rtp::corrupt_payload(&mut first);
            let _ = buffer.copy_from_slice(header.payload_offset, &first);
            tracing::info!(stream = %self.path, "sent a corrupt packet");
        }
        lock(&self.record).observe(timestamp, keyframe);
    }

    /// Once a media is prepared its streams sit in an rtpbin: watch the RTCP they send, to skew
    /// the clock of the sender reports on request, or to drop it all on a stream without RTCP.
    fn watch_rtcp(self: &Arc<Self>, media: &gst_rtsp_server::RTSPMedia) {
        for i in 0..media.n_streams() {
            let Some(s) = media.stream(i) else { continue };
            let Some(bin) = s.joined_bin() else { continue };
            let rtpbin = bin
                .iterate_elements()
                .into_iter()
                .flatten()
                .find(|e| e.factory().is_some_and(|f| f.name() == "rtpbin"));
            let Some(pad) =
                rtpbin.and_then(|r| r.static_pad(&format!("send_rtcp_src_{}", s.index())))
            else {
                tracing::warn!(stream = %self.path, "no RTCP pad to watch");
                continue;
            };
            let stream = Arc::downgrade(self);
            let rtcp = self.config.rtcp;
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    if !rtcp {
                        return gst::PadProbeReturn::Drop;
                    }
                    let skew = stream
                        .upgrade()
                        .map_or(0, |s| s.clock_skew_ms.load(Ordering::Acquire));
                    if skew != 0
                        && let Some(gst::PadProbeData::Buffer(ref mut buffer)) = info.data
                        && let Ok(mut map) = buffer.make_mut().map_writable()
                    {
                        rtp::shift_sender_report_ntp(&mut map, skew);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
    }
}
