//! `vms-central-load`: the load client of central's benchmark (`tests/bench/central.sh`). It
//! measures, through central's client API, one of:
//!
//! - `directory`: directory searches (`GET /api/v1/cameras`), a given mix of query strings
//!   taken in turn, one at a time;
//! - `fanout`: federated recordings queries (`POST /api/v1/recordings/query`) naming cameras
//!   of many recorders of a `vms-fake-recorder`, against the slowest of their configured
//!   delays, and in turn with them the same query for the slowest recorder's cameras alone;
//! - `sync`: how long after a `vms-fake-recorder`'s channel came up central's directory shows
//!   all of its catalog.
//!
//! Each prints one JSON object of figures: latencies in milliseconds as p50, p95, p99 and max.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use serde_json::json;
use vms_core::wire;

/// Load client of central's benchmark.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Central's client API, `http://HOST:PORT`.
    #[arg(long)]
    api: String,
    /// A session token (`POST /api/v1/auth/login`) of a user who sees everything.
    #[arg(long)]
    token: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Directory searches: the query strings in turn, after one warm-up round.
    Directory {
        /// How many searches are measured.
        #[arg(long, default_value_t = 1200)]
        queries: usize,
        /// A query string of `GET /api/v1/cameras` (URL-encoded), e.g.
        /// `region=750000000&q=abay`. Repeat for a mix.
        #[arg(long = "query", required = true)]
        query_strings: Vec<String>,
    },
    /// Federated recordings queries over recorders of a `vms-fake-recorder`, in turn with
    /// queries for the cameras of the slowest of them alone.
    Fanout {
        /// The fake recorders' ready line (a file).
        #[arg(long)]
        recorders_file: PathBuf,
        /// How many of its recorders each query names, spread over its list from first to
        /// last. Each must be alone in its region.
        #[arg(long, default_value_t = 50)]
        recorders: usize,
        /// Cameras named per recorder.
        #[arg(long, default_value_t = 4)]
        cameras_per_recorder: usize,
        /// How many queries are measured (after 5 unmeasured ones).
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// The queries' `deadline_ms`.
        #[arg(long, default_value_t = 2000)]
        deadline_ms: u64,
    },
    /// Waits until the directory holds `cameras` cameras in `region`, then reads the fake
    /// recorder's ready line to learn when its channel came up.
    Sync {
        #[arg(long)]
        region: String,
        #[arg(long)]
        cameras: u64,
        /// The ready line of the `vms-fake-recorder` (one recorder) being synchronised.
        #[arg(long)]
        ready_file: PathBuf,
        /// How long to wait at most, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
}

#[derive(Deserialize)]
struct FakeRecorder {
    id: String,
    region: String,
    delay_ms: f64,
    channel_up_unix_ms: u64,
}

#[derive(Deserialize)]
struct FakeReady {
    recorders: Vec<FakeRecorder>,
}

struct Client {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Client {
    /// Sends a request with the session token and reads its JSON answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        let resp = req.bearer_auth(&self.token).send().await?;
        let status = resp.status();
        ensure!(
            status.is_success(),
            "{what}: {status}: {}",
            resp.text().await?
        );
        Ok(resp.json().await?)
    }

    async fn cameras(&self, query: &str) -> anyhow::Result<wire::DirectoryPage> {
        let url = format!("{}/api/v1/cameras?{query}", self.api);
        self.call(self.http.get(url), query).await
    }

    async fn recordings(
        &self,
        query: &wire::RecordingsQuery,
    ) -> anyhow::Result<wire::FederatedRecordings> {
        let url = format!("{}/api/v1/recordings/query", self.api);
        self.call(self.http.post(url).json(query), "recordings query")
            .await
    }
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50, p95, p99 and max of latencies in milliseconds.
fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({
        "n": ms.len(),
        "p50_ms": percentile(&ms, 50.0),
        "p95_ms": percentile(&ms, 95.0),
        "p99_ms": percentile(&ms, 99.0),
        "max_ms": percentile(&ms, 100.0),
    })
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

async fn directory(
    c: &Client,
    queries: usize,
    query_strings: &[String],
) -> anyhow::Result<serde_json::Value> {
    let size = c.cameras("region=000000000&limit=1").await?.total;
    let mut totals = Vec::new();
    for q in query_strings {
        totals.push(c.cameras(q).await?.total);
    }
    let mut all = Vec::with_capacity(queries);
    let mut by_query = vec![Vec::new(); query_strings.len()];
    for i in 0..queries {
        let k = i % query_strings.len();
        let t = Instant::now();
        let page = c.cameras(&query_strings[k]).await?;
        let ms = elapsed_ms(t);
        ensure!(
            page.total == totals[k],
            "{}: {} matches, then {}",
            query_strings[k],
            totals[k],
            page.total
        );
        all.push(ms);
        by_query[k].push(ms);
    }
    let kinds: Vec<_> = query_strings
        .iter()
        .zip(totals)
        .zip(by_query)
        .map(|((q, total), ms)| json!({"query": q, "matches": total, "latency": summary(ms)}))
        .collect();
    Ok(json!({
        "directory_cameras": size,
        "latency": summary(all),
        "queries": kinds,
    }))
}

fn read_fake(path: &Path) -> anyhow::Result<FakeReady> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

async fn fanout(
    c: &Client,
    recorders_file: &Path,
    recorders: usize,
    per_recorder: usize,
    queries: usize,
    deadline_ms: u64,
) -> anyhow::Result<serde_json::Value> {
    let fake = read_fake(recorders_file)?;
    let n = fake.recorders.len();
    ensure!(
        (2..=n).contains(&recorders),
        "--recorders {recorders}: 2 to {n}"
    );
    let chosen: Vec<&FakeRecorder> = (0..recorders)
        .map(|k| &fake.recorders[k * (n - 1) / (recorders - 1)])
        .collect();
    // Each recorder's cameras, in the order of `chosen`.
    let mut cameras: Vec<Vec<String>> = Vec::new();
    for r in &chosen {
        let page = c
            .cameras(&format!("region={}&limit={}", r.region, per_recorder))
            .await?;
        let mine: Vec<String> = page
            .cameras
            .into_iter()
            .filter(|d| d.recorder == r.id)
            .map(|d| d.camera.id)
            .collect();
        ensure!(
            mine.len() == per_recorder,
            "recorder {} in {}: {} of its cameras found, not {per_recorder}",
            r.id,
            r.region,
            mine.len()
        );
        cameras.push(mine);
    }
    let (slowest_at, slowest) = chosen
        .iter()
        .map(|r| r.delay_ms)
        .enumerate()
        .fold((0, 0.0), |a, (i, d)| if d > a.1 { (i, d) } else { a });
    let fastest = chosen.iter().map(|r| r.delay_ms).fold(f64::MAX, f64::min);
    let all: Vec<String> = cameras.concat();
    let alone = cameras[slowest_at].clone();
    // The whole fan-out, and the slowest recorder's cameras alone: taken in turn, so that
    // both see the same machine, the second says what one recorder's answer costs.
    let (mut fan_ms, mut alone_ms) = (Vec::new(), Vec::new());
    let mut incomplete = 0;
    for i in 0..queries + 5 {
        for (named, ms) in [(&all, &mut fan_ms), (&alone, &mut alone_ms)] {
            let end = jiff::Timestamp::now();
            let query = wire::RecordingsQuery {
                cameras: named.clone(),
                stream: Some("main".into()),
                start: (end - jiff::SignedDuration::from_hours(1)).to_string(),
                end: end.to_string(),
                deadline_ms: Some(deadline_ms),
            };
            let t = Instant::now();
            let answer = c.recordings(&query).await?;
            let took = elapsed_ms(t);
            if !answer.complete || answer.results.len() != named.len() {
                incomplete += 1;
            }
            if i >= 5 {
                ms.push(took);
            }
        }
    }
    let over =
        |latency: &serde_json::Value| latency["p99_ms"].as_f64().unwrap_or(f64::NAN) - slowest;
    let (fan, alone) = (summary(fan_ms), summary(alone_ms));
    Ok(json!({
        "recorders": recorders,
        "cameras": all.len(),
        "delay_ms": {"fastest": fastest, "slowest": slowest},
        "incomplete": incomplete,
        "latency": fan,
        "p99_over_slowest_ms": over(&fan),
        "slowest_alone": {"latency": alone, "p99_over_slowest_ms": over(&alone)},
    }))
}

async fn sync(
    c: &Client,
    region: &str,
    cameras: u64,
    ready_file: &Path,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let t = Instant::now();
    let seen_unix_ms = loop {
        let total = c.cameras(&format!("region={region}&limit=1")).await?.total;
        if total >= cameras {
            break jiff::Timestamp::now().as_millisecond();
        }
        if t.elapsed() > timeout {
            bail!("{region}: {total} of {cameras} cameras after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The fake prints its ready line once it has handed its catalog over; wait for it.
    let fake = loop {
        match read_fake(ready_file) {
            Ok(f) => break f,
            Err(_) if t.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Err(e),
        }
    };
    let [r] = &fake.recorders[..] else {
        bail!("{}: one recorder expected", ready_file.display());
    };
    Ok(json!({
        "cameras": cameras,
        "sync_ms": seen_unix_ms - r.channel_up_unix_ms as i64,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client {
        http: reqwest::Client::new(),
        api: args.api.trim_end_matches('/').to_owned(),
        token: args.token,
    };
    let out = match args.command {
        Command::Directory {
            queries,
            query_strings,
        } => directory(&client, queries, &query_strings).await?,
        Command::Fanout {
            recorders_file,
            recorders,
            cameras_per_recorder,
            queries,
            deadline_ms,
        } => {
            fanout(
                &client,
                &recorders_file,
                recorders,
                cameras_per_recorder,
                queries,
                deadline_ms,
            )
            .await?
        }
        Command::Sync {
            region,
            cameras,
            ready_file,
            timeout_secs,
        } => {
            sync(
                &client,
                &region,
                cameras,
                &ready_file,
                Duration::from_secs(timeout_secs),
            )
            .await?
        }
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), format!("{out}\n").as_bytes())?;
    Ok(())
}
