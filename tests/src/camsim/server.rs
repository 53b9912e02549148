//! The RTSP side of the simulator: one gst-rtsp-server on one port, a mount per camera
//! stream, Digest authentication per camera, and dropping the connections of a stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp as gst_rtsp;
use gstreamer_rtsp_server as gst_rtsp_server;
use gstreamer_rtsp_server::prelude::*;

use super::config::{Camera, Transport};
use super::media::Factory;
use super::schedule::Scheduler;
use super::stream::Stream;

const ANONYMOUS_ROLE: &str = "anonymous";

fn user_role(user: &str) -> String {
    format!("user-{user}")
}

/// The running RTSP server; it stops when dropped.
pub struct RtspServer {
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<thread::JoinHandle<()>>,
    port: u16,
}

impl RtspServer {
    /// Serves every stream of `cameras` (in the same order as `streams`) on `listen`.
    pub fn start(
        listen: SocketAddr,
        cameras: &[Camera],
        streams: &[Arc<Stream>],
        scheduler: &Scheduler,
    ) -> Result<RtspServer, String> {
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(&listen.ip().to_string());
        server.set_service(&listen.port().to_string());
        let mounts = server.mount_points().ok_or("server has no mount points")?;

        let users: Vec<&(String, String)> = cameras
            .iter()
            .filter_map(|c| c.credentials.as_ref())
            .collect();
        if !users.is_empty() {
            let auth = gst_rtsp_server::RTSPAuth::new();
            auth.set_supported_methods(gst_rtsp::RTSPAuthMethod::Digest);
            auth.set_realm(Some("vms-camsim"));
            let mut anonymous = role_token(ANONYMOUS_ROLE);
            auth.set_default_token(Some(&mut anonymous));
            for (user, password) in &users {
                auth.add_digest(user, password, &role_token(&user_role(user)));
            }
            server.set_auth(Some(&auth));
        }
        let every_role: Vec<String> = std::iter::once(ANONYMOUS_ROLE.to_owned())
            .chain(users.iter().map(|(u, _)| user_role(u)))
            .collect();

        let mut streams = streams.iter();
        for camera in cameras {
            // gst-rtsp-server answers a failed access check with 404 and a failed construct
            // check with 401 and a challenge. So every role may see every stream, and only the
            // camera's own user (or anyone, on an open camera) may play it.
            let players = match &camera.credentials {
                Some((user, _)) => vec![user_role(user)],
                None => every_role.clone(),
            };
            for _ in &camera.streams {
                let stream = streams.next().ok_or("fewer streams than cameras declare")?;
                let factory = Factory::new(stream);
                factory.set_launch(&stream.launch());
                factory.set_shared(true);
                factory.set_protocols(lower_transports(&stream.config.transports));
                if !users.is_empty() {
                    for role in &every_role {
                        factory.add_role_from_structure(
                            &gst::Structure::builder(role.as_str())
                                .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                                .field(
                                    gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
                                    players.contains(role),
                                )
                                .build(),
                        );
                    }
                }
                mounts.add_factory(&stream.path, factory.clone());
                let (stream, scheduler) = (stream.clone(), scheduler.clone());
                factory.connect_media_configure(move |_, media| {
                    stream.configure_media(media, &scheduler);
                });
            }
        }

        let context = glib::MainContext::new();
        server
            .attach(Some(&context))
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let port =
            u16::try_from(server.bound_port()).map_err(|_| format!("cannot listen on {listen}"))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let runner = main_loop.clone();
        let thread = thread::Builder::new()
            .name("camsim-rtsp".into())
            .spawn(move || runner.run())
            .map_err(|e| format!("cannot start RTSP thread: {e}"))?;
        Ok(RtspServer {
            server,
            main_loop,
            thread: Some(thread),
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection that plays the stream at `path`; returns how many.
    pub fn drop_clients(&self, path: &str) -> usize {
        let clients = self.server.client_filter(Some(&mut |_, client| {
            let mut plays = false;
            client.session_filter(Some(&mut |_, session| {
                session.filter(Some(&mut |_, media| {
                    plays |= media.matches(path) == Some(path.len() as i32);
                    gst_rtsp_server::RTSPFilterResult::Keep
                }));
                gst_rtsp_server::RTSPFilterResult::Keep
            }));
            if plays {
                gst_rtsp_server::RTSPFilterResult::Ref
            } else {
                gst_rtsp_server::RTSPFilterResult::Keep
            }
        }));
        for client in &clients {
            client.close();
        }
        clients.len()
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What gst-rtsp-server accepts in SETUP for a list of transports; it refuses any other lower
/// transport with `461 Unsupported Transport`.
fn lower_transports(transports: &[Transport]) -> gst_rtsp::RTSPLowerTrans {
    transports
        .iter()
        .fold(gst_rtsp::RTSPLowerTrans::empty(), |all, t| {
            all | match t {
                Transport::Tcp => gst_rtsp::RTSPLowerTrans::TCP,
                Transport::Udp => {
                    gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::UDP_MCAST
                }
            }
        })
}

fn role_token(role: &str) -> gst_rtsp_server::RTSPToken {
    gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
        .build()
}
