//! Producing encoded media with GStreamer: the clips that `loop` mode encodes once and replays,
//! and the live encoder of `live` mode (test pattern, burned-in wall clock and frame counter).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::config::{Codec, Profile, StreamConfig};
use super::nal;

/// AAC audio of every stream that has audio: 48 kHz mono, 1024 samples per access unit.
pub const AUDIO_RATE: u64 = 48_000;
pub const AUDIO_SAMPLES_PER_AU: u64 = 1024;

/// Caps the video appsrc of every media announces; parameter sets travel in-band.
pub fn video_caps(codec: Codec) -> gst::Caps {
    let name = match codec {
        Codec::H264 => "video/x-h264",
        Codec::H265 => "video/x-h265",
    };
    gst::Caps::builder(name)
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build()
}

/// One encoded access unit (video frame or AAC frame), ready to be re-stamped and pushed.
#[derive(Clone)]
pub struct AccessUnit {
    pub buffer: gst::Buffer,
    pub keyframe: bool,
}

impl AccessUnit {
    /// Whether this video unit can start a stream: it holds a random-access picture.
    fn starts_stream(&self, codec: Codec) -> bool {
        self.buffer
            .map_readable()
            .is_ok_and(|m| nal::has_random_access_picture(codec, &m))
    }
}

/// What x265enc and h265parse sometimes hand out before the first picture (parameter sets on
/// their own, or a few bytes that are no NAL units at all) is no frame: a video stream starts
/// at its first random-access picture. Returns how many units were left out.
fn skip_to_first_keyframe(video: &mut Vec<AccessUnit>, codec: Codec) -> usize {
    let first = video
        .iter()
        .position(|au| au.starts_stream(codec))
        .unwrap_or(video.len());
    video.drain(..first);
    first
}

/// A pre-encoded stretch of video (and audio) that `loop` mode replays.
pub struct Clip {
    /// Numbers every clip this process encoded, from 1: streams showing the same id share it.
    pub id: u64,
    pub video: Vec<AccessUnit>,
    pub audio: Vec<AccessUnit>,
    pub audio_caps: Option<gst::Caps>,
}

/// Everything that shapes an encoded stream. Streams with equal encodings share one `loop`
/// clip; what only the RTSP side does (auth, RTCP, transports, where parameter sets travel,
/// faults) is not part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Encoding {
    pub codec: Codec,
    pub profile: Profile,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub gop_frames: u32,
    pub bitrate_kbps: u32,
    pub audio: bool,
    pub loop_secs: u32,
}

impl Encoding {
    /// The encoding of a stream at its configured resolution.
    pub fn of(s: &StreamConfig) -> Encoding {
        Encoding {
            codec: s.codec,
            profile: s.profile(),
            width: s.width,
            height: s.height,
            fps: s.fps,
            gop_frames: s.gop_frames,
            bitrate_kbps: s.bitrate_kbps,
            audio: s.audio,
            loop_secs: s.loop_secs,
        }
    }

    /// The same encoding at another resolution.
    pub fn at(&self, width: u32, height: u32) -> Encoding {
        Encoding {
            width,
            height,
            ..self.clone()
        }
    }
}

/// The encoder part of a pipeline: raw video in, byte-stream access units with parameter sets
/// before every keyframe out. Scene-cut keyframes are off, so the GOP is exactly `gop_frames`;
/// H.265 uses closed GOPs (IDR), as cameras do.
///
/// The rate is held the way a CBR camera holds it, so that the delivered bitrate is close to
/// `bitrate_kbps` even on an easy picture: x264 signals CBR HRD and pads with filler data,
/// x265 uses a VBV of one second at the target rate with strict CBR.
fn encoder_desc(e: &Encoding) -> String {
    let (gop, kbps) = (e.gop_frames, e.bitrate_kbps);
    match e.codec {
        Codec::H264 => {
            let profile = match e.profile {
                Profile::Baseline => "constrained-baseline",
                Profile::Main => "main",
                Profile::High => "high",
            };
            format!(
                "x264enc speed-preset=superfast tune=zerolatency key-int-max={gop} bitrate={kbps} \
                 option-string=scenecut=0:nal-hrd=cbr:filler ! video/x-h264,profile={profile} ! \
                 h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au"
            )
        }
        Codec::H265 => format!(
            "x265enc speed-preset=superfast tune=zerolatency key-int-max={gop} bitrate={kbps} \
             option-string=repeat-headers=1:scenecut=0:open-gop=0:vbv-maxrate={kbps}:\
             vbv-bufsize={kbps}:strict-cbr=1 ! video/x-h265,profile=main ! \
             h265parse config-interval=-1 ! video/x-h265,stream-format=byte-stream,alignment=au"
        ),
    }
}

fn raw_caps(e: &Encoding) -> String {
    format!(
        "video/x-raw,format=I420,width={},height={},framerate={}/1",
        e.width, e.height, e.fps
    )
}

/// Text overlays: a frame counter (time code HH:MM:SS:FF since the start) at the bottom and,
/// for live cameras, the wall clock at the top.
fn overlay_desc(height: u32, wall_clock: bool) -> String {
    let size = (height / 16).max(8);
    let counter = format!(
        "timecodestamper set=always ! timeoverlay time-mode=time-code valignment=bottom \
         halignment=right shaded-background=true font-desc=\"Sans {size}px\""
    );
    if wall_clock {
        format!(
            "{counter} ! clockoverlay valignment=top shaded-background=true time-format=\"%Y-%m-%d %H:%M:%S\" \
             font-desc=\"Sans {size}px\""
        )
    } else {
        counter
    }
}

const AAC_ENCODER: &str = "avenc_aac ! aacparse ! audio/mpeg,mpegversion=4,stream-format=raw";

/// Encodes the clip `loop` mode replays.
pub fn encode_clip(e: &Encoding) -> Result<Arc<Clip>, String> {
    let frames = e.fps * e.loop_secs;
    let video = format!(
        "videotestsrc num-buffers={frames} pattern=smpte horizontal-speed=4 ! {} ! {} ! {} ! \
         appsink name=sink sync=false",
        raw_caps(e),
        overlay_desc(e.height, false),
        encoder_desc(e)
    );
    let (mut video, _) = drain(&video)?;
    let skipped = skip_to_first_keyframe(&mut video, e.codec);
    if skipped > 0 {
        tracing::debug!(skipped, "left out what came before the first keyframe");
    }
    if video.len() != frames as usize || !video[0].keyframe {
        return Err(format!(
            "encoder gave {} frames starting with a keyframe, not {frames}",
            video.len()
        ));
    }
    let (audio, audio_caps) = if e.audio {
        let aus = u64::from(e.loop_secs) * AUDIO_RATE / AUDIO_SAMPLES_PER_AU;
        let desc = format!(
            "audiotestsrc num-buffers={aus} samplesperbuffer={AUDIO_SAMPLES_PER_AU} wave=sine \
             freq=440 volume=0.3 ! audio/x-raw,rate={AUDIO_RATE},channels=1 ! {AAC_ENCODER} ! \
             appsink name=sink sync=false"
        );
        let (audio, caps) = drain(&desc)?;
        (audio, caps)
    } else {
        (Vec::new(), None)
    };
    static ENCODED: AtomicU64 = AtomicU64::new(0);
    Ok(Arc::new(Clip {
        id: ENCODED.fetch_add(1, Ordering::Relaxed) + 1,
        video,
        audio,
        audio_caps,
    }))
}

/// Runs a finite pipeline that ends in `appsink name=sink` and collects every buffer.
fn drain(desc: &str) -> Result<(Vec<AccessUnit>, Option<gst::Caps>), String> {
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| format!("cannot build encoder ({desc}): {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "encoder is not a pipeline".to_owned())?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("encoder has no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start encoder ({desc}): {e}"))?;
    let mut out = Vec::new();
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        if caps.is_none() {
            caps = sample.caps_owned();
        }
        if let Some(buffer) = sample.buffer_owned() {
            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            out.push(AccessUnit { buffer, keyframe });
        }
    }
    let error = pipeline.bus().and_then(|bus| {
        bus.pop_filtered(&[gst::MessageType::Error])
            .map(|m| format!("{m:?}"))
    });
    let _ = pipeline.set_state(gst::State::Null);
    match error {
        Some(e) => Err(format!("encoder failed ({desc}): {e}")),
        None if out.is_empty() => Err(format!("encoder produced nothing ({desc})")),
        None => Ok((out, caps)),
    }
}

/// A running live encoder for one media: test pattern with burned-in clock, optional tone.
pub struct LiveEncoder {
    pipeline: gst::Pipeline,
    raw_caps: gst::Element,
    encoding: Encoding,
}

/// What the live encoder hands over, from its streaming threads.
pub enum LiveOutput {
    Video(AccessUnit),
    Audio(AccessUnit, gst::Caps),
}

impl LiveEncoder {
    /// Starts encoding; `sink` receives every access unit as it comes out of the encoders.
    pub fn start(
        e: &Encoding,
        sink: impl Fn(LiveOutput) + Send + Sync + 'static,
    ) -> Result<LiveEncoder, String> {
        let mut desc = format!(
            "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! \
             capsfilter name=rawcaps caps={} ! {} ! {} ! \
             appsink name=vsink sync=false max-buffers=30 drop=true",
            raw_caps(e),
            overlay_desc(e.height, true),
            encoder_desc(e)
        );
        if e.audio {
            desc.push_str(&format!(
                " audiotestsrc is-live=true samplesperbuffer={AUDIO_SAMPLES_PER_AU} wave=sine \
                 freq=440 volume=0.3 ! audio/x-raw,rate={AUDIO_RATE},channels=1 ! {AAC_ENCODER} ! \
                 appsink name=asink sync=false max-buffers=50 drop=true"
            ));
        }
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| format!("cannot build live encoder: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "live encoder is not a pipeline".to_owned())?;
        let raw_caps = pipeline.by_name("rawcaps").ok_or("no rawcaps")?;
        let sink = Arc::new(sink);
        let codec = e.codec;
        // As for clips, the video starts at its first random-access picture.
        let started = Arc::new(AtomicBool::new(false));
        for (name, audio) in [("vsink", false), ("asink", true)] {
            let Some(appsink) = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            else {
                continue;
            };
            let (sink, started) = (sink.clone(), started.clone());
            appsink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |appsink| {
                        let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let (Some(buffer), Some(caps)) =
                            (sample.buffer_owned(), sample.caps_owned())
                        else {
                            return Ok(gst::FlowSuccess::Ok);
                        };
                        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                        let au = AccessUnit { buffer, keyframe };
                        if !audio && !started.load(Ordering::Acquire) {
                            if !au.starts_stream(codec) {
                                return Ok(gst::FlowSuccess::Ok);
                            }
                            started.store(true, Ordering::Release);
                        }
                        sink(if audio {
                            LiveOutput::Audio(au, caps)
                        } else {
                            LiveOutput::Video(au)
                        });
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start live encoder: {e}"))?;
        Ok(LiveEncoder {
            pipeline,
            raw_caps,
            encoding: e.clone(),
        })
    }

    /// Changes the encoded resolution; the encoder starts a new GOP with a new SPS.
    pub fn set_resolution(&self, width: u32, height: u32) {
        let caps: gst::Caps = raw_caps(&self.encoding.at(width, height))
            .parse()
            .expect("raw caps we format always parse");
        self.raw_caps.set_property("caps", caps);
    }
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
