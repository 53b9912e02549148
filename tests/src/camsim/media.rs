//! The simulator's kinds of gst-rtsp-server factory and media: a factory that never hands a
//! new client a media that is shutting down, and a media whose SDP its stream may edit (where
//! the parameter sets travel).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak, mpsc};
use std::time::{Duration, Instant};

use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use gstreamer_rtsp as gst_rtsp;
use gstreamer_rtsp_server as gst_rtsp_server;
use gstreamer_rtsp_server::prelude::*;
use gstreamer_rtsp_server::subclass::prelude::*;

use super::stream::Stream;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long [`hold_briefly`] keeps a media prepared: far longer than a client takes from
/// finding a media to preparing it.
const HOLD: Duration = Duration::from_secs(1);

/// Keeps a prepared media prepared for [`HOLD`], so that the client about to be handed it
/// can prepare it too, even if its last other client leaves meanwhile (gst-rtsp-server
/// finds a shared media and prepares it in two steps, and a media unprepared in between
/// answers 503). False if the media is no longer prepared.
pub fn hold_briefly(media: &gst_rtsp_server::RTSPMedia) -> bool {
    // A prepared media only counts the call; it stops the thread it is given at once.
    let Some(thread) = gst_rtsp_server::RTSPThread::new(gst_rtsp_server::RTSPThreadType::Media)
    else {
        return false;
    };
    if media.prepare(Some(thread)).is_err() {
        return false;
    }
    static RELEASES: OnceLock<Mutex<mpsc::Sender<(Instant, gst_rtsp_server::RTSPMedia)>>> =
        OnceLock::new();
    let releases = RELEASES.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Instant, gst_rtsp_server::RTSPMedia)>();
        // Every hold lasts as long, so they end in the order they began.
        let spawned = std::thread::Builder::new()
            .name("camsim-holds".into())
            .spawn(move || {
                for (until, media) in rx {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    let _ = media.unprepare();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(err = %e, "cannot start the thread that ends media holds");
        }
        Mutex::new(tx)
    });
    if lock(releases)
        .send((Instant::now() + HOLD, media.clone()))
        .is_err()
    {
        let _ = media.unprepare();
    }
    true
}

mod imp {
    use super::*;

    /// The stream a factory serves.
    #[derive(Default)]
    pub struct Factory {
        pub stream: Mutex<Weak<Stream>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Factory {
        const NAME: &'static str = "VmsCamsimFactory";
        type Type = super::Factory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for Factory {}

    impl RTSPMediaFactoryImpl for Factory {
        /// The key of the shared media: gst-rtsp-server hands every client the cached media
        /// of the same key, even one that is still shutting down (and then answers 503).
        fn gen_key(&self, url: &gst_rtsp::RTSPUrl) -> Option<glib::GString> {
            match lock(&self.stream).upgrade() {
                Some(stream) => Some(stream.media_key().into()),
                None => self.parent_gen_key(url),
            }
        }
    }

    /// The stream a media belongs to, set when the factory configures the media.
    #[derive(Default)]
    pub struct Media {
        pub stream: Mutex<Weak<Stream>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Media {
        const NAME: &'static str = "VmsCamsimMedia";
        type Type = super::Media;
        type ParentType = gst_rtsp_server::RTSPMedia;
    }

    impl ObjectImpl for Media {}

    impl RTSPMediaImpl for Media {
        fn setup_sdp(
            &self,
            sdp: &mut gst_rtsp_server::gst_sdp::SDPMessageRef,
            info: &gst_rtsp_server::subclass::SDPInfo,
        ) -> Result<(), gstreamer::LoggableError> {
            self.parent_setup_sdp(sdp, info)?;
            if let Some(stream) = lock(&self.stream).upgrade() {
                stream.edit_sdp(sdp);
            }
            Ok(())
        }
    }
}

glib::wrapper! {
    /// The media factory of one simulated stream.
    pub struct Factory(ObjectSubclass<imp::Factory>) @extends gst_rtsp_server::RTSPMediaFactory;
}

impl Factory {
    /// A factory whose medias are camsim [`Media`], for `stream`.
    pub fn new(stream: &Arc<Stream>) -> Factory {
        let factory: Factory = glib::Object::new();
        *lock(&factory.imp().stream) = Arc::downgrade(stream);
        factory.set_media_gtype(Media::static_type());
        factory
    }
}

glib::wrapper! {
    /// A media of one simulated stream.
    pub struct Media(ObjectSubclass<imp::Media>) @extends gst_rtsp_server::RTSPMedia;
}

impl Media {
    /// Ties a media the factory just made to its stream.
    pub fn attach(media: &gst_rtsp_server::RTSPMedia, stream: &Arc<Stream>) {
        match media.downcast_ref::<Media>() {
            Some(m) => *lock(&m.imp().stream) = Arc::downgrade(stream),
            None => tracing::error!(stream = %stream.path, "media is not a camsim media"),
        }
    }
}
