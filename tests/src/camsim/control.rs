//! The simulator's HTTP control API: list the cameras, inject faults, read what was sent.
//! Documented in `spec/camsim.md`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Inner;
use super::config::{Codec, Mode, ParameterSets, Profile, Transport};
use super::stream::{Fault, FrameRecord};

/// The most frames one `frames` request returns.
const MAX_FRAMES_PER_REQUEST: usize = 1_000_000;

pub fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/api/v1/cameras", get(list))
        .route(
            "/api/v1/cameras/{camera}/streams/{stream}/faults",
            post(fault),
        )
        .route(
            "/api/v1/cameras/{camera}/streams/{stream}/frames",
            get(frames),
        )
        .with_state(inner)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CameraList {
    pub cameras: Vec<CameraInfo>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CameraInfo {
    pub name: String,
    /// Whether the camera asks for Digest credentials (which are never listed).
    pub auth: bool,
    pub streams: Vec<StreamInfo>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub name: String,
    pub url: String,
    pub codec: Codec,
    /// The profile the stream is encoded with (the codec's default when not configured).
    pub profile: Profile,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub gop_frames: u32,
    pub bitrate_kbps: u32,
    pub audio: bool,
    pub mode: Mode,
    pub rtcp: bool,
    pub parameter_sets: ParameterSets,
    pub transports: Vec<Transport>,
    /// `loop` mode: the id of the encoded clip being replayed; streams with the same id share
    /// one clip. `None` in `live` mode.
    pub clip: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FrameList {
    pub frames: Vec<FrameRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FramesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// The one error shape: `{"error": {"code": "...", "message": "..."}}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

fn not_found(camera: &str, stream: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no stream {stream:?} on camera {camera:?}"),
    )
}

async fn list(State(inner): State<Arc<Inner>>) -> Json<CameraList> {
    let cameras = inner
        .cameras
        .iter()
        .map(|c| CameraInfo {
            name: c.name.clone(),
            auth: c.credentials.is_some(),
            streams: c
                .streams
                .iter()
                .filter_map(|s| inner.stream(&c.name, &s.name))
                .map(|s| {
                    let (width, height) = s.resolution();
                    StreamInfo {
                        name: s.config.name.clone(),
                        url: inner.url(&s),
                        codec: s.config.codec,
                        profile: s.config.profile(),
                        width,
                        height,
                        fps: s.config.fps,
                        gop_frames: s.config.gop_frames,
                        bitrate_kbps: s.config.bitrate_kbps,
                        audio: s.config.audio,
                        mode: s.config.mode,
                        rtcp: s.config.rtcp,
                        parameter_sets: s.config.parameter_sets,
                        transports: s.config.transports.clone(),
                        clip: s.clip().0.map(|c| c.id),
                    }
                })
                .collect(),
        })
        .collect();
    Json(CameraList { cameras })
}

async fn fault(
    State(inner): State<Arc<Inner>>,
    Path((camera, stream)): Path<(String, String)>,
    body: Result<Json<Fault>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(fault) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_argument", e.body_text()))?;
    let s = inner
        .stream(&camera, &stream)
        .ok_or_else(|| not_found(&camera, &stream))?;
    tracing::info!(camera = %camera, stream = %stream, ?fault, "injecting fault");
    if fault == Fault::Drop {
        let n = inner.rtsp.drop_clients(&s.path);
        tracing::info!(camera = %camera, stream = %stream, clients = n, "dropped connections");
        return Ok(StatusCode::NO_CONTENT);
    }
    // A resolution change in loop mode encodes a new clip: keep it off the async threads.
    tokio::task::spawn_blocking(move || s.apply(&fault))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_argument", e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn frames(
    State(inner): State<Arc<Inner>>,
    Path((camera, stream)): Path<(String, String)>,
    query: Result<Query<FramesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FrameList>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid_argument", e.body_text()))?;
    let s = inner
        .stream(&camera, &stream)
        .ok_or_else(|| not_found(&camera, &stream))?;
    let limit = q
        .limit
        .unwrap_or(MAX_FRAMES_PER_REQUEST)
        .min(MAX_FRAMES_PER_REQUEST);
    Ok(Json(FrameList {
        frames: s.frames(q.after, limit),
    }))
}
