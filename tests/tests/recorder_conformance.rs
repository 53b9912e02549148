//! End-to-end tests of the recorder conformance suite (`vms-conformance recorder`,
//! spec/recorder-conformance.md): our recorder with a simulated camera passes every check, and
//! a proxy in front of it that breaks one contract at a time makes exactly the checks of that
//! contract fail. The breakages live here, in the test, never in the product.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, ETAG, RANGE, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use vms_tests::process::workspace_binary;
use vms_tests::recorder::{
    ADMIN_TOKEN, RecorderDirs, RemoteRecorder, camera_toml, eventually, sim,
};

/// One broken contract of a recorder, put in front of ours by the proxy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Breakage {
    /// Segment files are served without `ETag`.
    StripSegmentEtag,
    /// A `Range` request of a segment gets 200 and the whole file.
    IgnoreSegmentRange,
    /// The camera listing carries each stream's password.
    PasswordInListing,
    /// A 404 of `GET /api/v1/cameras/{id}` has another error body.
    OtherErrorShape,
    /// A 404 of a segment becomes a 500.
    SegmentNotFoundIs500,
    /// One byte of an evidence package's manifest is changed after signing.
    FlipManifestByte,
}

impl Breakage {
    const ALL: [Breakage; 6] = [
        Breakage::StripSegmentEtag,
        Breakage::IgnoreSegmentRange,
        Breakage::PasswordInListing,
        Breakage::OtherErrorShape,
        Breakage::SegmentNotFoundIs500,
        Breakage::FlipManifestByte,
    ];

    /// The checks that must fail, and only they.
    fn expected_failures(self) -> &'static [&'static str] {
        match self {
            Breakage::StripSegmentEtag => &["openapi.segmentFile", "segments.etag"],
            Breakage::IgnoreSegmentRange => &["auth.query_token", "segments.range"],
            Breakage::PasswordInListing => {
                &["cameras.list", "cameras.no_secrets", "openapi.listCameras"]
            }
            Breakage::OtherErrorShape => &[
                "cameras.malformed_id",
                "cameras.unknown_id",
                "errors.shape",
                "openapi.getCamera",
            ],
            Breakage::SegmentNotFoundIs500 => &["paths.traversal", "segments.unknown"],
            Breakage::FlipManifestByte => &["evidence.verifies"],
        }
    }
}

/// A reverse proxy on 127.0.0.1 to `upstream` that applies `breakage`.
async fn proxy(upstream: SocketAddr, breakage: Breakage) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req| async move {
                    Ok::<_, Infallible>(relay(upstream, breakage, req).await.unwrap_or_else(|e| {
                        let mut r = Response::new(Full::new(Bytes::from(e)));
                        *r.status_mut() = StatusCode::BAD_GATEWAY;
                        r
                    }))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Forwards one request as it came (its target never normalised) and breaks the answer.
async fn relay(
    upstream: SocketAddr,
    breakage: Breakage,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts.uri.path().to_owned();
    let segment = path.contains("/segments/");
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let mut out = Request::builder().method(parts.method.clone()).uri(target);
    for (k, v) in &parts.headers {
        if !(breakage == Breakage::IgnoreSegmentRange && segment && k == RANGE) {
            out = out.header(k, v);
        }
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let answer = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let (mut head, body) = answer.into_parts();
    let mut body = body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    // The body is sent whole again: hyper gives it its length.
    head.headers.remove(CONTENT_LENGTH);
    head.headers.remove(TRANSFER_ENCODING);
    let camera_path = path.starts_with("/api/v1/cameras/") && path.matches('/').count() == 4;
    match breakage {
        Breakage::StripSegmentEtag if segment => {
            head.headers.remove(ETAG);
        }
        Breakage::PasswordInListing if path == "/api/v1/cameras" && head.status == 200 => {
            let mut list: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            for camera in list["cameras"].as_array_mut().into_iter().flatten() {
                for stream in camera["streams"].as_array_mut().into_iter().flatten() {
                    stream["password"] = Value::from("camera-secret");
                }
            }
            body = list.to_string().into_bytes();
        }
        Breakage::OtherErrorShape if camera_path && head.status == 404 => {
            body = br#"{"code":"not_found","message":"no such camera"}"#.to_vec();
        }
        Breakage::SegmentNotFoundIs500 if segment && head.status == 404 => {
            head.status = StatusCode::INTERNAL_SERVER_ERROR;
            body = br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec();
        }
        Breakage::FlipManifestByte if path.ends_with("/evidence") && head.status == 200 => {
            let key = b"\"exported\": \"";
            let at = body
                .windows(key.len())
                .position(|w| w == key)
                .ok_or("no exported member in the package")?;
            // The year's first digit: 2026 becomes 3026, still valid JSON and a valid time.
            body[at + key.len()] ^= 0x01;
        }
        _ => {}
    }
    Ok(Response::from_parts(head, Full::new(Bytes::from(body))))
}

/// Runs `vms-conformance recorder` against `url` with the JSON on standard output.
async fn suite(url: &str, extra: &[&str]) -> Output {
    tokio::process::Command::new(workspace_binary("vms-conformance"))
        .args([
            "recorder",
            "--url",
            url,
            "--token",
            ADMIN_TOKEN,
            "--json",
            "-",
        ])
        .args(extra)
        .output()
        .await
        .expect("vms-conformance runs")
}

/// The JSON report of a run, checked for its form and for the token, which it never prints.
fn results(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains(ADMIN_TOKEN) && !stderr.contains(ADMIN_TOKEN),
        "the token was printed:\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}\n{stderr}"));
    assert_eq!(report["version"], 1);
    let checks = report["checks"].as_array().expect("checks");
    let passed = checks.iter().filter(|c| c["status"] == "pass").count();
    let failed = checks.iter().filter(|c| c["status"] == "fail").count();
    assert_eq!(passed + failed, checks.len(), "{report}");
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(passed as u64), Some(failed as u64))
    );
    // The lines: one per check, then exactly the count.
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), checks.len() + 1, "{stderr}");
    assert_eq!(
        lines.last().copied(),
        Some(format!("{passed} passed, {failed} failed").as_str())
    );
    for (line, c) in lines.iter().zip(checks) {
        let verdict = if c["status"] == "pass" {
            "PASS"
        } else {
            "FAIL"
        };
        let id = c["id"].as_str().expect("id");
        assert!(line.starts_with(&format!("{verdict} {id} — ")), "{line}");
    }
    report
}

fn failed_ids(report: &Value) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_recorder_passes_and_each_broken_contract_fails_exactly_its_checks() {
    let sim = sim(
        "[[camera]]\nname = \"c\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\n\
         gop_frames = 15\n",
    );
    let dirs = RecorderDirs::new(&format!(
        "segment_secs = 10\n{}",
        camera_toml("c", &[("main", sim.url("c", "main", None))])
    ));
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let camera = rec.cameras().await.expect("cameras").cameras[0].id.clone();
    // Three segments, so that the window the suite looks at holds a closed one and the next.
    let from = vms_tests::recorder::now();
    eventually(Duration::from_secs(60), || async {
        let l = rec
            .recordings(
                &camera,
                "main",
                &from.to_rfc3339(),
                &vms_tests::recorder::now().to_rfc3339(),
            )
            .await
            .ok()?;
        (l.ranges.last()?.segments >= 3).then_some(())
    })
    .await
    .expect("three segments recorded");
    let url = rec.url("");

    // The real recorder, and every broken one at the same time.
    let mut runs = Vec::new();
    for b in Breakage::ALL {
        let addr = proxy(rec.ready.api, b).await;
        runs.push(tokio::spawn(async move {
            (b, suite(&format!("http://{addr}"), &[]).await)
        }));
    }
    let real = suite(&url, &[]).await;

    let report = results(&real);
    assert_eq!(real.status.code(), Some(0), "{report:#}");
    assert!(failed_ids(&report).is_empty(), "{report:#}");
    let ids: BTreeSet<&str> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for id in Breakage::ALL.iter().flat_map(|b| b.expected_failures()) {
        assert!(ids.contains(id), "the suite has no check {id}: {ids:?}");
    }

    let mut wrong = Vec::new();
    for run in runs {
        let (b, out) = run.await.expect("a case runs");
        let report = results(&out);
        let failed = failed_ids(&report);
        let expected: BTreeSet<String> = b
            .expected_failures()
            .iter()
            .map(|s| s.to_string())
            .collect();
        if out.status.code() != Some(1) || failed != expected {
            let messages: Vec<String> = report["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == "fail")
                .map(|c| format!("  {}: {}", c["id"], c["message"]))
                .collect();
            wrong.push(format!(
                "{b:?}: exit {:?}, failed {failed:?}, expected {expected:?}\n{}",
                out.status.code(),
                messages.join("\n")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A camera the recorder does not have: the suite cannot run.
    let out = suite(&url, &["--camera", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot run") && stderr.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_suite_cannot_run_without_a_recorder() {
    // A port nothing listens on: bound, then closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("address");
    let out = suite(&format!("http://{addr}"), &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot run: the recorder does not answer"),
        "{stderr}"
    );
    assert!(!stderr.contains(ADMIN_TOKEN), "{stderr}");
    assert!(out.stdout.is_empty());
    // Bad arguments: 2 as well.
    let out = tokio::process::Command::new(workspace_binary("vms-conformance"))
        .args(["recorder", "--url", "http://127.0.0.1:1"])
        .output()
        .await
        .expect("vms-conformance runs");
    assert_eq!(out.status.code(), Some(2));
}
