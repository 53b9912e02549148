//! The client API on central's API port: login and sessions, users, recorders and enrolment
//! tokens, the directory, camera changes relayed to recorders, federated queries, media
//! tokens and the media relay. Every handler authenticates the caller's session and applies
//! the one rule of `authz`: out of scope is 404, in scope with the wrong role is 403.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use vms_core::audit::Action;
use vms_core::id::{CameraId, RecorderId, UserId};
use vms_core::region::RegionCode;
use vms_core::token::{self, Claims, Purpose};
use vms_core::wire;
use vms_core::{Error, bail, err};

use super::{ApiError, ApiResult, bad_json, bad_query, traced};
use crate::authz::{self, Permission};
use crate::catalog::{Entry, Query as DirQuery, decode_cursor, encode_cursor};
use crate::channel::{blocking, recorder_error, stream_body};
use crate::registry::RecorderRecord;
use crate::service::Central;
use crate::users::{Role, User, UserUpdate};

/// Most cameras one federated query may name.
const MAX_QUERY_CAMERAS: usize = 1000;
/// Longest range a federated query may span.
const MAX_QUERY_SECS: i64 = 31 * 86_400;
/// How long a relayed request may take to start answering.
const RELAY_DEADLINE: Duration = Duration::from_secs(30);

pub fn router(central: Arc<Central>) -> Router {
    traced(
        Router::new()
            .route("/api/v1/health", get(super::health))
            .route("/api/v1/auth/login", post(login))
            .route("/api/v1/auth/logout", post(logout))
            .route("/api/v1/auth/me", get(me))
            .route("/api/v1/users", get(list_users).post(create_user))
            .route(
                "/api/v1/users/{id}",
                get(get_user).patch(update_user).delete(delete_user),
            )
            .route("/api/v1/recorders", get(list_recorders))
            .route("/api/v1/recorders/{id}", get(get_recorder))
            .route("/api/v1/recorders/{id}/cameras", post(add_camera))
            // The methods of the recorder's media endpoints: nothing else is relayed.
            .route(
                "/api/v1/recorders/{id}/relay/{*path}",
                get(relay).post(relay).delete(relay),
            )
            .route("/api/v1/enrolment-tokens", post(create_enrolment_token))
            .route("/api/v1/cameras", get(directory))
            .route(
                "/api/v1/cameras/{id}",
                get(get_camera).put(update_camera).delete(remove_camera),
            )
            .route("/api/v1/recordings/query", post(query_recordings))
            .route("/api/v1/media-tokens", post(media_token))
            .route("/api/v1/audit", get(audit_log)),
    )
    .with_state(central)
}

/// The authenticated user behind a request's session token.
pub struct Caller(pub User);

impl FromRequestParts<Arc<Central>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        c: &Arc<Central>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| err!(Unauthenticated, "a session token is required"))?;
        let (user, _) = c.users.authenticate(token, jiff::Timestamp::now())?;
        Ok(Caller(user))
    }
}

/// An id from the path; one that will not parse names nothing, as an unknown one.
fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::from(err!(NotFound, "{what} not found")))
}

fn user_info(u: &User) -> wire::UserInfo {
    wire::UserInfo {
        id: u.id.to_string(),
        username: u.username.clone(),
        role: u.role.as_str().to_owned(),
        scopes: u.scopes.iter().map(ToString::to_string).collect(),
        created: u.created.to_string(),
        disabled: u.disabled,
    }
}

fn parse_role(s: &str) -> Result<Role, Error> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        err!(
            InvalidArgument,
            "role: one of operator, investigator, regional_admin, national_admin"
        )
    })
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<RegionCode>, Error> {
    scopes
        .iter()
        .map(|s| s.parse().map_err(|e: Error| e.context("scopes")))
        .collect()
}

fn parse_time(field: &str, s: &str) -> Result<jiff::Timestamp, Error> {
    s.parse()
        .map_err(|e| err!(InvalidArgument, "{field}: not an RFC 3339 time: {e}"))
}

// ---- Sessions ----

async fn login(
    State(c): State<Arc<Central>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<wire::LoginRequest>, JsonRejection>,
) -> ApiResult<Json<wire::LoginResponse>> {
    let Json(req) = body.map_err(bad_json)?;
    let client = peer.ip().to_string();
    match c
        .users
        .login(
            &req.username,
            &req.password,
            peer.ip(),
            jiff::Timestamp::now(),
        )
        .await
    {
        Ok((token, session)) => {
            let user = c.users.get(session.user)?;
            c.audit(
                &user,
                Action::Login,
                None,
                serde_json::json!({"client": client}),
            )
            .await?;
            Ok(Json(wire::LoginResponse {
                token,
                expires: session.expires.to_string(),
                user: user_info(&user),
            }))
        }
        Err(e) => {
            let name: String = req.username.chars().take(64).collect();
            c.audit_as(
                "anonymous",
                Action::LoginFailed,
                None,
                serde_json::json!({"name": name, "client": client, "limited": e.retry_after_secs.is_some()}),
            )
            .await?;
            Err(ApiError(
                e.error,
                e.retry_after_secs.map(|_| StatusCode::TOO_MANY_REQUESTS),
                None,
            )
            .with_retry_after(e.retry_after_secs))
        }
    }
}

async fn logout(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    req: Request,
) -> ApiResult<StatusCode> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    c.users.logout(&token).await?;
    c.audit(&u, Action::Logout, None, serde_json::json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(Caller(u): Caller) -> Json<wire::UserInfo> {
    Json(user_info(&u))
}

// ---- Users ----

async fn list_users(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
) -> ApiResult<Json<wire::UserList>> {
    authz::check(&u, Permission::ManageUsers, &authz::republic(), "users")?;
    let users = c.users.list()?.iter().map(user_info).collect();
    Ok(Json(wire::UserList { users }))
}

async fn create_user(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    body: Result<Json<wire::UserRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<wire::UserInfo>)> {
    authz::check(&u, Permission::ManageUsers, &authz::republic(), "users")?;
    let Json(req) = body.map_err(bad_json)?;
    let role = parse_role(&req.role)?;
    let scopes = parse_scopes(&req.scopes)?;
    let created = c
        .users
        .create(
            &req.username,
            &req.password,
            role,
            scopes,
            jiff::Timestamp::now(),
        )
        .await?;
    c.audit(&u, Action::UserCreated, None, serde_json::json!({"user": created.id.to_string(), "name": created.username, "role": role.as_str()}))
        .await?;
    Ok((StatusCode::CREATED, Json(user_info(&created))))
}

async fn get_user(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::UserInfo>> {
    authz::check(&u, Permission::ManageUsers, &authz::republic(), "user")?;
    let id: UserId = path_id(&id, "user")?;
    Ok(Json(user_info(&c.users.get(id)?)))
}

async fn update_user(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
    body: Result<Json<wire::UserUpdateRequest>, JsonRejection>,
) -> ApiResult<Json<wire::UserInfo>> {
    authz::check(&u, Permission::ManageUsers, &authz::republic(), "user")?;
    let id: UserId = path_id(&id, "user")?;
    let Json(req) = body.map_err(bad_json)?;
    let change = UserUpdate {
        role: req.role.as_deref().map(parse_role).transpose()?,
        scopes: req.scopes.as_deref().map(parse_scopes).transpose()?,
        password: req.password.clone(),
        disabled: req.disabled,
    };
    let updated = c.users.update(id, change).await?;
    c.audit(
        &u,
        Action::UserChanged,
        None,
        serde_json::json!({"user": id.to_string(), "role": req.role, "scopes": req.scopes,
            "password_changed": req.password.is_some(), "disabled": req.disabled}),
    )
    .await?;
    Ok(Json(user_info(&updated)))
}

async fn delete_user(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    authz::check(&u, Permission::ManageUsers, &authz::republic(), "user")?;
    let id: UserId = path_id(&id, "user")?;
    c.users.delete(id).await?;
    c.audit(
        &u,
        Action::UserDeleted,
        None,
        serde_json::json!({"user": id.to_string()}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Recorders and enrolment ----

fn recorder_info(c: &Central, r: &RecorderRecord) -> wire::RecorderInfo {
    let live = c.registry.live(r.id);
    wire::RecorderInfo {
        id: r.id.to_string(),
        name: r.name.clone(),
        region: r.region.to_string(),
        spec_version: r.spec_version.clone(),
        online: live.online,
        last_heartbeat_age_ms: live.last_heartbeat.map(|t| t.elapsed().as_millis() as u64),
        status: live.status,
        public_url: r.public_url.clone(),
        enrolled: r.enrolled.clone(),
    }
}

async fn list_recorders(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
) -> ApiResult<Json<wire::RecorderList>> {
    let recorders = c
        .registry
        .list()?
        .iter()
        .filter(|r| authz::check(&u, Permission::ViewDirectory, &r.region, "recorder").is_ok())
        .map(|r| recorder_info(&c, r))
        .collect();
    Ok(Json(wire::RecorderList { recorders }))
}

/// The recorder of a path, if the caller may see it.
fn visible_recorder(
    c: &Central,
    u: &User,
    raw: &str,
    permission: Permission,
) -> ApiResult<RecorderRecord> {
    let id: RecorderId = path_id(raw, "recorder")?;
    let r = c
        .registry
        .get(id)?
        .ok_or_else(|| err!(NotFound, "recorder not found"))?;
    authz::check(u, permission, &r.region, "recorder")?;
    Ok(r)
}

async fn get_recorder(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::RecorderInfo>> {
    let r = visible_recorder(&c, &u, &id, Permission::ViewDirectory)?;
    Ok(Json(recorder_info(&c, &r)))
}

async fn create_enrolment_token(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    body: Result<Json<wire::EnrolmentTokenRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<wire::EnrolmentTokenResponse>)> {
    let Json(req) = body.map_err(bad_json)?;
    let region: RegionCode = req.region.parse().map_err(|e: Error| e.context("region"))?;
    authz::check(&u, Permission::Enrol, &region, "region")?;
    let ttl = req.ttl_secs.unwrap_or(86_400);
    if !(60..=604_800).contains(&ttl) {
        return Err(err!(InvalidArgument, "ttl_secs: {ttl} is outside 60..=604800").into());
    }
    let central = c.clone();
    let actor = format!("user:{}", u.id);
    let t = blocking(move || {
        central
            .registry
            .create_token(&central.pki, region, Duration::from_secs(ttl), &actor)
    })
    .await?;
    c.audit(
        &u,
        Action::EnrolmentTokenCreated,
        None,
        serde_json::json!({"region": region.to_string(), "expires": t.expires.to_string()}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(wire::EnrolmentTokenResponse {
            token: t.token,
            region: region.to_string(),
            expires: t.expires.to_string(),
        }),
    ))
}

// ---- Directory ----

#[derive(Deserialize)]
struct DirectoryParams {
    region: Option<String>,
    q: Option<String>,
    class: Option<String>,
    status: Option<String>,
    conformance: Option<String>,
    bbox: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn directory_query(p: DirectoryParams) -> Result<DirQuery, Error> {
    let region = match p.region.as_deref() {
        Some(r) => r.parse().map_err(|e: Error| e.context("region"))?,
        None => authz::republic(),
    };
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        bail!(InvalidArgument, "limit: {limit} is outside 1..=1000");
    }
    if let Some(q) = &p.q {
        vms_core::text::check_text("q", q, 256)?;
    }
    if let Some(s) = &p.status
        && !matches!(
            s.as_str(),
            "online" | "degraded" | "offline" | "recorder_offline"
        )
    {
        bail!(
            InvalidArgument,
            "status: one of online, degraded, offline, recorder_offline"
        );
    }
    if let Some(c) = &p.conformance
        && !matches!(c.as_str(), "pass" | "fail" | "unchecked")
    {
        bail!(InvalidArgument, "conformance: one of pass, fail, unchecked");
    }
    let bbox = p
        .bbox
        .as_deref()
        .map(|b| {
            let v: Vec<f64> = b
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    err!(
                        InvalidArgument,
                        "bbox: four numbers min_lon,min_lat,max_lon,max_lat"
                    )
                })?;
            match v[..] {
                [a, b, c, d] if a <= c && b <= d && v.iter().all(|x| x.is_finite()) => {
                    Ok([a, b, c, d])
                }
                _ => Err(err!(
                    InvalidArgument,
                    "bbox: four numbers min_lon,min_lat,max_lon,max_lat, minimum first"
                )),
            }
        })
        .transpose()?;
    Ok(DirQuery {
        region,
        text: p.q,
        class: p.class,
        status: p.status,
        conformance: p.conformance,
        bbox,
        after: p.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
    })
}

fn directory_camera(e: &Entry, online: bool) -> wire::DirectoryCamera {
    wire::DirectoryCamera {
        camera: e.camera.clone(),
        recorder: e.recorder.to_string(),
        recorder_online: online,
    }
}

async fn directory(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    q: Result<Query<DirectoryParams>, QueryRejection>,
) -> ApiResult<Json<wire::DirectoryPage>> {
    let Query(p) = q.map_err(bad_query)?;
    let query = directory_query(p)?;
    // Scopes where the role may view the directory at all.
    let scopes: Vec<RegionCode> = if authz::allows(u.role, Permission::ViewDirectory) {
        u.scopes.clone()
    } else {
        Vec::new()
    };
    let registry = c.registry.clone();
    let result = c
        .catalog
        .search(&query, &scopes, &|r| registry.is_online(r));
    Ok(Json(wire::DirectoryPage {
        cameras: result
            .cameras
            .iter()
            .map(|(e, up)| directory_camera(e, *up))
            .collect(),
        total: result.total as u64,
        counts: result
            .counts
            .iter()
            .map(|(r, n)| wire::RegionCount {
                region: r.to_string(),
                name: c.region_name(r),
                count: *n as u64,
            })
            .collect(),
        next_cursor: result
            .more
            .then_some(result.last.as_ref())
            .flatten()
            .map(encode_cursor),
    }))
}

/// The camera of a path, if the caller may see it and has `permission` for it.
fn visible_camera(
    c: &Central,
    u: &User,
    raw: &str,
    permission: Permission,
) -> ApiResult<Arc<Entry>> {
    let id: CameraId = path_id(raw, "camera")?;
    let e = c
        .catalog
        .get(id)
        .ok_or_else(|| err!(NotFound, "camera not found"))?;
    authz::check(u, permission, &e.region, "camera")?;
    Ok(e)
}

async fn get_camera(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::DirectoryCamera>> {
    let e = visible_camera(&c, &u, &id, Permission::ViewDirectory)?;
    Ok(Json(directory_camera(&e, c.registry.is_online(e.recorder))))
}

// ---- Camera changes, relayed to the recorder that has the camera ----

/// Sends a JSON camera change to a recorder over its channel and passes its answer back.
async fn relay_json(
    c: &Central,
    recorder: RecorderId,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> ApiResult<Response> {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|e| err!(Internal, "{e}"))?;
    let deadline = Duration::from_millis(c.config.fanout_deadline_ms).max(Duration::from_secs(10));
    let resp = c.channels.call(recorder, req, deadline).await?;
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| err!(Unavailable, "recorder {recorder}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(recorder_error(recorder, status, &bytes).into());
    }
    Ok((status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// A camera's region must lie within its recorder's: central's catalog refuses the others.
fn within_recorder(region: &RegionCode, recorder: &RecorderRecord) -> Result<(), Error> {
    if !region.is_within(&recorder.region) {
        bail!(
            InvalidArgument,
            "region: {region} is outside the recorder's region {}",
            recorder.region
        );
    }
    Ok(())
}

async fn add_camera(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
    body: Result<Json<wire::CameraRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let r = visible_recorder(&c, &u, &id, Permission::ManageCameras)?;
    let Json(req) = body.map_err(bad_json)?;
    let region: RegionCode = req.region.parse().map_err(|e: Error| e.context("region"))?;
    authz::check(&u, Permission::ManageCameras, &region, "region")?;
    within_recorder(&region, &r)?;
    c.audit(
        &u,
        Action::CameraAdded,
        None,
        serde_json::json!({"recorder": r.id.to_string(), "name": req.name}),
    )
    .await?;
    let body = serde_json::to_vec(&req).map_err(|e| err!(Internal, "{e}"))?;
    relay_json(&c, r.id, Method::POST, "/api/v1/cameras", Some(body)).await
}

async fn update_camera(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
    body: Result<Json<wire::CameraRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let e = visible_camera(&c, &u, &id, Permission::ManageCameras)?;
    let Json(req) = body.map_err(bad_json)?;
    let region: RegionCode = req.region.parse().map_err(|e: Error| e.context("region"))?;
    authz::check(&u, Permission::ManageCameras, &region, "region")?;
    let recorder = c
        .registry
        .get(e.recorder)?
        .ok_or_else(|| err!(NotFound, "camera not found"))?;
    within_recorder(&region, &recorder)?;
    c.audit(
        &u,
        Action::CameraChanged,
        Some(e.id),
        serde_json::json!({"recorder": e.recorder.to_string(), "name": req.name}),
    )
    .await?;
    let body = serde_json::to_vec(&req).map_err(|e| err!(Internal, "{e}"))?;
    relay_json(
        &c,
        e.recorder,
        Method::PUT,
        &format!("/api/v1/cameras/{}", e.id),
        Some(body),
    )
    .await
}

async fn remove_camera(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let e = visible_camera(&c, &u, &id, Permission::ManageCameras)?;
    c.audit(
        &u,
        Action::CameraRemoved,
        Some(e.id),
        serde_json::json!({"recorder": e.recorder.to_string()}),
    )
    .await?;
    relay_json(
        &c,
        e.recorder,
        Method::DELETE,
        &format!("/api/v1/cameras/{}", e.id),
        None,
    )
    .await
}

// ---- Federated queries ----

async fn query_recordings(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    body: Result<Json<wire::RecordingsQuery>, JsonRejection>,
) -> ApiResult<Json<wire::FederatedRecordings>> {
    let Json(q) = body.map_err(bad_json)?;
    if q.cameras.is_empty() || q.cameras.len() > MAX_QUERY_CAMERAS {
        return Err(err!(InvalidArgument, "cameras: 1 to {MAX_QUERY_CAMERAS}").into());
    }
    let (start, end) = (parse_time("start", &q.start)?, parse_time("end", &q.end)?);
    let span = end.as_second() - start.as_second();
    if !(1..=MAX_QUERY_SECS).contains(&span) {
        return Err(err!(
            InvalidArgument,
            "end: must be after start, by at most {MAX_QUERY_SECS} s"
        )
        .into());
    }
    let deadline = match q.deadline_ms {
        Some(ms) if (50..=60_000).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(err!(InvalidArgument, "deadline_ms: {ms} is outside 50..=60000").into());
        }
        None => Duration::from_millis(c.config.fanout_deadline_ms),
    };
    let stream = q.stream.as_deref().unwrap_or("main");
    let cameras = q
        .cameras
        .iter()
        .map(|id| visible_camera(&c, &u, id, Permission::Playback))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(
        crate::federation::recordings(
            &c,
            &cameras,
            stream,
            &start.to_string(),
            &end.to_string(),
            deadline,
        )
        .await,
    ))
}

// ---- Media tokens and the relay ----

fn purpose_permission(p: Purpose) -> Permission {
    match p {
        Purpose::Live => Permission::Live,
        Purpose::Playback => Permission::Playback,
        Purpose::Snapshot => Permission::Snapshot,
        Purpose::Export => Permission::Export,
        Purpose::Evidence => Permission::Evidence,
        Purpose::Hold => Permission::Hold,
    }
}

async fn media_token(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    body: Result<Json<wire::MediaTokenRequest>, JsonRejection>,
) -> ApiResult<Json<wire::MediaTokenResponse>> {
    let Json(req) = body.map_err(bad_json)?;
    let purpose: Purpose = serde_json::from_value(serde_json::Value::String(req.purpose.clone()))
        .map_err(|_| {
        err!(
            InvalidArgument,
            "purpose: one of live, playback, snapshot, export, evidence, hold"
        )
    })?;
    let e = visible_camera(&c, &u, &req.camera, purpose_permission(purpose))?;
    let stream = req
        .stream
        .clone()
        .unwrap_or_else(|| token::ANY_STREAM.to_owned());
    if stream != token::ANY_STREAM && !e.camera.streams.iter().any(|s| s.name == stream) {
        return Err(err!(NotFound, "camera {} has no stream {stream:?}", e.id).into());
    }
    let range = match (&req.start, &req.end) {
        (Some(s), Some(t)) => {
            let (s, t) = (parse_time("start", s)?, parse_time("end", t)?);
            if s >= t {
                return Err(err!(InvalidArgument, "end: must be after start").into());
            }
            Some((
                s.as_second(),
                t.as_second() + i64::from(t.subsec_nanosecond() > 0),
            ))
        }
        (None, None) => None,
        _ => return Err(err!(InvalidArgument, "start and end: both or neither").into()),
    };
    let record = c
        .registry
        .get(e.recorder)?
        .ok_or_else(|| err!(NotFound, "camera not found"))?;
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        ver: token::VERSION,
        iss: "vms-central".into(),
        aud: e.recorder,
        sub: u.id,
        name: u.username.clone(),
        cam: e.id,
        stream: stream.clone(),
        pur: purpose,
        from: range.map(|r| r.0),
        to: range.map(|r| r.1),
        iat: now,
        exp: now + c.config.media_token_ttl_secs as i64,
        jti: ulid::Ulid::new().to_string(),
    };
    let token = token::issue(c.pki.token_key(), &claims)?;
    c.audit(
        &u,
        Action::TokenIssued,
        Some(e.id),
        serde_json::json!({"token": claims.jti, "recorder": e.recorder.to_string(), "purpose": purpose.as_str(),
            "stream": stream, "from": claims.from, "to": claims.to, "exp": claims.exp}),
    )
    .await?;
    let (base_url, relayed) = match &record.public_url {
        Some(u) => (u.trim_end_matches('/').to_owned(), false),
        None => (format!("/api/v1/recorders/{}/relay", record.id), true),
    };
    Ok(Json(wire::MediaTokenResponse {
        token,
        expires: jiff::Timestamp::from_second(claims.exp)
            .map_err(|e| err!(Internal, "{e}"))?
            .to_string(),
        recorder: record.id.to_string(),
        base_url,
        relayed,
    }))
}

/// Whether a relayed path is one of the recorder's media endpoints (the only ones relayed).
fn relayable(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts[..] {
        ["api", "v1", "cameras", cam, leaf] => {
            cam.parse::<CameraId>().is_ok()
                && matches!(
                    leaf,
                    "playback.m3u8"
                        | "export.mp4"
                        | "transcoded.mp4"
                        | "snapshot.jpg"
                        | "evidence"
                        | "holds"
                        | "recordings"
                )
        }
        ["api", "v1", "cameras", cam, "segments", file] => {
            cam.parse::<CameraId>().is_ok() && !file.is_empty() && !file.starts_with('.')
        }
        ["api", "v1", "holds", hold] => hold.parse::<vms_core::id::HoldId>().is_ok(),
        _ => false,
    }
}

/// Whether a request carries a token as the recorder reads one: a bearer token, or the
/// `token` query parameter.
fn carries_token(req: &Request) -> bool {
    // Only a media token (a JWS: three dot-separated parts) is relayed: a session token or
    // any other credential sent here never reaches a recorder.
    let jws = |t: &str| t.split('.').count() == 3;
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = || {
        req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
    };
    match bearer {
        Some(b) => jws(b),
        None => query().is_some_and(|t| jws(&t)),
    }
}

/// `/api/v1/recorders/{id}/relay/{path}`: forwards a media request, with its token, to a
/// recorder clients cannot reach, over its channel, and streams the answer back. The
/// recorder checks the token as for a direct request.
async fn relay(
    State(c): State<Arc<Central>>,
    Path((id, path)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let id: RecorderId = path_id(&id, "recorder")?;
    let record = c
        .registry
        .get(id)?
        .ok_or_else(|| err!(NotFound, "recorder not found"))?;
    if record.public_url.is_some() || !relayable(&path) {
        // Recorders clients can reach are not relayed; nor is anything but media.
        return Err(err!(NotFound, "no such relay").into());
    }
    if !carries_token(&req) {
        // Over the channel, a request without a token would act as central itself.
        return Err(err!(Unauthenticated, "a media token is required").into());
    }
    let (parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map_or_else(String::new, |q| format!("?{q}"));
    let mut out = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("/{path}{query}"));
    for name in [
        header::AUTHORIZATION,
        header::RANGE,
        header::IF_NONE_MATCH,
        header::CONTENT_TYPE,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let out = out.body(body).map_err(|e| err!(InvalidArgument, "{e}"))?;
    let camera = path
        .split('/')
        .nth(3)
        .and_then(|c| c.parse::<CameraId>().ok());
    c.audit_as(
        "central",
        Action::Proxy,
        camera,
        serde_json::json!({"recorder": id.to_string(), "method": parts.method.as_str(),
            "endpoint": path.rsplit('/').next().unwrap_or("")}),
    )
    .await?;
    let resp = c.channels.call(id, out, RELAY_DEADLINE).await?;
    let (mut head, body) = resp.into_parts();
    head.headers.remove(header::CONNECTION);
    Ok(Response::from_parts(head, stream_body(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_paths_are_relayed() {
        let cam = CameraId::generate();
        for ok in [
            format!("api/v1/cameras/{cam}/export.mp4"),
            format!("api/v1/cameras/{cam}/segments/20260101T000000Z-main.mp4"),
            format!("api/v1/holds/{}", vms_core::id::HoldId::generate()),
        ] {
            assert!(relayable(&ok), "{ok}");
        }
        for bad in [
            format!("api/v1/cameras/{cam}"),
            "api/v1/cameras".to_owned(),
            format!("api/v1/cameras/{cam}/segments/..%2f"),
            format!("api/v1/cameras/{cam}/segments/.."),
            "api/v1/channel/events".to_owned(),
            "metrics".to_owned(),
            format!("api/v1/cameras/../{cam}/export.mp4"),
        ] {
            assert!(!relayable(&bad), "{bad}");
        }
    }
}

// ---- Audit ----

#[derive(Deserialize)]
struct AuditParams {
    log: Option<String>,
    actor: Option<String>,
    camera: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/audit`: central's log and its copies of the recorders', for national
/// administrators.
async fn audit_log(
    State(c): State<Arc<Central>>,
    Caller(u): Caller,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<wire::AuditPage>> {
    authz::check(&u, Permission::ViewAudit, &authz::republic(), "audit")?;
    let Query(p) = q.map_err(bad_query)?;
    let log = match p.log.as_deref() {
        None => None,
        Some(crate::audit::CENTRAL_LOG) => Some(crate::audit::Log::Central),
        Some(id) => Some(crate::audit::Log::Recorder(
            id.parse().map_err(|e: Error| e.context("log"))?,
        )),
    };
    let filter = crate::audit::Filter {
        log,
        actor: p.actor,
        camera: p
            .camera
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: Error| e.context("camera"))?,
        action: p
            .action
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: Error| e.context("action"))?,
        from: p
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to: p.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
    };
    let page = c
        .audit
        .list(&filter, p.cursor.as_deref(), p.limit.unwrap_or(100))
        .await?;
    let checkpoint = match log {
        Some(l) => c.audit.latest_checkpoint(l)?,
        None => None,
    };
    Ok(Json(wire::AuditPage {
        entries: page
            .entries
            .into_iter()
            .map(|e| wire::AuditEntry {
                log: e.log.to_string(),
                seq: e.record.seq,
                time: e.record.time,
                actor: e.record.actor,
                action: e.record.action,
                camera: e.record.camera.map(|c| c.to_string()),
                details: e.record.details,
                hash: e.record.hash,
            })
            .collect(),
        next_cursor: page.next,
        checkpoint,
    }))
}
