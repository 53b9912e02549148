//! The recorders' TLS port and the channels on it (spec/central.md, "The channel").
//!
//! A recorder dials out and keeps one TLS connection open. With ALPN `http/1.1` and no
//! client certificate it may only enrol. With ALPN `vms-channel/1` and the client
//! certificate central issued it, the connection becomes its channel: the roles turn round,
//! the recorder serves HTTP/2 and central is the client, so every central-to-recorder request
//! (catalog, fan-out, camera changes, relayed media) is a stream of that one connection and
//! central never needs a route to the recorder. The first request central sends is the
//! recorder's event stream, which carries what the recorder pushes: catalog, heartbeats,
//! audit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use vms_core::id::RecorderId;
use vms_core::wire::ChannelEvent;
use vms_core::{Error, bail, err};

use crate::catalog::Version;
use crate::pki::ALPN_CHANNEL;
use crate::registry::RecorderRecord;
use crate::service::Central;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest event line (a full catalog of a very large recorder).
const MAX_EVENT_BYTES: usize = 256 << 20;
/// The HTTP/2 pings that notice a dead peer.
const KEEPALIVE: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Link {
    sender: SendRequest<Body>,
    generation: u64,
}

/// The open channels, by recorder.
#[derive(Default)]
pub struct Channels {
    links: Mutex<HashMap<RecorderId, Link>>,
    generation: AtomicU64,
}

impl Channels {
    fn insert(&self, id: RecorderId, sender: SendRequest<Body>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        self.links
            .lock()
            .expect("channels lock")
            .insert(id, Link { sender, generation });
        generation
    }

    /// Forgets the channel, unless a newer one replaced it already.
    fn remove(&self, id: RecorderId, generation: u64) {
        let mut links = self.links.lock().expect("channels lock");
        if links.get(&id).is_some_and(|l| l.generation == generation) {
            links.remove(&id);
        }
    }

    pub fn is_open(&self, id: RecorderId) -> bool {
        self.links.lock().expect("channels lock").contains_key(&id)
    }

    /// Sends a request to a recorder over its channel. `path_and_query` is the recorder API
    /// path. The answer's head arrives within `deadline`, or the call fails `Unavailable`.
    pub async fn call(
        &self,
        id: RecorderId,
        mut req: Request<Body>,
        deadline: Duration,
    ) -> Result<Response<hyper::body::Incoming>, Error> {
        let link = self
            .links
            .lock()
            .expect("channels lock")
            .get(&id)
            .cloned()
            .ok_or_else(|| err!(Unavailable, "recorder {id} has no channel open"))?;
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = channel_uri(id, &pq)?;
        let mut sender = link.sender;
        let call = async {
            sender
                .ready()
                .await
                .map_err(|e| err!(Unavailable, "recorder {id}: channel closed: {e}"))?;
            sender
                .send_request(req)
                .await
                .map_err(|e| err!(Unavailable, "recorder {id}: {e}"))
        };
        tokio::time::timeout(deadline, call)
            .await
            .map_err(|_| err!(Unavailable, "recorder {id}: no answer within {deadline:?}"))?
    }

    /// A JSON request and its JSON answer, the whole within `deadline`. A recorder's error
    /// answer comes back as an error of the matching kind.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        id: RecorderId,
        method: hyper::Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        deadline: Duration,
    ) -> Result<T, Error> {
        let started = tokio::time::Instant::now();
        let mut req = Request::builder().method(method).uri(path_and_query);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|e| err!(Internal, "building a recorder request: {e}"))?;
        let resp = self.call(id, req, deadline).await?;
        let status = resp.status();
        let left = deadline.saturating_sub(started.elapsed());
        let bytes = tokio::time::timeout(left, resp.into_body().collect())
            .await
            .map_err(|_| {
                err!(
                    Unavailable,
                    "recorder {id}: answer not complete within {deadline:?}"
                )
            })?
            .map_err(|e| err!(Unavailable, "recorder {id}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(recorder_error(id, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            err!(
                Unavailable,
                "recorder {id}: answer is not the expected JSON: {e}"
            )
        })
    }
}

/// The URI of a recorder API path on a recorder's channel. HTTP/2 wants a scheme and an
/// authority; the channel itself says who the peer is, so the authority only names it.
fn channel_uri(id: RecorderId, path_and_query: &str) -> Result<hyper::Uri, Error> {
    format!("https://{id}.recorder.vms{path_and_query}")
        .parse()
        .map_err(|e| err!(InvalidArgument, "bad recorder path {path_and_query:?}: {e}"))
}

/// A recorder's error answer, as an error of the kind its status says.
pub fn recorder_error(id: RecorderId, status: StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<vms_core::wire::ErrorBody>(body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| status.to_string());
    let kind = match status.as_u16() {
        400 | 413 | 422 => vms_core::ErrorKind::InvalidArgument,
        404 => vms_core::ErrorKind::NotFound,
        409 => vms_core::ErrorKind::AlreadyExists,
        403 => vms_core::ErrorKind::PermissionDenied,
        _ => vms_core::ErrorKind::Unavailable,
    };
    Error::new(kind, format!("recorder {id}: {message}"))
}

/// Accepts recorders' connections until `shutdown` fires.
pub async fn serve(
    central: Arc<Central>,
    listener: TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(err = %e, "channel port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = crate::service::stopped(&mut shutdown) => return,
        };
        let central = central.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(central, tcp).await {
                tracing::info!(%peer, err = %e, "recorder connection ended");
            }
        });
    }
}

async fn connection(central: Arc<Central>, tcp: TcpStream) -> Result<(), Error> {
    let _ = tcp.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(central.pki.server_config());
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| err!(Unavailable, "TLS handshake timed out"))?
        .map_err(|e| err!(Unauthenticated, "TLS handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    if session.alpn_protocol() != Some(ALPN_CHANNEL) {
        // Enrolment: plain HTTP/1.1, no client certificate needed.
        let router = crate::api::enrolment_router(central.clone());
        let service = hyper_util::service::TowerToHyperService::new(router);
        return hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HANDSHAKE_TIMEOUT)
            .serve_connection(TokioIo::new(tls), service)
            .await
            .map_err(|e| err!(Unavailable, "enrolment connection: {e}"));
    }
    let der = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| {
            err!(
                Unauthenticated,
                "a channel needs the recorder's certificate"
            )
        })?
        .to_vec();
    let registry = central.registry.clone();
    let record = tokio::task::spawn_blocking(move || registry.by_certificate(&der))
        .await
        .map_err(|e| err!(Internal, "{e}"))??
        .ok_or_else(|| {
            err!(
                Unauthenticated,
                "the certificate is not one central issued last"
            )
        })?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE * 2)
        .keep_alive_while_idle(true)
        .handshake::<_, Body>(TokioIo::new(tls))
        .await
        .map_err(|e| err!(Unavailable, "HTTP/2 handshake: {e}"))?;
    let id = record.id;
    let generation = central.channels.insert(id, sender.clone());
    central.registry.heartbeat(id, None);
    tracing::info!(recorder = %id, name = %record.name, "channel up");
    let events = async {
        loop {
            match subscribe(&central, &record, sender.clone()).await {
                // The recorder's catalog did not follow on: ask again, and get it whole.
                Err(e) if e.kind() == vms_core::ErrorKind::FailedPrecondition => {
                    tracing::warn!(recorder = %id, err = %e, "resubscribing");
                }
                r => return r,
            }
        }
    };
    let result = tokio::select! {
        r = conn => r.map_err(|e| err!(Unavailable, "channel: {e}")),
        r = events => r,
    };
    central.channels.remove(id, generation);
    central.registry.set_offline(id, "channel closed");
    result
}

/// Opens the recorder's event stream from where central's store stands, and applies what
/// comes until it ends.
async fn subscribe(
    central: &Arc<Central>,
    record: &RecorderRecord,
    mut sender: SendRequest<Body>,
) -> Result<(), Error> {
    let id = record.id;
    let version = central.catalog.version(id)?;
    let audit_seq = central.audit.head(id)?.seq;
    let uri = channel_uri(
        id,
        &format!(
            "/api/v1/channel/events?catalog_epoch={}&catalog_seq={}&audit_seq={audit_seq}",
            version.as_ref().map_or("", |v| v.epoch.as_str()),
            version.as_ref().map_or(0, |v| v.seq),
        ),
    )?;
    let req = Request::get(uri)
        .body(Body::empty())
        .map_err(|e| err!(Internal, "{e}"))?;
    sender
        .ready()
        .await
        .map_err(|e| err!(Unavailable, "channel closed: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| err!(Unavailable, "event stream: {e}"))?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(recorder_error(id, status, &body));
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    loop {
        while let Some(n) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(n + 1);
            apply(central, record, &line[..n]).await?;
        }
        if buf.len() > MAX_EVENT_BYTES {
            bail!(
                InvalidArgument,
                "recorder {id}: an event line over {MAX_EVENT_BYTES} bytes"
            );
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
            Some(Err(e)) => bail!(Unavailable, "recorder {id}: event stream: {e}"),
            None => return Ok(()),
        }
    }
}

async fn apply(central: &Arc<Central>, record: &RecorderRecord, line: &[u8]) -> Result<(), Error> {
    let id = record.id;
    let event: ChannelEvent = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(recorder = %id, err = %e, "undecodable channel event skipped");
            return Ok(());
        }
    };
    match event {
        ChannelEvent::Hello { spec_version, .. } => {
            if spec_version != record.spec_version {
                tracing::warn!(recorder = %id, %spec_version, agreed = %record.spec_version,
                    "recorder speaks another spec version than it enrolled with");
            }
            Ok(())
        }
        ChannelEvent::CatalogFull {
            epoch,
            seq,
            cameras,
        } => {
            let (c, region) = (central.clone(), record.region);
            let n = blocking(move || {
                c.catalog
                    .apply_full(id, &region, Version { epoch, seq }, cameras)
            })
            .await?;
            tracing::info!(recorder = %id, cameras = n, "catalog resynchronised");
            Ok(())
        }
        ChannelEvent::CatalogDelta {
            epoch,
            seq,
            upserts,
            removed,
        } => {
            let (c, region) = (central.clone(), record.region);
            blocking(move || {
                c.catalog
                    .apply_delta(id, &region, Version { epoch, seq }, upserts, &removed)
            })
            .await
        }
        ChannelEvent::Heartbeat { status, .. } => {
            central.registry.heartbeat(id, Some(status));
            Ok(())
        }
        // A log that does not continue central's copy is refused and reported, and the
        // channel stays up: recording, catalog and heartbeats are not the audit's hostages.
        ChannelEvent::Audit { records } => {
            if let Err(e) = central.audit.ingest(id, &records).await {
                tracing::error!(recorder = %id, err = %e, "audit records refused");
            }
            Ok(())
        }
        ChannelEvent::Checkpoint { checkpoint } => {
            let key = recorder_key(record)?;
            if let Err(e) = central.audit.store_checkpoint(id, &checkpoint, &key).await {
                tracing::error!(recorder = %id, err = %e, "audit checkpoint refused");
            }
            Ok(())
        }
        ChannelEvent::Unknown => Ok(()),
    }
}

/// Runs store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err!(Internal, "a blocking task failed: {e}"))?
}

/// The body of a relayed answer, as bytes as they come.
pub fn stream_body(body: hyper::body::Incoming) -> Body {
    Body::new(
        body.map_err(axum::Error::new)
            .map_frame(|f| f.map_data(Bytes::from)),
    )
}

/// A recorder's certified key, as it enrolled with it.
pub fn recorder_key(record: &RecorderRecord) -> Result<ed25519_dalek::VerifyingKey, Error> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    ed25519_dalek::VerifyingKey::from_public_key_pem(&record.public_key_pem)
        .map_err(|e| err!(DataLoss, "recorder {}: its stored key: {e}", record.id))
}
