//! `vms-fake-recorder`: many light simulated recorders in one process, for central's
//! benchmarks (`tests/bench/central.sh`). Each has its own id and Ed25519 key, enrols with
//! central for real (spec/central.md, "Enrolment") and keeps a real channel ("The channel"),
//! on which it serves over HTTP/2 exactly what central asks of a recorder:
//!
//! - `GET /api/v1/channel/events`: `hello`, one `catalog_full` of its generated cameras
//!   (unless central already holds that version), then a `heartbeat` every interval;
//! - `POST /api/v1/recordings/query`: after the recorder's configured delay, one recorded
//!   range per camera it has over the range asked, the others under `unknown`.
//!
//! Nothing is recorded and nothing else is served. Cameras are named `Cam 00042 Abay ave`
//! (numbered across all recorders) so that text searches have something to match, and spread
//! over the KATO level below their recorder's region. Once every recorder has handed its
//! catalog to its channel, it prints one JSON line: the recorders, their regions, delays and
//! when their channels came up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clap::Parser;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use vms_core::id::{CameraId, RecorderId, RunId};
use vms_core::region::RegionCode;
use vms_core::wire::{self, ChannelEvent};
use vms_recorder::link::{channel_tls, enrolment_tls};

/// Street names that camera names end with.
const STREETS: [&str; 16] = [
    "Abay ave",
    "Dostyk ave",
    "Satpaev st",
    "Tole bi st",
    "Furmanov st",
    "Al-Farabi ave",
    "Raiymbek ave",
    "Zhibek Zholy st",
    "Kabanbay batyr st",
    "Gogol st",
    "Baitursynov st",
    "Seifullin ave",
    "Timiryazev st",
    "Zheltoksan st",
    "Bogenbay batyr st",
    "Kenesary st",
];
const CLASSES: [&str; 3] = ["city", "safe_yard", "traffic"];
/// Where the KATO levels end (digits of a code).
const LEVEL_ENDS: [usize; 5] = [0, 2, 4, 6, 9];
/// Most time a dial (TCP and TLS) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Simulated recorders for central's benchmarks.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Central's recorder port, `https://HOST:PORT`.
    #[arg(long)]
    central: String,
    /// One-time enrolment tokens, one a line; recorder i enrols with the i-th.
    #[arg(long)]
    token_file: PathBuf,
    /// How many recorders. Default: one a token.
    #[arg(long)]
    count: Option<usize>,
    /// Cameras of each recorder.
    #[arg(long, default_value_t = 1000)]
    cameras_per_recorder: usize,
    /// Region codes, comma-separated: recorder i serves the (i mod n)-th, and its token must
    /// be for that region or one above it.
    #[arg(long, value_delimiter = ',', required = true)]
    regions: Vec<RegionCode>,
    /// How long a recordings query waits before its answer: `D` milliseconds for every
    /// recorder, or `LO..HI`, spread evenly from LO (the first recorder) to HI (the last).
    #[arg(long, default_value = "0")]
    delay_ms: DelaySpread,
}

/// A delay per recorder, in milliseconds.
#[derive(Clone, Copy)]
struct DelaySpread {
    lo: f64,
    hi: f64,
}

impl FromStr for DelaySpread {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let ms = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| format!("{v:?} is not a number of milliseconds"))
        };
        let (lo, hi) = match s.split_once("..") {
            Some((lo, hi)) => (ms(lo)?, ms(hi)?),
            None => (ms(s)?, ms(s)?),
        };
        if lo > hi {
            return Err(format!("{s}: the first delay is the shorter"));
        }
        Ok(DelaySpread { lo, hi })
    }
}

impl DelaySpread {
    fn of(self, i: usize, count: usize) -> Duration {
        let share = if count > 1 {
            i as f64 / (count - 1) as f64
        } else {
            0.0
        };
        Duration::from_secs_f64((self.lo + (self.hi - self.lo) * share) / 1000.0)
    }
}

/// One simulated recorder.
struct Sim {
    id: RecorderId,
    name: String,
    region: RegionCode,
    key: SigningKey,
    delay: Duration,
    /// The catalog's epoch: new at every start of the process, as the recorder's.
    epoch: String,
    /// The `catalog_full` event line, made once.
    catalog: Bytes,
    cameras: HashSet<String>,
    heartbeat: wire::RecorderStatus,
    heartbeat_interval_ms: AtomicU64,
    /// Unix milliseconds when the first channel's TLS came up; 0 before.
    channel_up_unix_ms: AtomicU64,
    /// Whether the first catalog has been handed to a channel.
    sent: AtomicBool,
    ready: mpsc::Sender<anyhow::Result<()>>,
}

/// The region of a recorder's `j`-th camera: the recorder's own, with the KATO level below it
/// set to one of ten values.
fn camera_region(recorder: &RegionCode, j: usize) -> RegionCode {
    let level = recorder.ancestors().count();
    let Some(&end) = LEVEL_ENDS.get(level + 1) else {
        return *recorder;
    };
    let start = LEVEL_ENDS[level];
    let mut code = recorder.as_str().to_owned();
    let width = end - start;
    let value = 10usize.pow(width as u32 - 1) + j % 10;
    code.replace_range(start..end, &format!("{value:0width$}"));
    code.parse().unwrap_or(*recorder)
}

fn catalog_camera(region: &RegionCode, n: usize) -> wire::CatalogCamera {
    wire::CatalogCamera {
        id: CameraId::generate().to_string(),
        name: format!("Cam {n:05} {}", STREETS[n % STREETS.len()]),
        region: region.to_string(),
        class: CLASSES[n % CLASSES.len()].to_owned(),
        code: Some(format!("{region}131{n:08}")),
        location: Some(wire::Location {
            lat_deg: 41.0 + (n * 37 % 1400) as f64 / 100.0,
            lon_deg: 47.0 + (n * 91 % 4000) as f64 / 100.0,
        }),
        status: "online".to_owned(),
        streams: ["main", "sub"]
            .map(|name| wire::CatalogStream {
                name: name.to_owned(),
                connected: true,
                conformance: Some("pass".to_owned()),
            })
            .to_vec(),
    }
}

impl Sim {
    fn new(
        i: usize,
        args: &Args,
        count: usize,
        epoch: &str,
        ready: mpsc::Sender<anyhow::Result<()>>,
    ) -> anyhow::Result<Sim> {
        let id = RecorderId::generate();
        let region = args.regions[i % args.regions.len()];
        let m = args.cameras_per_recorder;
        let cameras: Vec<wire::CatalogCamera> = (0..m)
            .map(|j| catalog_camera(&camera_region(&region, j), i * m + j))
            .collect();
        let ids = cameras.iter().map(|c| c.id.clone()).collect();
        let mut catalog = serde_json::to_vec(&ChannelEvent::CatalogFull {
            epoch: epoch.to_owned(),
            seq: 1,
            cameras,
        })?;
        catalog.push(b'\n');
        Ok(Sim {
            id,
            name: format!("fake recorder {i:03}"),
            region,
            key: SigningKey::from_bytes(&rand::random()),
            delay: args.delay_ms.of(i, count),
            epoch: epoch.to_owned(),
            catalog: catalog.into(),
            cameras: ids,
            heartbeat: wire::RecorderStatus {
                cameras: m as u32,
                streams: 2 * m as u32,
                streams_up: 2 * m as u32,
                alerts: 0,
            },
            heartbeat_interval_ms: AtomicU64::new(5000),
            channel_up_unix_ms: AtomicU64::new(0),
            sent: AtomicBool::new(false),
            ready,
        })
    }
}

/// What enrolment gave a recorder.
struct Enrolled {
    root_pem: String,
    cert_pem: String,
}

/// TCP and TLS to central.
async fn dial(
    central: &url::Url,
    tls: rustls::ClientConfig,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let host = central
        .host_str()
        .context("--central: no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = central
        .port_or_known_default()
        .context("--central: no port")?;
    let name = ServerName::try_from(host.clone())?;
    let connect = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await?;
        anyhow::Ok(tls)
    };
    tokio::time::timeout(DIAL_TIMEOUT, connect)
        .await
        .context("dialling central timed out")?
}

/// `POST /api/v1/enrol` with a proof of the recorder's key.
async fn enrol(central: &url::Url, sim: &Sim, token: &str) -> anyhow::Result<Enrolled> {
    let stream = dial(central, enrolment_tls(token)?).await?;
    let public_key_pem = sim.key.verifying_key().to_public_key_pem(LineEnding::LF)?;
    let recorder = sim.id.to_string();
    let proof = ed25519_dalek::Signer::sign(
        &sim.key,
        &wire::enrol_proof_bytes(token, &recorder, &public_key_pem),
    );
    let body = serde_json::to_vec(&wire::EnrolRequest {
        token: token.to_owned(),
        spec_versions: vec![wire::SPEC_VERSION.to_owned()],
        recorder,
        name: sim.name.clone(),
        region: sim.region.to_string(),
        public_key_pem,
        proof: proof
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        public_url: None,
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/api/v1/enrol")
        .header(hyper::header::HOST, central.authority())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{}: enrolment refused ({status}): {}",
            sim.name,
            String::from_utf8_lossy(&bytes)
        );
    }
    let resp: wire::EnrolResponse = serde_json::from_slice(&bytes)?;
    sim.heartbeat_interval_ms
        .store(resp.heartbeat_interval_ms.max(100), Ordering::Relaxed);
    Ok(Enrolled {
        root_pem: resp.root_certificate_pem,
        cert_pem: resp.certificate_pem,
    })
}

/// Dials the channel and serves the recorder's endpoints on it until it closes.
async fn channel(central: &url::Url, sim: &Arc<Sim>, enrolled: &Enrolled) -> anyhow::Result<()> {
    let key = PrivatePkcs8KeyDer::from(sim.key.to_pkcs8_der()?.as_bytes().to_vec());
    let tls = channel_tls(
        &enrolled.root_pem,
        &enrolled.cert_pem,
        PrivateKeyDer::Pkcs8(key),
    )?;
    let stream = dial(central, tls).await?;
    let now_ms = jiff::Timestamp::now().as_millisecond() as u64;
    let _ =
        sim.channel_up_unix_ms
            .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
    // Central pings the channel; this end only answers.
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(router(sim.clone())),
        )
        .await?;
    Ok(())
}

/// Enrols, then keeps the channel up, dialling again after a failure with a doubling,
/// jittered backoff (1 s to 30 s).
async fn run_recorder(central: url::Url, sim: Arc<Sim>, token: String) {
    let enrolled = match enrol(&central, &sim, &token).await {
        Ok(e) => e,
        Err(e) => {
            let _ = sim.ready.send(Err(e)).await;
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let up_since = tokio::time::Instant::now();
        let end = channel(&central, &sim, &enrolled).await;
        tracing::warn!(recorder = %sim.id, result = ?end, "channel ended");
        if up_since.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff.mul_f64(0.8 + 0.4 * rand::random::<f64>())).await;
        backoff = MAX_BACKOFF.min(backoff * 2);
    }
}

fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/channel/events", axum::routing::get(events))
        .route(
            "/api/v1/recordings/query",
            axum::routing::post(recordings_query),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(sim)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = wire::ErrorBody {
        error: wire::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    };
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    catalog_epoch: String,
    #[serde(default)]
    catalog_seq: u64,
}

fn line(event: &ChannelEvent) -> Bytes {
    let mut line = serde_json::to_vec(event).expect("events serialise");
    line.push(b'\n');
    line.into()
}

/// `GET /api/v1/channel/events`.
async fn events(State(sim): State<Arc<Sim>>, Query(q): Query<EventsQuery>) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(1);
    tokio::spawn(async move {
        let hello = line(&ChannelEvent::Hello {
            recorder: sim.id.to_string(),
            spec_version: wire::SPEC_VERSION.to_owned(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        if (q.catalog_epoch.as_str(), q.catalog_seq) != (sim.epoch.as_str(), 1) {
            if tx.send(Ok(sim.catalog.clone())).await.is_err() {
                return;
            }
            if !sim.sent.swap(true, Ordering::Relaxed) {
                let _ = sim.ready.send(Ok(())).await;
            }
        }
        let interval = Duration::from_millis(sim.heartbeat_interval_ms.load(Ordering::Relaxed));
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let heartbeat = line(&ChannelEvent::Heartbeat {
                time: jiff::Timestamp::now().to_string(),
                status: sim.heartbeat.clone(),
            });
            if tx.send(Ok(heartbeat)).await.is_err() {
                return;
            }
        }
    });
    let body = axum::body::Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

/// `POST /api/v1/recordings/query`: one range over the whole span asked for each camera this
/// recorder has, answered the recorder's delay after the request came.
async fn recordings_query(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let due = std::time::Instant::now() + sim.delay;
    let Ok(q) = serde_json::from_slice::<wire::RecordingsQuery>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "not a RecordingsQuery",
        );
    };
    let (Ok(start), Ok(end)) = (
        q.start.parse::<jiff::Timestamp>(),
        q.end.parse::<jiff::Timestamp>(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "start, end: RFC 3339",
        );
    };
    let secs = (end.as_second() - start.as_second()).max(0);
    let stream = q.stream.unwrap_or_else(|| "main".to_owned());
    let (mine, unknown): (Vec<String>, Vec<String>) =
        q.cameras.into_iter().partition(|c| sim.cameras.contains(c));
    let results = mine
        .into_iter()
        .map(|camera| wire::Recordings {
            camera,
            stream: stream.clone(),
            start: q.start.clone(),
            end: q.end.clone(),
            ranges: vec![wire::RecordedRange {
                start: start.to_string(),
                end: end.to_string(),
                start_90k: 0,
                end_90k: secs * 90_000,
                frames: secs as u64 * 25,
                segments: (secs as u64).div_ceil(60) as u32,
                run: RunId::generate().to_string(),
                time_quality: wire::TimeQuality {
                    recorder_synced: true,
                    recorder_error_ms: Some(2),
                    camera_offset_ms: Some(0),
                },
            }],
            gaps: Vec::new(),
        })
        .collect();
    let answer = Json(wire::RecordingsQueryResult { results, unknown }).into_response();
    // Tokio's timer rounds up to the next millisecond and more (1.3 ms late at the median,
    // measured); a thread of the blocking pool sleeps to a fraction of one, so that the
    // answer leaves at the delay and the benchmark does not count the fake's lateness
    // against central.
    let left = due.saturating_duration_since(std::time::Instant::now());
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    answer
}

#[derive(Serialize)]
struct ReadyRecorder {
    id: String,
    region: String,
    cameras: usize,
    delay_ms: f64,
    channel_up_unix_ms: u64,
}

#[derive(Serialize)]
struct Ready {
    recorders: Vec<ReadyRecorder>,
    cameras: usize,
    /// From start to the last catalog handed to its channel.
    ready_ms: u64,
}

fn main() -> anyhow::Result<()> {
    vms_tests::process::init_logging();
    let args = Args::parse();
    let central = url::Url::parse(&args.central).context("--central")?;
    let tokens: Vec<String> = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading {}", args.token_file.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let count = args.count.unwrap_or(tokens.len());
    if count == 0 || count > tokens.len() {
        bail!(
            "--count {count}: needs 1 to {} (the tokens in the file)",
            tokens.len()
        );
    }
    let started = std::time::Instant::now();
    let epoch = ulid::Ulid::new().to_string();
    let (ready_tx, mut ready_rx) = mpsc::channel(count);
    let sims = (0..count)
        .map(|i| Sim::new(i, &args, count, &epoch, ready_tx.clone()).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One thread for every recorder: the fakes share the machine with the central they
    // load, and leave it the other cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        for (sim, token) in sims.iter().zip(tokens) {
            tokio::spawn(run_recorder(central.clone(), sim.clone(), token));
        }
        for _ in 0..count {
            ready_rx.recv().await.context("recorders gone")??;
        }
        vms_tests::process::announce_ready(&Ready {
            recorders: sims
                .iter()
                .map(|s| ReadyRecorder {
                    id: s.id.to_string(),
                    region: s.region.to_string(),
                    cameras: s.cameras.len(),
                    delay_ms: s.delay.as_secs_f64() * 1000.0,
                    channel_up_unix_ms: s.channel_up_unix_ms.load(Ordering::Relaxed),
                })
                .collect(),
            cameras: sims.iter().map(|s| s.cameras.len()).sum(),
            ready_ms: started.elapsed().as_millis() as u64,
        })?;
        vms_tests::process::shutdown_signal().await;
        anyhow::Ok(())
    })
}
