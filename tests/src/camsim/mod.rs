//! The camera simulator: many RTSP cameras on one port, built on gst-rtsp-server, with faults
//! injected at run time and a record of every frame sent (see `spec/camsim.md`).
//!
//! `loop` streams replay a clip encoded once at start-up, paced by one thread; `live` streams
//! encode a test pattern with the wall clock burned in. Both feed an `appsrc` per media, so
//! every fault works the same way in both modes.

pub mod config;
pub mod control;
mod encode;
mod media;
mod nal;
pub mod remote;
pub mod rtp;
mod schedule;
mod server;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use gstreamer as gst;

use config::{Camera, Config, Mode};
use stream::Stream;

/// What the control API and the RTSP callbacks share.
pub struct Inner {
    rtsp: server::RtspServer,
    /// Where clients reach the RTSP server: the configured address with the bound port.
    rtsp_addr: SocketAddr,
    cameras: Vec<Camera>,
    streams: BTreeMap<(String, String), Arc<Stream>>,
}

impl Inner {
    /// A stream's URL, without credentials.
    fn url(&self, stream: &Stream) -> String {
        format!("rtsp://{}{}", self.rtsp_addr, stream.path)
    }

    fn stream(&self, camera: &str, stream: &str) -> Option<Arc<Stream>> {
        self.streams
            .get(&(camera.to_owned(), stream.to_owned()))
            .cloned()
    }
}

/// A running simulator. Dropping it stops the RTSP server; the control API stops with the
/// future given to [`Simulator::serve_control`].
pub struct Simulator {
    inner: Arc<Inner>,
}

impl Simulator {
    /// Encodes the clips and starts the RTSP server. Blocking: call it off async threads.
    pub fn start(config: &Config) -> Result<Simulator, String> {
        gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
        let cameras = config.expand()?;
        let scheduler = schedule::Scheduler::start();
        // Streams with the same encoding share one clip, whatever else tells them apart.
        let mut clips = HashMap::new();
        let mut streams = Vec::new();
        for camera in &cameras {
            for s in &camera.streams {
                let clip = match s.mode {
                    Mode::Loop => {
                        let encoding = encode::Encoding::of(s);
                        let clip = match clips.get(&encoding) {
                            Some(c) => Arc::clone(c),
                            None => {
                                tracing::info!(?encoding, "encoding clip");
                                let c = encode::encode_clip(&encoding)?;
                                clips.insert(encoding, c.clone());
                                c
                            }
                        };
                        Some(clip)
                    }
                    Mode::Live => None,
                };
                streams.push(Arc::new(Stream::new(
                    &camera.name,
                    s.clone(),
                    clip,
                    config.record_capacity,
                )));
            }
        }
        let rtsp = server::RtspServer::start(config.rtsp_listen, &cameras, &streams, &scheduler)?;
        let streams = streams
            .into_iter()
            .map(|s| ((s.camera.clone(), s.config.name.clone()), s))
            .collect();
        let rtsp_addr = SocketAddr::new(config.rtsp_listen.ip(), rtsp.port());
        Ok(Simulator {
            inner: Arc::new(Inner {
                rtsp_addr,
                rtsp,
                cameras,
                streams,
            }),
        })
    }

    /// Where clients reach the RTSP server.
    pub fn rtsp_addr(&self) -> SocketAddr {
        self.inner.rtsp_addr
    }

    /// The URL of every stream, without credentials.
    pub fn stream_urls(&self) -> Vec<String> {
        self.inner
            .streams
            .values()
            .map(|s| self.inner.url(s))
            .collect()
    }

    /// Serves the control API on `listener` until `shutdown` completes.
    pub async fn serve_control(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, control::router(self.inner.clone()))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The line `vms-camsim` prints on standard output once it serves: its two addresses.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct Ready {
    pub rtsp: SocketAddr,
    pub control: SocketAddr,
}
