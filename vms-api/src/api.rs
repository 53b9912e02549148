//! Central's HTTP APIs (spec/central.md, spec/openapi/central.yaml): the client API under
//! `/api/v1` on the API port, and enrolment on the recorders' TLS port. Error kinds map to
//! HTTP status here, once.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use vms_core::wire;
use vms_core::{Error, err};

use crate::channel::blocking;
use crate::service::{Central, heartbeat_interval};

mod client;
pub use client::router;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error on its way to the client, with a status when its kind alone does not say it,
/// and how long to wait before retrying (`Retry-After`) when it is a 429.
pub struct ApiError(pub Error, pub Option<StatusCode>, pub Option<u64>);

impl ApiError {
    pub fn with_retry_after(mut self, secs: Option<u64>) -> ApiError {
        self.2 = secs.map(|s| s.max(1));
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e, None, None)
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
        let body = wire::ErrorBody::of(&self.0, status.as_u16(), "central's log");
        let mut r = (status, Json(body)).into_response();
        if let Some(secs) = self.2 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A body axum refused: 413 for one over the size limit, 400 for anything else.
pub fn bad_json(e: JsonRejection) -> ApiError {
    let status = (e.status() == StatusCode::PAYLOAD_TOO_LARGE).then_some(e.status());
    ApiError(err!(InvalidArgument, "{}", e.body_text()), status, None)
}

pub fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(err!(InvalidArgument, "{}", e.body_text()), None, None)
}

fn traced<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
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
}

/// What the recorders' port serves before a recorder has its certificate.
pub fn enrolment_router(central: Arc<Central>) -> Router {
    traced(
        Router::new()
            .route("/api/v1/health", get(health))
            .route("/api/v1/enrol", post(enrol)),
    )
    .with_state(central)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "service": "central",
        "spec_version": wire::SPEC_VERSION,
        "software_version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn enrol(
    State(c): State<Arc<Central>>,
    body: Result<Json<wire::EnrolRequest>, JsonRejection>,
) -> ApiResult<Json<wire::EnrolResponse>> {
    let Json(req) = body.map_err(bad_json)?;
    let central = c.clone();
    let (record, resp) = blocking(move || {
        central
            .registry
            .enrol(&central.pki, &req, heartbeat_interval(&central.config))
    })
    .await?;
    tracing::info!(recorder = %record.id, name = %record.name, region = %record.region, "recorder enrolled");
    c.audit_as(
        &format!("recorder:{}", record.id),
        vms_core::audit::Action::RecorderEnrolled,
        None,
        serde_json::json!({"name": record.name, "region": record.region.to_string(),
            "spec_version": record.spec_version}),
    )
    .await?;
    Ok(Json(resp))
}
