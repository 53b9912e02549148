//! The recorder's HTTP API under `/api/v1` (spec/recorder-api.md) and `/metrics`. Every
//! endpoint but health needs credentials, which make a principal that each route checks
//! (`auth`); error kinds map to HTTP status here, once.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, HoldId, StorageRootId};
use vms_core::time::Time90k;
use vms_core::token::Purpose;
use vms_core::wire;
use vms_core::{Error, err};

use crate::archive::index::SegmentRow;
use crate::archive::retention::Finding;
use crate::archive::segment::{FrameTable, TableFrame};
use crate::audit::Action;
use crate::auth::{ChannelPeer, Footage, Principal, Span};
use crate::cameras::{Camera, CameraSpec, StreamSpec, Transport};
use crate::config::{CameraConfig, StreamConfig};
use crate::holds::Hold;
use crate::media::export::{AudioSource, Source};
use crate::recording::Progress;
use crate::service::{Service, hole_reason, leaves_gap};
use crate::supervisor::Connection;

/// The largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error on its way to the client, with a status when its kind alone does not say it.
pub struct ApiError(Error, Option<StatusCode>);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e, None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        let status = self.1.unwrap_or_else(|| {
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        // A 5xx says nothing of its cause to the client; the log has it.
        if status.is_server_error() {
            tracing::error!(err = %self.0, "request failed");
        }
        let body = wire::ErrorBody::of(&self.0, status.as_u16(), "the recorder's log");
        let mut r = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A body axum refused: 413 for one over the size limit, 400 for anything else.
fn bad_json(e: JsonRejection) -> ApiError {
    let status = (e.status() == StatusCode::PAYLOAD_TOO_LARGE).then_some(e.status());
    ApiError(err!(InvalidArgument, "{}", e.body_text()), status)
}

pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(err!(InvalidArgument, "{}", e.body_text()), None)
}

/// A token passed as the `token` query parameter, for players that cannot send headers.
/// Requests are logged by route template only, so it never reaches a log.
fn query_token(req: &Request) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Makes the request's principal from its bearer or query token, or from central's channel,
/// and hands it on as an extension; `401` when there is none.
async fn authenticate(State(s): State<Arc<Service>>, mut req: Request, next: Next) -> Response {
    let query = query_token(&req);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or(query.as_deref());
    let channel = req.extensions().get::<ChannelPeer>().is_some();
    match s.principal(token, channel) {
        Ok(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Lets only the local administrator and central through.
async fn admin_only(Extension(who): Extension<Principal>, req: Request, next: Next) -> Response {
    match crate::auth::require_admin(&who) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub fn router(service: Arc<Service>) -> Router {
    let admin = Router::new()
        .route("/api/v1/cameras", get(list_cameras).post(add_camera))
        .route(
            "/api/v1/cameras/{id}",
            get(get_camera).put(update_camera).delete(remove_camera),
        )
        .route(
            "/api/v1/cameras/{id}/conformance",
            get(conformance).post(check_conformance),
        )
        .route("/api/v1/holds", get(list_holds))
        .route("/api/v1/evidence/key", get(evidence_key))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/recordings/query", post(query_recordings))
        .route("/api/v1/channel/events", get(crate::link::events))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(admin_only));
    // Each of these authorises its own request with `auth::authorize`.
    let footage = Router::new()
        .route("/api/v1/cameras/{id}/recordings", get(recordings))
        .route("/api/v1/cameras/{id}/holds", post(place_hold))
        .route("/api/v1/cameras/{id}/playback.m3u8", get(playback))
        .route("/api/v1/cameras/{id}/segments/{file}", get(segment_file))
        .route("/api/v1/cameras/{id}/export.mp4", get(export_mp4))
        .route("/api/v1/cameras/{id}/transcoded.mp4", get(transcoded))
        .route("/api/v1/cameras/{id}/snapshot.jpg", get(snapshot))
        .route("/api/v1/cameras/{id}/evidence", post(evidence))
        .route("/api/v1/holds/{id}", delete(release_hold));
    let protected = admin
        .merge(footage)
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            authenticate,
        ));
    Router::new()
        .route("/api/v1/health", get(health))
        .merge(protected)
        .fallback(|| async { ApiError::from(err!(NotFound, "no such endpoint")) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let path = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", |p| p.as_str());
                tracing::info_span!("http", method = %req.method(), path)
            }),
        )
        .with_state(service)
}

async fn health(State(s): State<Arc<Service>>) -> Json<wire::Health> {
    Json(wire::Health {
        status: "ok".into(),
        recorder: s.id.to_string(),
        spec_version: wire::SPEC_VERSION.into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The `{id}` of a path, as text. A segment axum cannot decode (bad percent-encoding,
/// invalid UTF-8) names nothing: it gets the same JSON 404 as an unknown id.
struct IdSegment(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdSegment {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdSegment(id))
            .map_err(|_| err!(NotFound, "no such resource").into())
    }
}

fn camera_id(raw: &str) -> ApiResult<CameraId> {
    // A malformed id cannot name a camera: same answer as an unknown one.
    raw.parse()
        .map_err(|_| ApiError::from(err!(NotFound, "no camera {raw:?}")))
}

fn spec_from_request(r: wire::CameraRequest) -> Result<CameraSpec, Error> {
    // The same validation as the configuration file.
    CameraConfig {
        name: r.name,
        region: r.region,
        class: r.class,
        code: r.code,
        location: r.location,
        streams: r
            .streams
            .into_iter()
            .map(|s| StreamConfig {
                name: s.name,
                url: s.url,
                username: s.username,
                password: s.password,
                transport: s.transport,
            })
            .collect(),
    }
    .to_spec()
}

fn status(progress: &Progress, conn: &Connection, now: Instant) -> wire::StreamStatus {
    wire::StreamStatus {
        connected: conn.connected,
        fps: (conn.fps * 10.0).round() / 10.0,
        bitrate_kbps: conn.bitrate_kbps.round(),
        last_frame_age_ms: progress
            .last_frame
            .map(|t| now.duration_since(t).as_millis() as u64),
        reconnects: conn.reconnects,
        current_gap: progress.gap_since.map(|(start, reason)| wire::OpenGap {
            start: start.to_rfc3339(),
            reason: reason.to_string(),
        }),
        last_error: conn.last_error.clone(),
    }
}

fn camera_response(c: &Camera, streams: &[(String, Progress, Connection)]) -> wire::CameraResponse {
    let now = Instant::now();
    wire::CameraResponse {
        id: c.id.to_string(),
        location: c.spec.location,
        name: c.spec.name.clone(),
        region: c.spec.region.to_string(),
        class: c.spec.class.to_string(),
        code: c.spec.code.map(|n| n.to_string()),
        streams: c
            .spec
            .streams
            .iter()
            .map(|s: &StreamSpec| {
                let live = streams.iter().find(|(n, _, _)| *n == s.name);
                wire::StreamResponse {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    username: s.username.clone(),
                    has_password: s.password.is_some(),
                    transport: match s.transport {
                        Transport::Tcp => "tcp".into(),
                        Transport::Udp => "udp".into(),
                    },
                    status: live.map_or_else(
                        || status(&Progress::default(), &Connection::default(), now),
                        |(_, p, c)| status(p, c, now),
                    ),
                }
            })
            .collect(),
    }
}

async fn list_cameras(State(s): State<Arc<Service>>) -> Json<wire::CameraList> {
    let cameras = s
        .cameras()
        .await
        .iter()
        .map(|(c, st)| camera_response(c, st))
        .collect();
    Json(wire::CameraList { cameras })
}

async fn get_camera(
    State(s): State<Arc<Service>>,
    IdSegment(id): IdSegment,
) -> ApiResult<Json<wire::CameraResponse>> {
    let (c, st) = known_camera(&s, &id).await?;
    Ok(Json(camera_response(&c, &st)))
}

/// The camera a path names, with its streams' state; an unknown or malformed id is not found.
async fn known_camera(
    s: &Service,
    id: &str,
) -> ApiResult<(crate::cameras::Camera, Vec<(String, Progress, Connection)>)> {
    let id = camera_id(id)?;
    Ok(s.camera(id)
        .await
        .ok_or_else(|| err!(NotFound, "no camera {id}"))?)
}

async fn add_camera(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    body: Result<Json<wire::CameraRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<wire::CameraResponse>)> {
    let Json(req) = body.map_err(bad_json)?;
    let id = s.add_camera(spec_from_request(req)?).await?;
    let (c, st) = s
        .camera(id)
        .await
        .ok_or_else(|| err!(Internal, "camera {id} vanished"))?;
    s.audit(
        &who,
        Action::CameraAdded,
        Some(id),
        json!({"name": c.spec.name}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(camera_response(&c, &st))))
}

async fn update_camera(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    body: Result<Json<wire::CameraRequest>, JsonRejection>,
) -> ApiResult<Json<wire::CameraResponse>> {
    let id = camera_id(&id)?;
    let Json(req) = body.map_err(bad_json)?;
    s.update_camera(id, spec_from_request(req)?).await?;
    let (c, st) = s
        .camera(id)
        .await
        .ok_or_else(|| err!(NotFound, "no camera {id}"))?;
    s.audit(
        &who,
        Action::CameraChanged,
        Some(id),
        json!({"name": c.spec.name}),
    )
    .await?;
    Ok(Json(camera_response(&c, &st)))
}

async fn remove_camera(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
) -> ApiResult<StatusCode> {
    let id = camera_id(&id)?;
    s.remove_camera(id).await?;
    s.audit(&who, Action::CameraRemoved, Some(id), json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The newest conformance report of each of the camera's streams.
async fn conformance(
    State(s): State<Arc<Service>>,
    IdSegment(id): IdSegment,
) -> ApiResult<Json<wire::CameraConformance>> {
    let (c, _) = known_camera(&s, &id).await?;
    Ok(Json(s.checks.of(&c)))
}

/// Starts a conformance check of every stream of the camera.
async fn check_conformance(
    State(s): State<Arc<Service>>,
    IdSegment(id): IdSegment,
) -> ApiResult<(StatusCode, Json<wire::CameraConformance>)> {
    let (c, _) = known_camera(&s, &id).await?;
    s.checks.start(&c);
    Ok((StatusCode::ACCEPTED, Json(s.checks.of(&c))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingsQuery {
    stream: String,
    start: String,
    end: String,
}

/// The longest range one listing may span.
const MAX_LISTING_SECS: i64 = 31 * 24 * 3600;

/// What a listing of recordings is part of: any purpose that works on a recorded range.
const LISTING_PURPOSES: [Purpose; 4] = [
    Purpose::Playback,
    Purpose::Export,
    Purpose::Evidence,
    Purpose::Hold,
];

async fn recordings(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    q: Result<Query<RecordingsQuery>, QueryRejection>,
) -> ApiResult<Json<wire::Recordings>> {
    let id = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    let std::ops::Range { start, end } = time_range(&q.start, &q.end, MAX_LISTING_SECS)?;
    crate::auth::authorize(
        &who,
        &Footage {
            camera: id,
            stream: &q.stream,
            purposes: &LISTING_PURPOSES,
            span: Span::Within(start..end),
            central: true,
        },
    )?;
    Ok(Json(list_recordings(&s, id, q.stream, start..end).await?))
}

/// `POST /api/v1/recordings/query`: the listings of many cameras at once, for central's
/// federated queries. Cameras this recorder does not have are named in `unknown`.
async fn query_recordings(
    State(s): State<Arc<Service>>,
    body: Result<Json<wire::RecordingsQuery>, JsonRejection>,
) -> ApiResult<Json<wire::RecordingsQueryResult>> {
    let Json(q) = body.map_err(bad_json)?;
    if q.cameras.len() > 1000 {
        return Err(err!(InvalidArgument, "cameras: at most 1000").into());
    }
    let range = time_range(&q.start, &q.end, MAX_LISTING_SECS)?;
    let stream = q.stream.unwrap_or_else(|| "main".to_owned());
    let mut out = wire::RecordingsQueryResult {
        results: Vec::new(),
        unknown: Vec::new(),
    };
    for raw in q.cameras {
        let listed = match raw.parse::<CameraId>() {
            Ok(id) => list_recordings(&s, id, stream.clone(), range.clone()).await,
            Err(e) => Err(e.into()),
        };
        match listed {
            Ok(r) => out.results.push(r),
            Err(ApiError(e, _))
                if e.kind() == vms_core::ErrorKind::NotFound
                    || e.kind() == vms_core::ErrorKind::InvalidArgument =>
            {
                out.unknown.push(raw)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Json(out))
}

/// The recorded ranges and gaps of one camera's stream over `[start, end)`, including the
/// durable part of the segment being written.
async fn list_recordings(
    s: &Arc<Service>,
    id: CameraId,
    stream_name: String,
    std::ops::Range { start, end }: std::ops::Range<Time90k>,
) -> ApiResult<wire::Recordings> {
    let (camera, streams) = s
        .camera(id)
        .await
        .ok_or_else(|| err!(NotFound, "no camera {id}"))?;
    if !camera.spec.streams.iter().any(|st| st.name == stream_name) {
        return Err(err!(NotFound, "camera {id} has no stream {stream_name:?}").into());
    }
    let q = RecordingsQuery {
        stream: stream_name,
        start: String::new(),
        end: String::new(),
    };
    let index = s.index.clone();
    let stream = q.stream.clone();
    let rows = tokio::task::spawn_blocking(move || index.list(id, &stream, start..end))
        .await
        .map_err(|e| err!(Internal, "listing task: {e}"))??;
    let progress = streams
        .iter()
        .find(|(n, _, _)| *n == q.stream)
        .map(|(_, p, _)| p.clone());
    let mut ranges: Vec<wire::RecordedRange> = Vec::new();
    let mut gaps = Vec::new();
    let mut prev: Option<(Time90k, EndReason)> = None;
    for row in &rows {
        if let Some((prev_end, reason)) = prev {
            let continues = ranges.last().is_some_and(|r| r.run == row.run.to_string())
                && !leaves_gap(reason)
                && prev_end == row.start;
            if continues {
                let r = ranges.last_mut().expect("checked");
                r.end = row.end().to_rfc3339();
                r.end_90k = row.end().0;
                r.frames += u64::from(row.frames);
                r.segments += 1;
                r.time_quality.recorder_synced &= row.recorder_synced;
                r.time_quality.camera_offset_ms =
                    row.camera_offset_ms.or(r.time_quality.camera_offset_ms);
                prev = Some((row.end(), row.end_reason));
                continue;
            }
            if row.start > prev_end {
                gaps.push(gap(prev_end, row.start, hole_reason(reason)));
            }
        }
        ranges.push(wire::RecordedRange {
            start: row.start.to_rfc3339(),
            end: row.end().to_rfc3339(),
            start_90k: row.start.0,
            end_90k: row.end().0,
            frames: u64::from(row.frames),
            segments: 1,
            run: row.run.to_string(),
            time_quality: wire::TimeQuality {
                recorder_synced: row.recorder_synced,
                recorder_error_ms: row.recorder_error_ms,
                camera_offset_ms: row.camera_offset_ms,
            },
        });
        prev = Some((row.end(), row.end_reason));
    }
    // The stream's present state: the durable part of the open segment, or the gap it is in.
    if let Some(p) = progress {
        // A segment being closed is briefly both indexed and still open: count it once.
        if let (Some((ostart, run, frames)), Some(until)) = (p.open_segment, p.durable_until)
            && ostart < end
            && until > start
            && rows.last().is_none_or(|r| r.start < ostart)
        {
            let run = run.to_string();
            match (prev, ranges.last_mut()) {
                (Some((prev_end, reason)), Some(last))
                    if last.run == run && !leaves_gap(reason) && prev_end == ostart =>
                {
                    last.end = until.to_rfc3339();
                    last.end_90k = until.0;
                    last.frames += frames;
                    last.segments += 1;
                }
                (prev, _) => {
                    if let Some((prev_end, reason)) = prev
                        && ostart > prev_end
                    {
                        gaps.push(gap(prev_end, ostart, hole_reason(reason)));
                    }
                    let quality = s.clocks.quality();
                    ranges.push(wire::RecordedRange {
                        start: ostart.to_rfc3339(),
                        end: until.to_rfc3339(),
                        start_90k: ostart.0,
                        end_90k: until.0,
                        frames,
                        segments: 1,
                        run,
                        time_quality: wire::TimeQuality {
                            recorder_synced: quality.recorder_synced,
                            recorder_error_ms: quality.recorder_error_ms,
                            camera_offset_ms: p.camera_offset_ms,
                        },
                    });
                }
            }
        } else if let (Some((prev_end, reason)), Some(now_gap)) = (prev, p.gap_since)
            && now_gap.0 == prev_end
            && prev_end < end
        {
            gaps.push(gap(prev_end, end.min(s.clocks.realtime()), reason));
        }
    }
    Ok(wire::Recordings {
        camera: id.to_string(),
        stream: q.stream,
        start: start.to_rfc3339(),
        end: end.to_rfc3339(),
        ranges,
        gaps,
    })
}

/// `start` and `end` of a query: RFC 3339, in order, at most `max_secs` apart.
fn time_range(start: &str, end: &str, max_secs: i64) -> ApiResult<std::ops::Range<Time90k>> {
    let start = Time90k::parse_rfc3339(start).map_err(|e| e.context("start"))?;
    let end = Time90k::parse_rfc3339(end).map_err(|e| e.context("end"))?;
    if end <= start {
        return Err(err!(InvalidArgument, "end must be after start").into());
    }
    if (end - start).0 > max_secs * 90_000 {
        return Err(err!(InvalidArgument, "a range spans at most {max_secs} s").into());
    }
    Ok(start..end)
}

/// The longest range one transcoded export may span: it costs a decode and an encode.
const MAX_TRANSCODE_SECS: i64 = 3600;

/// The longest range one playlist may span.
const MAX_PLAYLIST_SECS: i64 = 24 * 3600;

/// A media request's `?stream=…&start=…&end=…`, checked: an ordered, bounded range.
#[derive(Deserialize)]
struct MediaQuery {
    stream: String,
    start: String,
    end: String,
    #[serde(default)]
    token: Option<String>,
    /// For an export: which part, when a codec change splits the range; from 0.
    #[serde(default)]
    part: usize,
}

impl MediaQuery {
    /// What the audit log says of the request.
    fn details(&self, range: &std::ops::Range<Time90k>) -> serde_json::Value {
        json!({"stream": self.stream, "start": range.start.to_rfc3339(),
            "end": range.end.to_rfc3339(), "part": self.part})
    }

    fn range(&self, max_secs: i64) -> ApiResult<std::ops::Range<Time90k>> {
        crate::archive::layout::check_stream_name(&self.stream).map_err(|e| e.context("stream"))?;
        time_range(&self.start, &self.end, max_secs)
    }

    /// Whether `who` may have this range of the stream for `purpose`.
    fn authorize(
        &self,
        who: &Principal,
        camera: CameraId,
        purpose: Purpose,
        range: &std::ops::Range<Time90k>,
    ) -> Result<(), Error> {
        crate::auth::authorize(
            who,
            &Footage {
                camera,
                stream: &self.stream,
                purposes: &[purpose],
                span: Span::Within(range.clone()),
                central: false,
            },
        )
    }
}

/// The durable part of a stream's open segment, if it is recording.
type OpenView = Option<Arc<(SegmentRow, Vec<u8>)>>;

/// Segments of a stream over a range, each with its decoded frame table: the indexed ones,
/// then the durable part of the open one.
fn segments_with_tables(
    s: &Service,
    camera: CameraId,
    stream: &str,
    range: std::ops::Range<Time90k>,
    open: &OpenView,
) -> Result<Vec<(SegmentRow, Vec<TableFrame>)>, Error> {
    let mut out = Vec::new();
    for row in s.index.list(camera, stream, range.clone())? {
        let table = s
            .index
            .frame_table(camera, stream, row.start)?
            .and_then(|t| FrameTable::decode(&t))
            .ok_or_else(|| {
                err!(
                    DataLoss,
                    "frame table of segment {} is unreadable",
                    row.start.0
                )
            })?;
        out.push((row, table));
    }
    // The open segment, unless its row has just been written (it then is in the list).
    if let Some((row, table)) = open.as_deref()
        && row.start < range.end
        && row.end() > range.start
        && out.last().is_none_or(|(last, _)| last.start < row.start)
    {
        let table = FrameTable::decode(table)
            .ok_or_else(|| err!(Internal, "the open segment's frame table is unreadable"))?;
        out.push((row.clone(), table));
    }
    Ok(out)
}

/// `GET /api/v1/cameras/{id}/playback.m3u8`: an HLS VOD playlist over byte ranges of the
/// stored files.
async fn playback(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    q: Result<Query<MediaQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let camera = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    let range = q.range(MAX_PLAYLIST_SECS)?;
    q.authorize(&who, camera, Purpose::Playback, &range)?;
    s.audit(&who, Action::Playback, Some(camera), q.details(&range))
        .await?;
    let open = s.open_view(camera, &q.stream).await;
    let (s2, stream, r) = (s.clone(), q.stream.clone(), range.clone());
    let segments =
        tokio::task::spawn_blocking(move || segments_with_tables(&s2, camera, &stream, r, &open))
            .await
            .map_err(|e| err!(Internal, "playlist task: {e}"))??;
    if segments.is_empty() {
        return Err(err!(
            NotFound,
            "no footage of camera {camera} / {} in that range",
            q.stream
        )
        .into());
    }
    let mut suffix = format!("?stream={}", q.stream);
    if let Some(t) = &q.token {
        suffix.push_str("&token=");
        suffix.extend(url::form_urlencoded::byte_serialize(t.as_bytes()));
    }
    let text = crate::media::hls::playlist(&segments, &range, |row| {
        format!("segments/{}.mp4{suffix}", row.start.0)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
        text,
    )
        .into_response())
}

#[derive(Deserialize)]
struct SegmentQuery {
    stream: String,
}

/// `GET /api/v1/cameras/{id}/segments/{start_90k}.mp4`: the durable bytes of one indexed
/// segment file, with `Range` and `ETag`. Only a file with an index row is ever opened, at a
/// path built from the parsed id, a checked stream name and an integer.
async fn segment_file(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    axum::extract::Path((id, file)): axum::extract::Path<(String, String)>,
    q: Result<Query<SegmentQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let camera = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    let start = file
        .strip_suffix(".mp4")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| err!(NotFound, "no segment {file:?}"))?;
    crate::archive::layout::check_stream_name(&q.stream).map_err(|e| e.context("stream"))?;
    // An indexed segment, or the durable part of the one being written.
    let row = match s.index.get(camera, &q.stream, Time90k(start))? {
        Some(row) => row,
        None => s
            .open_view(camera, &q.stream)
            .await
            .map(|v| v.0.clone())
            .filter(|row| row.start == Time90k(start))
            .ok_or_else(|| {
                err!(
                    NotFound,
                    "no segment {start} of camera {camera} / {}",
                    q.stream
                )
            })?,
    };
    crate::auth::authorize(
        &who,
        &Footage {
            camera,
            stream: &q.stream,
            purposes: &[Purpose::Playback],
            span: Span::Overlapping(row.start..row.end()),
            central: false,
        },
    )?;
    let path = stored_path(&s, &row)?;
    let etag = format!("\"{}\"", vms_core::hex::encode(&row.sha256[..16]));
    Ok(crate::media::serve::file(&path, row.size_bytes, &etag, "video/mp4", &headers).await?)
}

/// The path of an indexed segment on its (mounted) root.
fn stored_path(s: &Service, row: &SegmentRow) -> Result<std::path::PathBuf, Error> {
    let root = s
        .roots
        .iter()
        .find(|r| r.state.as_ref().ok() == Some(&row.root))
        .ok_or_else(|| err!(Unavailable, "the storage root of a segment is not mounted"))?;
    crate::archive::layout::segment_path(&root.path, row.camera, &row.stream, row.start)
}

/// The export's sources: each segment with its frame table, path and video sample entry
/// (read from the file's init section, a few hundred bytes).
fn export_sources(
    s: &Service,
    camera: CameraId,
    stream: &str,
    range: std::ops::Range<Time90k>,
    open: &OpenView,
) -> Result<Vec<Source>, Error> {
    use std::io::Read;
    let mut out = Vec::new();
    for (row, frames) in segments_with_tables(s, camera, stream, range, open)? {
        let path = stored_path(s, &row)?;
        let init_len = crate::media::hls::init_len(&frames)
            .ok_or_else(|| err!(DataLoss, "segment {} has no frames", row.start.0))?;
        let mut init = vec![0; usize::try_from(init_len).unwrap_or(0).min(1 << 20)];
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_exact(&mut init))
            .map_err(|e| err!(Unavailable, source: e, "reading {}", path.display()))?;
        let tracks = crate::archive::mp4::sample_entries(&init)?;
        let track = |id| tracks.iter().find(|t| t.track_id == id);
        let entry = track(crate::archive::mp4::VIDEO_TRACK_ID)
            .map(|t| t.sample_entry.clone())
            .ok_or_else(|| err!(DataLoss, "{} has no video track", path.display()))?;
        let audio = match track(crate::archive::mp4::AUDIO_TRACK_ID) {
            Some(t) => Some(AudioSource {
                entry: t.sample_entry.clone(),
                timescale: t.timescale,
                fragments: audio_fragments(&path, &frames)?,
            }),
            None => None,
        };
        out.push(Source {
            row,
            frames,
            path,
            entry,
            audio,
        });
    }
    Ok(out)
}

/// [`export_sources`] of a stream as it is now, off the async threads.
async fn load_sources(
    s: &Arc<Service>,
    camera: CameraId,
    stream: &str,
    range: &std::ops::Range<Time90k>,
) -> Result<Vec<Source>, Error> {
    let open = s.open_view(camera, stream).await;
    let (s, stream, range) = (s.clone(), stream.to_owned(), range.clone());
    tokio::task::spawn_blocking(move || export_sources(&s, camera, &stream, range, &open))
        .await
        .map_err(|e| err!(Internal, "reading the archive: {e}"))?
}

/// Each fragment's audio run and the offset of its data (after the fragment's video data),
/// from the fragment's `moof`, whose place the frame table gives.
fn audio_fragments(
    path: &std::path::Path,
    frames: &[TableFrame],
) -> Result<std::collections::BTreeMap<u64, (crate::archive::mp4::TrackRun, u64)>, Error> {
    use crate::archive::mp4;
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| err!(Unavailable, source: e, "reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut out = std::collections::BTreeMap::new();
    let starts: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].fragment_start.is_some())
        .collect();
    for (k, &i) in starts.iter().enumerate() {
        let (f, start) = (&frames[i], frames[i].fragment_start.expect("filtered"));
        let video_len: u64 = frames[i..starts.get(k + 1).copied().unwrap_or(frames.len())]
            .iter()
            .map(|f| u64::from(f.size_bytes))
            .sum();
        let mut head = vec![0; usize::try_from(f.offset - start).unwrap_or(0).min(1 << 20)];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(&mut head).map_err(io)?;
        let prft = mp4::next_box(&head, 0)?
            .ok_or_else(|| err!(DataLoss, "fragment at {start} cut short"))?;
        let moof = mp4::next_box(&head, prft.len)?
            .filter(|b| &b.fourcc == b"moof")
            .ok_or_else(|| err!(DataLoss, "no moof at {start} in {}", path.display()))?;
        if let Some(run) = mp4::parse_moof(moof.payload)?
            .runs
            .into_iter()
            .find(|r| r.track_id == mp4::AUDIO_TRACK_ID)
        {
            out.insert(start, (run, f.offset + video_len));
        }
    }
    Ok(out)
}

/// `GET /api/v1/cameras/{id}/export.mp4`: a progressive MP4 of a range, built from the
/// stored fragments, served with `Range` and `ETag` and streamed without temporary files.
async fn export_mp4(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    q: Result<Query<MediaQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    use sha2::Digest;
    let camera = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    let range = q.range(MAX_PLAYLIST_SECS)?;
    q.authorize(&who, camera, Purpose::Export, &range)?;
    let sources = load_sources(&s, camera, &q.stream, &range).await?;
    let (stream, r, part) = (q.stream.clone(), range.clone(), q.part);
    let (export, sources_hash) = tokio::task::spawn_blocking(move || {
        let mut h = sha2::Sha256::new();
        h.update(format!(
            "{camera}/{stream}/{}/{}/{part}",
            r.start.0, r.end.0
        ));
        for src in &sources {
            h.update(src.row.sha256);
        }
        let built = crate::media::export::build(&sources, &r, part)?;
        Ok::<_, Error>((built, h.finalize()))
    })
    .await
    .map_err(|e| err!(Internal, "export task: {e}"))??;
    let etag = format!("\"{}\"", vms_core::hex::encode(&sources_hash[..16]));
    // One audit record per download: a player's follow-up ranges are not new exports.
    let continues = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| !r.trim().starts_with("bytes=0-"));
    if !continues {
        s.audit(&who, Action::Export, Some(camera), q.details(&range))
            .await?;
    }
    let mut r = crate::media::serve::pieces(export.pieces, &etag, "video/mp4", &headers).await?;
    let h = r.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set("x-export-parts", export.parts.to_string());
    set("x-export-gaps", export.gaps.len().to_string());
    set(
        "x-export-delivered-start",
        export.delivered.start.to_rfc3339(),
    );
    set("x-export-delivered-end", export.delivered.end.to_rfc3339());
    set(
        "content-disposition",
        format!(
            "attachment; filename=\"{camera}-{}-{}.mp4\"",
            q.stream,
            export
                .delivered
                .start
                .timestamp()
                .strftime("%Y%m%dT%H%M%SZ")
        ),
    );
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    stream: String,
    /// A recorded moment (RFC 3339); absent: the live stream's latest keyframe.
    #[serde(default)]
    time: Option<String>,
    /// Scale down to this width (a thumbnail); absent: the stream's resolution.
    #[serde(default)]
    width: Option<u32>,
    /// The token, taken by the authorisation layer.
    #[serde(default, rename = "token")]
    _token: Option<serde::de::IgnoredAny>,
}

/// The frames to decode for a recorded moment: from the keyframe at or before it to the frame
/// showing it, read from the stored file; with the video sample entry and the wanted index.
fn archived_frames(
    s: &Service,
    camera: CameraId,
    stream: &str,
    at: Time90k,
    open: &OpenView,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), Error> {
    use std::io::{Read, Seek, SeekFrom};
    let sources = export_sources(
        s,
        camera,
        stream,
        at..at + vms_core::time::Duration90k(1),
        open,
    )?;
    let src = sources
        .into_iter()
        .find(|src| src.row.start <= at && at < src.row.end())
        .ok_or_else(|| err!(NotFound, "no footage of camera {camera} / {stream} at {at}"))?;
    let mut wall = src.row.start;
    let mut wanted = 0;
    for (i, f) in src.frames.iter().enumerate() {
        wanted = i;
        wall = wall + vms_core::time::Duration90k(i64::from(f.duration_90k));
        if wall > at {
            break;
        }
    }
    let first = src.frames[..=wanted]
        .iter()
        .rposition(|f| f.sync)
        .ok_or_else(|| err!(DataLoss, "segment {} has no keyframe", src.row.start.0))?;
    let mut file = std::fs::File::open(&src.path)
        .map_err(|e| err!(Unavailable, source: e, "opening {}", src.path.display()))?;
    let mut frames = Vec::new();
    for f in &src.frames[first..=wanted] {
        let mut data = vec![0; f.size_bytes as usize];
        file.seek(SeekFrom::Start(f.offset))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(|e| err!(Unavailable, source: e, "reading {}", src.path.display()))?;
        frames.push(data);
    }
    Ok((src.entry, frames))
}

/// `GET /api/v1/cameras/{id}/snapshot.jpg`: a JPEG of a recorded moment, decoded from the
/// keyframe before it, or of the live stream's latest keyframe; `width` makes a thumbnail.
async fn snapshot(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    q: Result<Query<SnapshotQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let camera = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    crate::archive::layout::check_stream_name(&q.stream).map_err(|e| e.context("stream"))?;
    if q.width.is_some_and(|w| !(16..=7680).contains(&w)) {
        return Err(err!(InvalidArgument, "width: 16 to 7680 pixels").into());
    }
    let time = q
        .time
        .as_deref()
        .map(|t| Time90k::parse_rfc3339(t).map_err(|e| e.context("time")))
        .transpose()?;
    // A recorded moment needs a snapshot token; the latest frame, a live one will do.
    let (purposes, span): (&[Purpose], _) = match time {
        Some(at) => (&[Purpose::Snapshot], Span::Within(at..at)),
        None => (&[Purpose::Live, Purpose::Snapshot], Span::Latest),
    };
    crate::auth::authorize(
        &who,
        &Footage {
            camera,
            stream: &q.stream,
            purposes,
            span,
            central: false,
        },
    )?;
    s.audit(
        &who,
        Action::Snapshot,
        Some(camera),
        json!({"stream": q.stream, "time": q.time, "width": q.width}),
    )
    .await?;
    // Without a time: the latest durable frame, of the segment being written (at most a
    // fragment, 1 s, old) or, while the stream is down, of the last one recorded.
    let open = s.open_view(camera, &q.stream).await;
    let at = match time {
        Some(at) => at,
        None => {
            let newest = match open.as_deref() {
                Some((row, _)) => row.end(),
                None => s
                    .index
                    .last(camera, &q.stream)?
                    .ok_or_else(|| err!(NotFound, "no footage of camera {camera} / {}", q.stream))?
                    .end(),
            };
            newest - vms_core::time::Duration90k(1)
        }
    };
    let (s2, stream) = (s.clone(), q.stream.clone());
    let (entry, frames) =
        tokio::task::spawn_blocking(move || archived_frames(&s2, camera, &stream, at, &open))
            .await
            .map_err(|e| err!(Internal, "snapshot task: {e}"))??;
    let width = q.width;
    let jpeg = tokio::task::spawn_blocking(move || {
        use crate::media::decode::{StoredFrame, decode_frame, jpeg};
        let stored: Vec<StoredFrame<'_>> = frames
            .iter()
            .enumerate()
            .map(|(i, d)| StoredFrame {
                data: d,
                keyframe: i == 0,
            })
            .collect();
        let picture = decode_frame(&entry, &stored, stored.len() - 1)?;
        jpeg(&picture, width, 85)
    })
    .await
    .map_err(|e| err!(Internal, "snapshot task: {e}"))??;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-frame-time"),
                at.to_rfc3339(),
            ),
        ],
        jpeg,
    )
        .into_response())
}

/// `POST /api/v1/cameras/{id}/evidence`: a signed evidence package (spec/evidence-package.md)
/// of a range: the export, one file per codec configuration, and a manifest signed by the
/// recorder's key. Streamed, with its exact length announced first.
#[derive(Deserialize)]
struct EvidenceRequest {
    stream: String,
    start: String,
    end: String,
    case: String,
    reason: String,
    /// Who exports (the person behind the credential).
    operator: String,
}

async fn evidence(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    body: Result<Json<EvidenceRequest>, JsonRejection>,
) -> ApiResult<Response> {
    use crate::evidence::{CameraInfo, ExportInfo, GapInfo, PackageWriter, package_len};
    use crate::media::export::build;
    use crate::media::serve::{BodyWriter, PiecesReader};
    let camera = camera_id(&id)?;
    let Json(req) = body.map_err(bad_json)?;
    crate::archive::layout::check_stream_name(&req.stream).map_err(|e| e.context("stream"))?;
    let range = time_range(&req.start, &req.end, MAX_PLAYLIST_SECS)?;
    crate::auth::authorize(
        &who,
        &Footage {
            camera,
            stream: &req.stream,
            purposes: &[Purpose::Evidence],
            span: Span::Within(range.clone()),
            central: false,
        },
    )?;
    let (c, _) = s
        .camera(camera)
        .await
        .ok_or_else(|| err!(NotFound, "no camera {camera}"))?;
    let sources = load_sources(&s, camera, &req.stream, &range).await?;
    let r = range.clone();
    let (exports, quality) = tokio::task::spawn_blocking(move || {
        let first = build(&sources, &r, 0)?;
        let mut exports = vec![first];
        for part in 1..exports[0].parts {
            exports.push(build(&sources, &r, part)?);
        }
        // The worst time quality over the footage delivered.
        let mut quality = vms_core::time::TimeQuality {
            recorder_synced: true,
            recorder_error_ms: None,
            camera_offset_ms: None,
        };
        for src in &sources {
            quality.recorder_synced &= src.row.recorder_synced;
            quality.recorder_error_ms = quality.recorder_error_ms.max(src.row.recorder_error_ms);
            if src.row.camera_offset_ms.map(i64::abs) > quality.camera_offset_ms.map(i64::abs) {
                quality.camera_offset_ms = src.row.camera_offset_ms;
            }
        }
        Ok::<_, Error>((exports, quality))
    })
    .await
    .map_err(|e| err!(Internal, "evidence task: {e}"))??;
    let delivered = (
        exports[0].delivered.start,
        exports.last().expect("one part at least").delivered.end,
    );
    let info = ExportInfo {
        recorder: s.id,
        camera: CameraInfo {
            id: camera,
            name: c.spec.name.clone(),
            region: c.spec.region,
            code: c.spec.code.map(|n| n.to_string()),
        },
        stream: req.stream.clone(),
        requested: (range.start, range.end),
        delivered,
        gaps: exports
            .iter()
            .flat_map(|e| &e.gaps)
            .map(|&(start, end, reason)| GapInfo { start, end, reason })
            .collect(),
        time_quality: quality,
        operator: req.operator,
        case: req.case,
        reason: req.reason,
        exported: s.clocks.realtime(),
    };
    let names: Vec<String> = match exports.len() {
        1 => vec!["export.mp4".into()],
        n => (1..=n).map(|i| format!("export-part{i}.mp4")).collect(),
    };
    let sizes: Vec<u64> = exports
        .iter()
        .map(|e| e.pieces.iter().map(|p| p.size()).sum())
        .collect();
    let media: Vec<(&str, u64)> = names
        .iter()
        .map(String::as_str)
        .zip(sizes.iter().copied())
        .collect();
    let len = package_len(&info, &s.evidence_key, &media)?;
    s.audit(
        &who,
        Action::EvidenceExport,
        Some(camera),
        json!({"stream": info.stream, "start": range.start.to_rfc3339(),
            "end": range.end.to_rfc3339(), "case": info.case, "reason": info.reason,
            "operator": info.operator, "bytes": len}),
    )
    .await?;
    let filename: String = format!("evidence-{}-{camera}.tar", info.case)
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let (writer, body) = BodyWriter::new();
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || {
        let write = || -> Result<BodyWriter, Error> {
            let mut package = PackageWriter::new(writer, info, &s2.evidence_key)?;
            for ((name, export), size) in names.iter().zip(exports).zip(sizes) {
                package.add_media(name, PiecesReader::new(export.pieces), size)?;
            }
            let (mut out, _) = package.finish()?;
            std::io::Write::flush(&mut out)
                .map_err(|e| err!(Unavailable, source: e, "sending the package"))?;
            Ok(out)
        };
        if let Err(e) = write() {
            tracing::error!(err = %e, "evidence package cut short");
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/cameras/{id}/transcoded.mp4`: the range as H.264 with the camera name and the
/// wall clock burned in, for players that cannot play H.265; a fragmented MP4 streamed as it
/// is encoded (so no `Range`, and no length up front).
async fn transcoded(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    q: Result<Query<MediaQuery>, QueryRejection>,
) -> ApiResult<Response> {
    use crate::media::serve::BodyWriter;
    let camera = camera_id(&id)?;
    let Query(q) = q.map_err(bad_query)?;
    let range = q.range(MAX_TRANSCODE_SECS)?;
    q.authorize(&who, camera, Purpose::Export, &range)?;
    let name = s
        .camera(camera)
        .await
        .map_or_else(|| camera.to_string(), |(c, _)| c.spec.name);
    let sources = load_sources(&s, camera, &q.stream, &range).await?;
    if sources.is_empty() {
        return Err(err!(NotFound, "no footage in that range").into());
    }
    s.audit(&who, Action::Export, Some(camera), q.details(&range))
        .await?;
    let (mut writer, body) = BodyWriter::new();
    let part = q.part;
    tokio::task::spawn_blocking(move || {
        let done = crate::media::export::transcode(&sources, &range, part, &name, &mut writer)
            .and_then(|()| {
                std::io::Write::flush(&mut writer)
                    .map_err(|e| err!(Unavailable, source: e, "sending the transcode"))
            });
        if let Err(e) = done {
            tracing::error!(err = %e, "transcoded export cut short");
            writer.fail(std::io::Error::other(e.to_string()));
        }
    });
    Ok(([(header::CONTENT_TYPE, "video/mp4")], body).into_response())
}

/// `GET /api/v1/evidence/key`: the public half of the key that signs this recorder's
/// evidence packages.
async fn evidence_key(State(s): State<Arc<Service>>) -> Json<wire::EvidenceKey> {
    let key = &s.evidence_key;
    Json(wire::EvidenceKey {
        public_key_pem: key.public_key().pem().to_owned(),
        fingerprint: key.public_key().fingerprint().to_owned(),
        certificate_pem: key.certificate(),
    })
}

fn gap(start: Time90k, end: Time90k, reason: EndReason) -> wire::Gap {
    wire::Gap {
        start: start.to_rfc3339(),
        end: end.to_rfc3339(),
        duration_ms: (end - start).as_millis(),
        reason: reason.to_string(),
    }
}

/// How long a stream may be down before it raises an alert.
const STREAM_DOWN_ALERT_SECS: u64 = 10;

async fn alerts(State(s): State<Arc<Service>>) -> ApiResult<Json<wire::Alerts>> {
    let mut alerts = Vec::new();
    let mut alert = |kind: &str,
                     message: String,
                     camera: Option<String>,
                     stream: Option<String>,
                     root: Option<String>| {
        alerts.push(wire::Alert {
            kind: kind.into(),
            message,
            camera,
            stream,
            storage_root: root,
        })
    };
    let now = Instant::now();
    for (c, streams) in s.cameras().await {
        for (name, p, conn) in streams {
            let silent = p
                .last_frame
                .is_none_or(|t| now.duration_since(t).as_secs() >= STREAM_DOWN_ALERT_SECS);
            if !conn.connected || silent {
                let why = conn
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no frames".into());
                alert(
                    "stream_down",
                    format!("{} / {name}: {why}", c.spec.name),
                    Some(c.id.to_string()),
                    Some(name),
                    None,
                );
            }
        }
    }
    for (camera, stream, rules) in s.checks.failing() {
        alert(
            "camera_nonconformant",
            format!(
                "stream {stream} fails the camera conformance rules: {}",
                rules.join(", ")
            ),
            Some(camera.to_string()),
            Some(stream),
            None,
        );
    }
    for r in &s.roots {
        if let Err(e) = &r.state {
            alert(
                "storage_root_missing",
                e.clone(),
                None,
                None,
                Some(r.path.display().to_string()),
            );
        }
    }
    let root_path = |id: StorageRootId| {
        s.roots
            .iter()
            .find(|r| r.state.as_ref().ok() == Some(&id))
            .map(|r| r.path.display().to_string())
    };
    for f in s.retention_findings() {
        let (kind, root, camera) = f.subject();
        let message = match &f {
            Finding::DiskFull { message, .. } => message.clone(),
            Finding::MinAgeBreach { age, min_age, .. } => format!(
                "footage {:.0} s old was evicted for room; the minimum age is {:.0} s",
                age.as_secs_f64(),
                min_age.as_secs_f64()
            ),
            Finding::HeldShare {
                held_bytes,
                quota_bytes,
                ..
            } => format!("{held_bytes} bytes are held, of a {quota_bytes} byte quota"),
        };
        alert(
            kind,
            message,
            camera.map(|(c, _)| c.to_string()),
            camera.map(|(_, st)| st.to_owned()),
            root_path(root),
        );
    }
    if !s.clocks.quality().recorder_synced {
        alert(
            "clock_unsynchronized",
            "the recorder clock is not NTP-synchronised; footage is marked so".into(),
            None,
            None,
            None,
        );
    }
    if let Some(why) = &s.index_rebuilt {
        alert("index_rebuilt", why.clone(), None, None, None);
    }
    Ok(Json(wire::Alerts { alerts }))
}

fn hold_response(h: &Hold) -> wire::Hold {
    wire::Hold {
        id: h.id.to_string(),
        camera: h.camera.to_string(),
        stream: h.stream.clone(),
        start: Time90k(h.start_90k).to_rfc3339(),
        end: Time90k(h.end_90k).to_rfc3339(),
        case: h.case.clone(),
        reason: h.reason.clone(),
        created: Time90k(h.created_90k).to_rfc3339(),
    }
}

async fn place_hold(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
    body: Result<Json<wire::HoldRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<wire::Hold>)> {
    let camera = camera_id(&id)?;
    let Json(req) = body.map_err(bad_json)?;
    let hold = Hold {
        id: HoldId::generate(),
        camera,
        stream: req.stream,
        start_90k: Time90k::parse_rfc3339(&req.start)
            .map_err(|e| e.context("start"))?
            .0,
        end_90k: Time90k::parse_rfc3339(&req.end)
            .map_err(|e| e.context("end"))?
            .0,
        case: req.case,
        reason: req.reason,
        created_90k: s.clocks.realtime().0,
    };
    authorize_hold(&who, &hold)?;
    let response = hold_response(&hold);
    s.place_hold(hold).await?;
    s.audit(
        &who,
        Action::HoldPlaced,
        Some(camera),
        json!({"hold": response.id, "stream": response.stream, "start": response.start,
            "end": response.end, "case": response.case, "reason": response.reason}),
    )
    .await?;
    tracing::info!(hold = %response.id, camera = %response.camera, case = %response.case, "hold placed");
    Ok((StatusCode::CREATED, Json(response)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsQuery {
    camera: Option<String>,
}

async fn list_holds(
    State(s): State<Arc<Service>>,
    q: Result<Query<HoldsQuery>, QueryRejection>,
) -> ApiResult<Json<wire::Holds>> {
    let Query(q) = q.map_err(bad_query)?;
    let camera = q.camera.as_deref().map(camera_id).transpose()?;
    let holds = s
        .holds
        .list()
        .iter()
        .filter(|h| camera.is_none_or(|c| h.camera == c))
        .map(hold_response)
        .collect();
    Ok(Json(wire::Holds { holds }))
}

/// Whether `who` may place or lift `hold`; a hold on every stream needs a token for every
/// stream.
fn authorize_hold(who: &Principal, hold: &Hold) -> Result<(), Error> {
    crate::auth::authorize(
        who,
        &Footage {
            camera: hold.camera,
            stream: hold
                .stream
                .as_deref()
                .unwrap_or(vms_core::token::ANY_STREAM),
            purposes: &[Purpose::Hold],
            span: Span::Within(Time90k(hold.start_90k)..Time90k(hold.end_90k)),
            central: true,
        },
    )
}

async fn release_hold(
    State(s): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    IdSegment(id): IdSegment,
) -> ApiResult<StatusCode> {
    let id: HoldId = id
        .parse()
        .map_err(|_| ApiError::from(err!(NotFound, "no hold {id:?}")))?;
    let held = s
        .holds
        .list()
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| err!(NotFound, "no hold {id}"))?;
    authorize_hold(&who, &held)?;
    let hold = s.release_hold(id).await?;
    s.audit(
        &who,
        Action::HoldReleased,
        Some(hold.camera),
        json!({"hold": id.to_string(), "case": hold.case}),
    )
    .await?;
    tracing::info!(hold = %id, camera = %hold.camera, case = %hold.case, "hold released");
    Ok(StatusCode::NO_CONTENT)
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(s): State<Arc<Service>>) -> ApiResult<Response> {
    use std::fmt::Write;
    let mut out = String::new();
    let realtime = s.clocks.realtime();
    let families = [
        ("vms_stream_up", "gauge", "1 while the stream is connected"),
        ("vms_stream_frames_total", "counter", "frames made durable"),
        (
            "vms_stream_bytes_total",
            "counter",
            "media bytes made durable",
        ),
        (
            "vms_stream_write_lag_seconds",
            "gauge",
            "last fragment: arrival of its last frame to fdatasync",
        ),
        (
            "vms_stream_gap_seconds",
            "gauge",
            "length of the gap the stream is in now",
        ),
    ];
    let cameras = s.cameras().await;
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (c, streams) in &cameras {
            for (stream, p, conn) in streams {
                let value = match name {
                    "vms_stream_up" => f64::from(u8::from(conn.connected)),
                    "vms_stream_frames_total" => p.frames_total as f64,
                    "vms_stream_bytes_total" => p.bytes_total as f64,
                    "vms_stream_write_lag_seconds" => p.last_write_lag_secs,
                    _ => p
                        .gap_since
                        .map_or(0.0, |(t, _)| (realtime - t).as_secs_f64().max(0.0)),
                };
                let _ = writeln!(
                    out,
                    "{name}{{camera=\"{}\",stream=\"{}\"}} {value}",
                    c.id,
                    label(stream)
                );
            }
        }
    }
    for (name, help) in [
        ("vms_storage_used_bytes", "bytes of indexed footage"),
        ("vms_storage_quota_bytes", "configured quota"),
        ("vms_storage_free_bytes", "free bytes on the file system"),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for r in &s.roots {
            let Ok(id) = &r.state else { continue };
            let value = match name {
                "vms_storage_used_bytes" => Some(s.index.used_bytes(*id)),
                "vms_storage_quota_bytes" => r.quota_bytes,
                _ => s.free_bytes(r),
            };
            if let Some(v) = value {
                let _ = writeln!(
                    out,
                    "{name}{{root=\"{}\"}} {v}",
                    label(&r.path.display().to_string())
                );
            }
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[cfg(test)]
mod tests;
