//! Pulling one RTSP stream with retina, the only module that touches it. It turns a session
//! into plain frames with their codec parameters (as MP4 sample entries), and classifies every
//! failure as a gap reason. Credentials never reach a log or an error message.

use std::sync::Arc;

use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, ParametersRef};
use vms_core::gap::EndReason;

/// How to reach a stream. The URL holds no credentials.
#[derive(Clone)]
pub struct Source {
    pub url: url::Url,
    pub username: Option<String>,
    pub password: Option<String>,
    pub udp: bool,
}

/// Codec parameters of a video stream, ready for an MP4 init section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// The complete `avc1`/`hvc1` sample entry box.
    pub sample_entry: Vec<u8>,
    /// RFC 6381 codec string.
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// Codec parameters of an audio stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    pub sample_entry: Vec<u8>,
    pub codec: String,
    pub sample_rate: u32,
}

/// What a session yields.
pub enum Event {
    Video {
        /// RTP timestamp, extended to 64 bits (90 kHz).
        timestamp: i64,
        keyframe: bool,
        /// AVC/HEVC length-prefixed NAL units: what an MP4 sample holds.
        data: Vec<u8>,
        /// Set when this frame brings new parameters (first frame or SPS change).
        params: Option<Arc<VideoParams>>,
    },
    Audio {
        /// Extended RTP timestamp in the track's clock rate.
        timestamp: i64,
        /// Samples in this frame.
        duration: u32,
        data: Vec<u8>,
    },
    /// An RTCP sender report: the camera's wall clock (µs since the epoch) at that moment.
    SenderReport { camera_unix_us: i64 },
}

/// A failure of the camera or the connection, with the gap reason it causes.
#[derive(Debug)]
pub struct IngestError {
    pub reason: EndReason,
    pub message: String,
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

fn classify(stage: &str, e: &retina::Error) -> IngestError {
    let message = format!("{stage}: {e}");
    let lower = message.to_ascii_lowercase();
    let connection = [
        "unable to connect",
        "connection",
        "eof",
        "read error",
        "write error",
        "timed out",
        "broken pipe",
        "reset",
    ];
    let reason = if e.status_code().is_none() && connection.iter().any(|w| lower.contains(w)) {
        EndReason::Disconnect
    } else {
        EndReason::CameraError
    };
    IngestError { reason, message }
}

/// A playing session.
pub struct Ingest {
    session: Demuxed,
    video_stream: usize,
    audio_stream: Option<usize>,
    audio: Option<AudioParams>,
    sent_first_params: bool,
}

impl Ingest {
    /// DESCRIBE, SETUP (video, and AAC audio if offered) and PLAY.
    pub async fn connect(source: &Source) -> Result<Ingest, IngestError> {
        let creds = source.username.clone().map(|username| Credentials {
            username,
            password: source.password.clone().unwrap_or_default(),
        });
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("vms-recorder/{}", env!("CARGO_PKG_VERSION")));
        let mut session = Session::describe(source.url.clone(), options)
            .await
            .map_err(|e| classify("DESCRIBE", &e))?;
        let streams = session.streams();
        let video_stream = streams
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
            .ok_or_else(|| IngestError {
                reason: EndReason::CameraError,
                message: "no H.264 or H.265 video stream offered".into(),
            })?;
        let audio_stream = streams
            .iter()
            .position(|s| s.media() == "audio" && s.encoding_name() == "mpeg4-generic");
        let transport = || {
            if source.udp {
                Transport::Udp(UdpTransportOptions::default())
            } else {
                Transport::Tcp(TcpTransportOptions::default())
            }
        };
        for i in std::iter::once(video_stream).chain(audio_stream) {
            session
                .setup(i, SetupOptions::default().transport(transport()))
                .await
                .map_err(|e| classify("SETUP", &e))?;
        }
        let audio = audio_stream.and_then(|i| match session.streams()[i].parameters() {
            Some(ParametersRef::Audio(a)) => Some(AudioParams {
                sample_entry: a.mp4_sample_entry().build().ok()?,
                codec: a.rfc6381_codec()?.to_owned(),
                sample_rate: a.clock_rate(),
            }),
            _ => None,
        });
        let audio_stream = audio.as_ref().and(audio_stream);
        let session = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| classify("PLAY", &e))?
            .demuxed()
            .map_err(|e| classify("demux", &e))?;
        Ok(Ingest {
            session,
            video_stream,
            audio_stream,
            audio,
            sent_first_params: false,
        })
    }

    /// The audio track's parameters, when the camera sends AAC.
    pub fn audio(&self) -> Option<&AudioParams> {
        self.audio.as_ref()
    }

    fn video_params(&self) -> Result<Arc<VideoParams>, IngestError> {
        let bad = |m: String| IngestError {
            reason: EndReason::CameraError,
            message: m,
        };
        match self.session.streams()[self.video_stream].parameters() {
            Some(ParametersRef::Video(v)) => {
                let sample_entry = v
                    .mp4_sample_entry()
                    .build()
                    .map_err(|e| bad(format!("bad video parameters: {e}")))?;
                let (width, height) = v.pixel_dimensions();
                Ok(Arc::new(VideoParams {
                    sample_entry,
                    codec: v.rfc6381_codec().to_owned(),
                    width,
                    height,
                }))
            }
            _ => Err(bad("video frame before its parameters".into())),
        }
    }

    /// The next event; `Ok(None)` when the camera ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, IngestError> {
        loop {
            let Some(item) = self.session.next().await else {
                return Ok(None);
            };
            match item.map_err(|e| classify("stream", &e))? {
                CodecItem::VideoFrame(f) if f.stream_id() == self.video_stream => {
                    let params = if f.has_new_parameters() || !self.sent_first_params {
                        self.sent_first_params = true;
                        Some(self.video_params()?)
                    } else {
                        None
                    };
                    return Ok(Some(Event::Video {
                        timestamp: f.timestamp().timestamp(),
                        keyframe: f.is_random_access_point(),
                        params,
                        data: f.into_data(),
                    }));
                }
                CodecItem::AudioFrame(f) if Some(f.stream_id()) == self.audio_stream => {
                    return Ok(Some(Event::Audio {
                        timestamp: f.timestamp().timestamp(),
                        duration: f.frame_length().get(),
                        data: f.data().to_vec(),
                    }));
                }
                CodecItem::Rtcp(rtcp) if rtcp.stream_id() == self.video_stream => {
                    let sr = rtcp
                        .pkts()
                        .find_map(|p| p.as_sender_report().ok().flatten());
                    if let Some(sr) = sr {
                        return Ok(Some(Event::SenderReport {
                            camera_unix_us: vms_core::time::ntp_to_unix_us(sr.ntp_timestamp().0),
                        }));
                    }
                }
                _ => {}
            }
        }
    }
}

/// The URL as it may appear in logs: without user information.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}
