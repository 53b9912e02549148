//! The recorder's link to central (spec/central.md): enrolment, then one persistent TLS
//! channel that the recorder dials and keeps, reconnecting with jittered backoff.
//!
//! - **Enrolment** (once): the one-time token pins the national root by the SHA-256 of its
//!   certificate, so the first TLS connection is checked against that pin. The recorder proves
//!   it holds its Ed25519 key, and central certifies the key (TLS client and evidence
//!   signing) and returns the root and the media-token keys, kept in `{data_dir}/central/`.
//! - **The channel:** TLS 1.3 with that certificate and ALPN `vms-channel/1`; on it the
//!   recorder *serves* its own API over HTTP/2 to central, marking each request as come from
//!   central. Central then opens the event stream ([`events`]), through which the recorder
//!   pushes catalog changes, heartbeats and audit records.
//!
//! Nothing here is needed to record or to serve local users: with central gone, the recorder
//! carries on and the link keeps retrying.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::pkcs8::DecodePublicKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use vms_core::keyfile::write_atomically;
use vms_core::token::TokenKey;
use vms_core::wire::{self, ChannelEvent, EnrolRequest, EnrolResponse};
use vms_core::{Error, IoResultExt, bail, err};

use crate::config::CentralConfig;
use crate::service::Service;

/// ALPN of the channel, and of enrolment.
const ALPN_CHANNEL: &[u8] = b"vms-channel/1";
const ALPN_HTTP1: &[u8] = b"http/1.1";
/// Where the link keeps what enrolment gave it, under the data directory.
const DIR: &str = "central";
const ENROLMENT_FILE: &str = "enrolment.json";
const ROOT_FILE: &str = "root-cert.pem";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the catalog is compared with the last one sent.
const CATALOG_POLL: Duration = Duration::from_secs(1);
/// Audit records per event.
const AUDIT_BATCH: usize = 500;

/// What enrolment gave, kept in `{data_dir}/central/enrolment.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrolment {
    pub central_url: String,
    pub spec_version: String,
    pub heartbeat_interval_ms: u64,
    pub enrolled: String,
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The enrolment kept from before, if the recorder has enrolled.
pub fn load(data_dir: &Path) -> Result<Option<Enrolment>, Error> {
    let path = dir(data_dir).join(ENROLMENT_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| err!(DataLoss, "{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
    }
}

/// Keeps the link up until `stop` fires: enrols first if it must, then dials the channel
/// again and again.
pub async fn run(
    service: Arc<Service>,
    config: CentralConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        let attempt = async {
            let enrolment = match load(&service.data_dir)? {
                Some(e) => e,
                None => enrol(&service, &config).await?,
            };
            channel(&service, &config, &enrolment).await
        };
        let result = tokio::select! {
            r = attempt => r,
            _ = stop.wait_for(|&s| s) => return,
        };
        if let Err(e) = result {
            tracing::warn!(err = %e, central = %config.url, "link to central down");
        }
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let wait = backoff.mul_f64(jitter);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|&s| s) => return,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn host_and_port(url: &str) -> Result<(String, u16, ServerName<'static>), Error> {
    let u = url::Url::parse(url).map_err(|e| err!(InvalidArgument, "central.url: {e}"))?;
    let host = u
        .host_str()
        .ok_or_else(|| err!(InvalidArgument, "central.url: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = u
        .port_or_known_default()
        .ok_or_else(|| err!(InvalidArgument, "central.url: no port"))?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| err!(InvalidArgument, "central.url: host {host:?}: {e}"))?;
    Ok((host, port, name))
}

async fn connect(
    url: &str,
    tls: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let (host, port, name) = host_and_port(url)?;
    let dial = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| err!(Unavailable, "connecting to central {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| err!(Unavailable, "TLS with central {host}:{port}: {e}"))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, dial)
        .await
        .map_err(|_| {
            err!(
                Unavailable,
                "central {host}:{port}: no connection within {CONNECT_TIMEOUT:?}"
            )
        })?
}

/// Checks the server against the root its certificate chain carries, once that root's
/// SHA-256 is the pin from the enrolment token.
#[derive(Debug)]
struct PinnedRoot {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedRoot {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let root = intermediates
            .iter()
            .find(|c| vms_core::hex::sha256(c.as_ref()) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General("central's chain does not hold the pinned root".into())
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone().into_owned())?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?
        .verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS of an enrolment (spec/central.md, "Enrolment"): TLS 1.3, ALPN `http/1.1`, no
/// client certificate, and central trusted only through the root its chain holds whose
/// SHA-256 `token` pins. Public so that every enrolling client, the benchmarks' simulated
/// recorders too, trusts central exactly as the recorder does.
pub fn enrolment_tls(token: &str) -> Result<rustls::ClientConfig, Error> {
    let pin = token
        .rsplit('.')
        .next()
        .filter(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| err!(InvalidArgument, "not an enrolment token"))?
        .to_ascii_lowercase();
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err!(Internal, "TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedRoot { pin, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(tls)
}

/// The TLS of the channel (spec/central.md, "The channel"): TLS 1.3, ALPN `vms-channel/1`,
/// the certificate central issued (`cert_pem`) with its key as client certificate, and only
/// the root certificate enrolment gave (`root_pem`) trusted. Public for the same reason as
/// [`enrolment_tls`].
pub fn channel_tls(
    root_pem: &str,
    cert_pem: &str,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, Error> {
    let root = pem_der(root_pem, "central root certificate")?;
    let cert = pem_der(cert_pem, "recorder certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(root)
        .map_err(|e| err!(DataLoss, "central root certificate: {e}"))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err!(Internal, "TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| err!(Internal, "TLS client certificate: {e}"))?;
    tls.alpn_protocols = vec![ALPN_CHANNEL.to_vec()];
    Ok(tls)
}

/// Enrols with the configured one-time token and keeps what central gives.
async fn enrol(service: &Arc<Service>, config: &CentralConfig) -> Result<Enrolment, Error> {
    let token = config.enrolment_token.as_deref().ok_or_else(|| {
        err!(
            FailedPrecondition,
            "central.enrolment_token: needed until this recorder has enrolled"
        )
    })?;
    let tls = enrolment_tls(token).map_err(|e| e.context("central.enrolment_token"))?;
    let stream = connect(&config.url, tls).await?;

    let key = &service.evidence_key;
    let public_key_pem = key.public_key().pem().to_owned();
    let recorder = service.id.to_string();
    let proof = key.sign(&wire::enrol_proof_bytes(token, &recorder, &public_key_pem));
    let req = EnrolRequest {
        token: token.to_owned(),
        spec_versions: vec![wire::SPEC_VERSION.to_owned()],
        recorder,
        name: config.name.clone(),
        region: config.region.to_string(),
        public_key_pem,
        proof: vms_core::hex::encode(&proof),
        public_url: config.public_url.clone(),
    };
    let body = serde_json::to_vec(&req).map_err(|e| err!(Internal, "{e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| err!(Unavailable, "enrolment: {e}"))?;
    tokio::spawn(conn);
    let (host, port, _) = host_and_port(&config.url)?;
    let request = hyper::Request::post("/api/v1/enrol")
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .map_err(|e| err!(Internal, "{e}"))?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| err!(Unavailable, "enrolment: {e}"))?;
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| err!(Unavailable, "enrolment: {e}"))?
        .to_bytes();
    if !status.is_success() {
        let msg = serde_json::from_slice::<wire::ErrorBody>(&bytes)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| status.to_string());
        bail!(FailedPrecondition, "central refused the enrolment: {msg}");
    }
    let resp: EnrolResponse =
        serde_json::from_slice(&bytes).map_err(|e| err!(Unavailable, "enrolment answer: {e}"))?;
    let enrolment = Enrolment {
        central_url: config.url.clone(),
        spec_version: resp.spec_version.clone(),
        heartbeat_interval_ms: resp.heartbeat_interval_ms.clamp(1000, 60_000),
        enrolled: jiff::Timestamp::now().to_string(),
    };
    let service = service.clone();
    tokio::task::spawn_blocking(move || keep(&service, &resp, &enrolment).map(|()| enrolment))
        .await
        .map_err(|e| err!(Internal, "{e}"))?
}

/// Stores what enrolment gave (the enrolment record last, so a crash midway enrols again)
/// and puts the certificate and token keys to use.
fn keep(service: &Service, resp: &EnrolResponse, enrolment: &Enrolment) -> Result<(), Error> {
    let keys = resp
        .token_keys
        .iter()
        .map(|k| {
            let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&k.public_key_pem)
                .map_err(|e| err!(InvalidArgument, "central's token key {}: {e}", k.kid))?;
            let key = TokenKey::new(key);
            if key.kid != k.kid {
                bail!(
                    InvalidArgument,
                    "central's token key {}: its kid is {}",
                    k.kid,
                    key.kid
                );
            }
            Ok(key)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let d = dir(&service.data_dir);
    std::fs::create_dir_all(&d).io_context(|| format!("creating {}", d.display()))?;
    write_atomically(&d.join(ROOT_FILE), resp.root_certificate_pem.as_bytes())?;
    crate::auth::store_token_keys(&service.data_dir, &keys)?;
    service
        .evidence_key
        .set_certificate(&service.data_dir, &resp.certificate_pem)?;
    service.set_token_keys(keys);
    let json = serde_json::to_vec_pretty(enrolment).map_err(|e| err!(Internal, "{e}"))?;
    write_atomically(&d.join(ENROLMENT_FILE), &json)?;
    tracing::info!(spec_version = %enrolment.spec_version, "enrolled with central");
    Ok(())
}

fn pem_der(pem: &str, what: &str) -> Result<CertificateDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| err!(DataLoss, "{what}: {e}"))
}

/// Dials the channel and serves the recorder API on it until it closes.
async fn channel(
    service: &Arc<Service>,
    config: &CentralConfig,
    enrolment: &Enrolment,
) -> Result<(), Error> {
    let d = dir(&service.data_dir);
    let root_pem = std::fs::read_to_string(d.join(ROOT_FILE))
        .io_context(|| format!("reading {}", d.join(ROOT_FILE).display()))?;
    let cert_pem = service.evidence_key.certificate().ok_or_else(|| {
        err!(
            FailedPrecondition,
            "enrolled, but the certificate is missing"
        )
    })?;
    let tls = channel_tls(
        &root_pem,
        &cert_pem,
        PrivateKeyDer::Pkcs8(service.evidence_key.pkcs8_der()?),
    )?;
    // The configured address wins over the one enrolled with (central may move); the trust
    // stays what enrolment gave.
    if config.url != enrolment.central_url {
        tracing::info!(enrolled = %enrolment.central_url, now = %config.url, "central's address changed");
    }
    let stream = connect(&config.url, tls).await?;
    tracing::info!(central = %config.url, "channel to central up");
    let router = crate::api::router(service.clone()).layer(axum::middleware::map_request(
        |mut req: Request| async move {
            req.extensions_mut().insert(crate::auth::ChannelPeer);
            req
        },
    ));
    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(router),
        )
        .await
        .map_err(|e| err!(Unavailable, "channel: {e}"))
}

/// Where central's copy stands, from `GET /api/v1/channel/events`.
#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    catalog_epoch: String,
    #[serde(default)]
    catalog_seq: u64,
    #[serde(default)]
    audit_seq: u64,
}

/// `GET /api/v1/channel/events`: the NDJSON stream of what the recorder pushes to central,
/// from the versions central says it holds. Only central, over the channel, may open it.
pub async fn events(
    State(service): State<Arc<Service>>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return crate::api::bad_query(e).into_response(),
    };
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        if let Err(e) = push(&service, q, &tx).await {
            tracing::info!(err = %e, "event stream to central ended");
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(tokio_stream_from(rx)),
    )
        .into_response()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

type Tx = mpsc::Sender<Result<bytes::Bytes, std::io::Error>>;

async fn send(tx: &Tx, event: &ChannelEvent) -> Result<(), Error> {
    let mut line = serde_json::to_vec(event).map_err(|e| err!(Internal, "{e}"))?;
    line.push(b'\n');
    tx.send(Ok(line.into()))
        .await
        .map_err(|_| err!(Unavailable, "central closed the event stream"))
}

/// Feeds one event stream until central closes it.
async fn push(service: &Arc<Service>, q: EventsQuery, tx: &Tx) -> Result<(), Error> {
    let heartbeat = load(&service.data_dir)?.map_or(Duration::from_secs(5), |e| {
        Duration::from_millis(e.heartbeat_interval_ms)
    });
    send(
        tx,
        &ChannelEvent::Hello {
            recorder: service.id.to_string(),
            spec_version: wire::SPEC_VERSION.to_owned(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    )
    .await?;
    let log = &service.catalog;
    let (mut epoch, mut seq) = (q.catalog_epoch, q.catalog_seq);
    let mut catalog_tick = tokio::time::interval(CATALOG_POLL);
    let mut heartbeat_tick = tokio::time::interval(heartbeat);
    // The audit head is signed for central with each heartbeat in which the log moved.
    let mut checkpoint_tick = tokio::time::interval(heartbeat);
    let mut appended = service.audit_log().subscribe();
    let mut shipped = q.audit_seq;
    let mut signed = None;
    ship_audit(service, tx, &mut shipped).await?;
    loop {
        tokio::select! {
            Ok(()) = appended.changed() => ship_audit(service, tx, &mut shipped).await?,
            _ = checkpoint_tick.tick() => {
                // A signed head whenever the log moved since the last one.
                let head = service.audit_log().head();
                if signed.as_ref() != Some(&head) {
                    let key = &service.evidence_key;
                    let checkpoint = service.audit_log().checkpoint(|b| key.sign(b), &service.id.to_string());
                    send(tx, &ChannelEvent::Checkpoint { checkpoint }).await?;
                    signed = Some(head);
                }
            }
            _ = catalog_tick.tick() => {
                log.refresh(service.catalog_now().await);
                for ev in log.since(&epoch, seq) {
                    if let ChannelEvent::CatalogFull { seq: s, .. } | ChannelEvent::CatalogDelta { seq: s, .. } = &ev {
                        (epoch, seq) = (log.epoch().to_owned(), *s);
                    }
                    send(tx, &ev).await?;
                }
            }
            _ = heartbeat_tick.tick() => {
                send(tx, &ChannelEvent::Heartbeat {
                    time: jiff::Timestamp::now().to_string(),
                    status: service.status_summary().await,
                }).await?;
            }
            () = tx.closed() => return Ok(()),
        }
    }
}

/// Sends the audit records after `shipped`, in batches, and moves `shipped` on.
async fn ship_audit(service: &Arc<Service>, tx: &Tx, shipped: &mut u64) -> Result<(), Error> {
    loop {
        let (s, after) = (service.clone(), *shipped);
        let records =
            tokio::task::spawn_blocking(move || s.audit_log().records_after(after, AUDIT_BATCH))
                .await
                .map_err(|e| err!(Internal, "{e}"))??;
        let Some(last) = records.last() else {
            return Ok(());
        };
        let seq = vms_core::audit::Record::parse(last.as_bytes())
            .map_err(|e| err!(DataLoss, "audit log: {e}"))?
            .seq;
        let n = records.len();
        send(tx, &ChannelEvent::Audit { records }).await?;
        *shipped = seq;
        if n < AUDIT_BATCH {
            return Ok(());
        }
    }
}
