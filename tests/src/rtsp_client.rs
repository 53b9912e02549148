//! A small RTSP player built on retina (a client we did not write), for tests and the load
//! benchmark: it plays every video and audio stream of a URL over interleaved TCP and reports
//! what arrives.

use std::ops::ControlFlow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport,
};
use retina::codec::{CodecItem, ParametersRef};

/// A video frame as the client received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFrame {
    /// The RTP timestamp on the wire.
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    pub size_bytes: usize,
    /// Set on the first frame and on every frame that brought new parameters (SPS).
    pub new_dimensions: Option<(u32, u32)>,
    /// RTP packets lost just before this frame.
    pub loss: u16,
}

/// What the player reports, in order of arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Video(VideoFrame),
    Audio {
        rtp_timestamp: u32,
        size_bytes: usize,
    },
    /// An RTCP sender report: the camera's NTP clock (32.32) against the local receive time.
    SenderReport {
        ntp: u64,
        received_unix_us: i64,
    },
}

/// Splits `rtsp://user:pass@host/...` into the URL without credentials and the credentials.
pub fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>), String> {
    let mut url = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: url.username().to_owned(),
        password: url.password().unwrap_or("").to_owned(),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// Plays `url` until `on_event` breaks (`Ok`) or the session fails (`Err`, with retina's
/// message). The end of the stream counts as a failure: a camera does not end on its own.
pub async fn play(
    url: &str,
    mut on_event: impl FnMut(Event) -> ControlFlow<()>,
) -> Result<(), String> {
    let (url, creds) = split_credentials(url)?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent("vms-tests".to_owned());
    let mut session = Session::describe(url, options)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let wanted: Vec<usize> = session
        .streams()
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.media(), "video" | "audio"))
        .map(|(i, _)| i)
        .collect();
    for &i in &wanted {
        session
            .setup(
                i,
                SetupOptions::default().transport(Transport::Tcp(TcpTransportOptions::default())),
            )
            .await
            .map_err(|e| format!("SETUP: {e}"))?;
    }
    let mut session = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| format!("demux: {e}"))?;
    let mut seen_first_video = false;
    while let Some(item) = session.next().await {
        let event = match item.map_err(|e| e.to_string())? {
            CodecItem::VideoFrame(f) => {
                let new_params = f.has_new_parameters() || !seen_first_video;
                seen_first_video = true;
                let new_dimensions = if new_params {
                    match session.streams()[f.stream_id()].parameters() {
                        Some(ParametersRef::Video(v)) => Some(v.pixel_dimensions()),
                        _ => None,
                    }
                } else {
                    None
                };
                Event::Video(VideoFrame {
                    rtp_timestamp: f.timestamp().timestamp() as u32,
                    keyframe: f.is_random_access_point(),
                    size_bytes: f.data().len(),
                    new_dimensions,
                    loss: f.loss(),
                })
            }
            CodecItem::AudioFrame(f) => Event::Audio {
                rtp_timestamp: f.timestamp().timestamp() as u32,
                size_bytes: f.data().len(),
            },
            CodecItem::Rtcp(rtcp) => {
                let Some(sr) = rtcp
                    .pkts()
                    .find_map(|p| p.as_sender_report().ok().flatten())
                else {
                    continue;
                };
                Event::SenderReport {
                    ntp: sr.ntp_timestamp().0,
                    received_unix_us: unix_now_us(),
                }
            }
            _ => continue,
        };
        if on_event(event).is_break() {
            return Ok(());
        }
    }
    Err("stream ended".to_owned())
}

/// A [`play`] running in its own task, handing its events over a channel, so that a test can
/// act (inject a fault, say) between frames.
pub struct Player {
    rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Event)>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Player {
    pub fn start(url: &str) -> Player {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            play(&url, |event| match tx.send((Instant::now(), event)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            })
            .await
        });
        Player { rx, task }
    }

    /// The next event with its arrival time; `None` once the session ended or nothing came
    /// for `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Instant, Event)> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next video frame, skipping other events; `None` as for [`Player::next`].
    pub async fn next_video(&mut self, timeout: Duration) -> Option<(Instant, VideoFrame)> {
        loop {
            match self.next(timeout).await? {
                (at, Event::Video(f)) => return Some((at, f)),
                _ => continue,
            }
        }
    }

    /// Stops playing (if still playing) and returns how the session ended.
    pub async fn finish(mut self) -> Result<(), String> {
        self.rx.close();
        while self.rx.recv().await.is_some() {}
        // A session that still plays ends at its next event; one that stalls is cut off.
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(joined) => joined.map_err(|e| e.to_string())?,
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }
}

fn unix_now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off() {
        let (url, creds) = split_credentials("rtsp://admin:s3cret@127.0.0.1:554/a/main").unwrap();
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:554/a/main");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "s3cret")
        );
        assert!(split_credentials("rtsp://127.0.0.1/x").unwrap().1.is_none());
    }
}
