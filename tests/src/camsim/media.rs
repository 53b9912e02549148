//! The simulator's kinds of gst-rtsp-server factory and media: a factory that never hands a
//! new client a media that is shutting down, and a media whose SDP its stream may edit (where
//! the parameter sets travel).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

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
