//! One supervised task per camera stream: `run` loops over `run_once` (connect, record until
//! the session fails) with jittered exponential backoff capped at 30 s. A camera failure is
//! expected: it is logged, recorded as a gap with its reason, and never touches another stream.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tracing::Instrument;
use vms_core::gap::EndReason;

use crate::ingest::{Event, Ingest, Source};
use crate::recording::Recording;

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

/// Connection state and rates of a stream, for its status and metrics.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub connected: bool,
    pub reconnects: u64,
    /// The last failure, with credentials already absent (they are never in URLs or errors).
    pub last_error: Option<String>,
    pub fps: f64,
    pub bitrate_kbps: f64,
    window: Option<(Instant, u64, u64)>,
}

impl Connection {
    /// Counts a frame into the rate window; rates are refreshed every 5 s.
    fn count(&mut self, now: Instant, bytes: usize) {
        let (start, frames, total) = self.window.get_or_insert((now, 0, 0));
        *frames += 1;
        *total += bytes as u64;
        let secs = now.duration_since(*start).as_secs_f64();
        if secs >= 5.0 {
            self.fps = *frames as f64 / secs;
            self.bitrate_kbps = *total as f64 * 8.0 / 1000.0 / secs;
            self.window = Some((now, 0, 0));
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a stream until `stop` turns true.
pub async fn run(
    mut rec: Recording,
    source: Source,
    stall_timeout: Duration,
    conn: Arc<Mutex<Connection>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let (reason, message) = run_once(&mut rec, &source, stall_timeout, &conn, &mut stop).await;
        if let Err(e) = rec.end(reason).await {
            tracing::error!(err = %e, "closing the segment failed");
        }
        {
            let mut c = lock(&conn);
            c.connected = false;
            c.fps = 0.0;
            c.bitrate_kbps = 0.0;
            c.window = None;
            if reason != EndReason::RecorderStopped {
                c.reconnects += 1;
                c.last_error = Some(message.clone());
            }
        }
        if *stop.borrow() {
            break;
        }
        tracing::warn!(%reason, err = %message, "stream down; will reconnect");
        // A disk error is cured by retention making room (it has been woken), not by
        // waiting on the camera.
        if started.elapsed() >= HEALTHY_SESSION || reason == EndReason::DiskError {
            backoff = Duration::from_secs(1);
        }
        let delay = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let p = rec.progress();
    tracing::info!(
        frames_total = p.frames_total,
        frames_skipped = p.frames_skipped,
        "stream stopped"
    );
}

async fn run_once(
    rec: &mut Recording,
    source: &Source,
    stall_timeout: Duration,
    conn: &Mutex<Connection>,
    stop: &mut watch::Receiver<bool>,
) -> (EndReason, String) {
    let stopped = (EndReason::RecorderStopped, "stopped".to_owned());
    let mut ingest = tokio::select! {
        r = Ingest::connect(source) => match r {
            Ok(i) => i,
            Err(e) => return (e.reason, e.message),
        },
        _ = stop.changed() => return stopped,
    };
    rec.set_audio(ingest.audio().cloned());
    lock(conn).connected = true;
    tracing::info!("playing");
    // A stall is a lack of video: audio or RTCP alone do not keep a stream alive. The timer is
    // armed once and, when it fires, re-armed to the last frame's deadline: a frame only
    // stores a time, and no timer is touched per frame.
    let mut last_video = tokio::time::Instant::now();
    let stall = tokio::time::sleep_until(last_video + stall_timeout);
    tokio::pin!(stall);
    loop {
        let event = tokio::select! {
            r = ingest.next() => match r {
                Err(e) => return (e.reason, e.message),
                Ok(None) => return (EndReason::Disconnect, "the camera ended the stream".into()),
                Ok(Some(event)) => event,
            },
            () = &mut stall => {
                let deadline = last_video + stall_timeout;
                if deadline <= tokio::time::Instant::now() {
                    return (EndReason::Stall, format!("no video for {stall_timeout:?}"));
                }
                stall.as_mut().reset(deadline);
                continue;
            }
            _ = stop.changed() => return stopped,
        };
        match event {
            Event::Video {
                timestamp,
                keyframe,
                data,
                params,
            } => {
                last_video = tokio::time::Instant::now();
                lock(conn).count(Instant::now(), data.len());
                if let Err(e) = rec.video(timestamp, keyframe, data, params).await {
                    // What the camera sent can be unusable; anything else is the disk's.
                    let reason = if e.kind() == vms_core::ErrorKind::InvalidArgument {
                        EndReason::CameraError
                    } else {
                        EndReason::DiskError
                    };
                    tracing::error!(err = %e, %reason, "recording failed");
                    return (reason, e.to_string());
                }
            }
            Event::Audio {
                timestamp,
                duration,
                data,
            } => rec.audio_frame(timestamp, duration, data),
            Event::SenderReport { camera_unix_us } => rec.camera_clock(camera_unix_us),
        }
    }
}

/// Spawns the supervised task of one stream on `runtime`, inside a span that names it.
pub fn spawn(
    runtime: &tokio::runtime::Handle,
    rec: Recording,
    source: Source,
    stall_timeout: Duration,
    conn: Arc<Mutex<Connection>>,
    stop: watch::Receiver<bool>,
    span: tracing::Span,
) -> tokio::task::JoinHandle<()> {
    runtime.spawn(run(rec, source, stall_timeout, conn, stop).instrument(span))
}
