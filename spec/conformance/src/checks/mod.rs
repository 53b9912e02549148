//! The order of a run: reach the recorder, find footage to test, run every check, then the
//! checks over every answer received (the one error shape, and each operation's answers
//! against the OpenAPI document).

mod api;
mod media;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::RecorderArgs;
use crate::http::{Auth, Client, Reply, Request};
use crate::report::Report;
use vms_conformance::openapi::{Answer, Spec};

/// A well-formed id that names nothing.
pub const UNKNOWN_ID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
/// How far back the suite looks for footage (a listing spans at most 31 days).
const LOOK_BACK_DAYS: i64 = 30;
/// The longest stretch of footage the playlist, and so the segment checks, look at.
const WINDOW_SECS: i64 = 180;

/// The recorded range the media checks use: the latest range of the stream tested.
pub struct Footage {
    pub start: Timestamp,
    pub end: Timestamp,
    pub segments: u64,
}

/// What every check needs.
pub struct Ctx {
    pub c: Client,
    pub spec: Spec,
    pub camera: String,
    pub stream: String,
    /// The recorder's id from its health answer, when it gave one.
    pub recorder: Option<String>,
    pub footage: Footage,
}

/// The case and operator the suite's evidence requests name.
pub const CASE: &str = "VMS-CONFORMANCE";
pub const OPERATOR: &str = "vms-conformance";

impl Ctx {
    /// `POST …/evidence` of `range` of the stream tested, giving `reason`.
    pub fn evidence_req(&self, (start, end): (Timestamp, Timestamp), reason: &str) -> Request {
        self.c
            .post(
                "/api/v1/cameras/{id}/evidence",
                self.camera_path("/evidence"),
            )
            .json(
                &serde_json::json!({"stream": self.stream, "start": start.to_string(),
                "end": end.to_string(), "case": CASE, "reason": reason, "operator": OPERATOR}),
            )
    }

    pub fn camera_path(&self, rest: &str) -> String {
        format!("/api/v1/cameras/{}{rest}", self.camera)
    }

    /// The window of footage the playlist checks cover: the end of the latest range.
    pub fn window(&self) -> (Timestamp, Timestamp) {
        let end = self.footage.end;
        let start = self
            .footage
            .start
            .max(end - SignedDuration::from_secs(WINDOW_SECS));
        (start, end)
    }
}

/// Runs the whole suite. `Err` when it could not run (bad arguments, no answer, no footage).
pub async fn run(args: &RecorderArgs) -> Result<Report, String> {
    let spec = match &args.spec {
        Some(dir) => Spec::from_dir(dir).map_err(|e| format!("--spec: {e}"))?,
        None => Spec::embedded()?,
    };
    let c = Client::new(&args.url, &args.token)?;
    let mut report = Report::new(&args.token);

    let health = c
        .send(c.get("/api/v1/health", "/api/v1/health").auth(Auth::None))
        .await
        .map_err(|e| format!("the recorder does not answer: {e}"))?;
    let recorder = health
        .json()
        .and_then(|h| h["recorder"].as_str().map(str::to_owned));
    report.record("health.shape", api::health(&spec, &health));

    let (camera, stream, footage) = discover(&c, args).await?;
    let ctx = Ctx {
        c,
        spec,
        camera,
        stream,
        recorder,
        footage,
    };
    api::run(&ctx, &mut report).await;
    media::run(&ctx, &mut report).await;
    answers(&ctx, &mut report);
    Ok(report)
}

/// Finds the camera and stream to test: the ones given, else the first with footage in more
/// than one segment, else the one with the most segments.
async fn discover(c: &Client, args: &RecorderArgs) -> Result<(String, String, Footage), String> {
    let r = c
        .send(c.get("/api/v1/cameras", "/api/v1/cameras"))
        .await
        .map_err(|e| format!("the recorder does not answer: {e}"))?;
    if r.status == 401 || r.status == 403 {
        return Err(format!(
            "the recorder refused the token: GET /api/v1/cameras gave {}",
            r.summary()
        ));
    }
    let list = r
        .json()
        .filter(|_| r.status == 200)
        .ok_or_else(|| format!("GET /api/v1/cameras gave {}, not a listing", r.summary()))?;
    let mut candidates = Vec::new();
    for cam in list["cameras"].as_array().into_iter().flatten() {
        let Some(id) = cam["id"].as_str() else {
            continue;
        };
        if args.camera.as_deref().is_some_and(|want| want != id) {
            continue;
        }
        for s in cam["streams"].as_array().into_iter().flatten() {
            if let Some(name) = s["name"].as_str()
                && args.stream.as_deref().is_none_or(|want| want == name)
            {
                candidates.push((id.to_owned(), name.to_owned()));
            }
        }
    }
    if candidates.is_empty() {
        return Err(match (&args.camera, &args.stream) {
            (None, None) => "the recorder lists no camera with a stream".to_owned(),
            (camera, stream) => format!(
                "the recorder lists no camera {} with stream {}",
                camera.as_deref().unwrap_or("(any)"),
                stream.as_deref().unwrap_or("(any)")
            ),
        });
    }
    let now = Timestamp::now();
    let from = now - SignedDuration::from_hours(24 * LOOK_BACK_DAYS);
    let mut best: Option<(String, String, Footage)> = None;
    for (camera, stream) in &candidates {
        let r = c
            .send(
                c.get(
                    "/api/v1/cameras/{id}/recordings",
                    format!("/api/v1/cameras/{camera}/recordings"),
                )
                .query(format!("stream={stream}&start={from}&end={now}")),
            )
            .await?;
        let Some(last) = r
            .json()
            .filter(|_| r.status == 200)
            .and_then(|l| l["ranges"].as_array()?.last().cloned())
        else {
            continue;
        };
        let (Some(start), Some(end)) = (time(&last["start"]), time(&last["end"])) else {
            continue;
        };
        let segments = last["segments"].as_u64().unwrap_or(0);
        let footage = Footage {
            start,
            end,
            segments,
        };
        let done = segments >= 2;
        if best.as_ref().is_none_or(|(_, _, b)| b.segments < segments) {
            best = Some((camera.clone(), stream.clone(), footage));
        }
        if done {
            break;
        }
    }
    best.ok_or_else(|| {
        format!(
            "no recorded footage in the last {LOOK_BACK_DAYS} days on any of {} stream(s); \
             record some first, or name one with --camera and --stream",
            candidates.len()
        )
    })
}

/// How far apart two times are.
pub fn apart(a: Timestamp, b: Timestamp) -> SignedDuration {
    a.duration_since(b).abs()
}

/// An RFC 3339 time of a JSON answer.
pub fn time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// The status and the error code of an answer, checked: `Err` names what came instead.
pub fn expect_error(r: &Reply, what: &str, status: u16, code: &str) -> Result<(), String> {
    let got = r.error_code();
    if r.status == status && got.as_deref() == Some(code) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {status} {code}, got {}",
            r.summary()
        ))
    }
}

/// Sends each request, named for messages; `Ok` with how many when every one got `status`
/// with `code`, else the problems.
pub async fn expect_all(
    ctx: &Ctx,
    reqs: Vec<(Request, String)>,
    status: u16,
    code: &str,
) -> Result<usize, String> {
    let n = reqs.len();
    let mut problems = Vec::new();
    for (req, what) in reqs {
        let r = ctx.c.send(req).await?;
        if let Err(e) = expect_error(&r, &what, status, code) {
            problems.push(e);
        }
    }
    verdict(problems, String::new()).map(|_| n)
}

/// The stable codes and the statuses recorder-api.md gives them.
const CODES: [(&str, &[u16]); 10] = [
    ("invalid_argument", &[400, 413]),
    ("unauthenticated", &[401]),
    ("permission_denied", &[403]),
    ("not_found", &[404]),
    ("already_exists", &[409]),
    ("failed_precondition", &[409]),
    ("resource_exhausted", &[507]),
    ("unavailable", &[503]),
    ("internal", &[500]),
    ("data_loss", &[500]),
];

/// The checks over every answer of the run.
fn answers(ctx: &Ctx, report: &mut Report) {
    let log = ctx.c.take_log();
    // errors.shape: every error answer is the one error body, its code stable and its status
    // the code's. A 416 carries no error body in the document and is left out.
    let mut problems = Vec::new();
    let mut errors = 0;
    for a in log.iter().filter(|a| a.status >= 400 && a.status != 416) {
        errors += 1;
        let body = a
            .body
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let shape_ok = body.as_ref().is_some_and(|b| {
            b.as_object().is_some_and(|o| o.len() == 1)
                && b["error"].as_object().is_some_and(|e| {
                    e.len() == 2 && e["code"].is_string() && e["message"].is_string()
                })
        });
        if !shape_ok {
            problems.push(format!(
                "{} ({}): the body is not {{\"error\":{{\"code\",\"message\"}}}}: {}",
                a.what,
                a.status,
                a.body
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                    .unwrap_or_default()
            ));
            continue;
        }
        let code = body
            .as_ref()
            .and_then(|b| b["error"]["code"].as_str())
            .unwrap_or_default();
        match CODES.iter().find(|(c, _)| *c == code) {
            None => problems.push(format!(
                "{} ({}): code {code:?} is not a stable code",
                a.what, a.status
            )),
            Some((_, statuses)) if !statuses.contains(&a.status) => problems.push(format!(
                "{}: code {code} comes with status {}, not {statuses:?}",
                a.what, a.status
            )),
            Some(_) => {}
        }
    }
    report.record(
        "errors.shape",
        if problems.is_empty() {
            Ok(format!(
                "{errors} error answers, each the one error body with a stable code and its status"
            ))
        } else {
            Err(summarise(&problems))
        },
    );

    // openapi.<operationId>: every answer of an operation against the document.
    let mut by_op: BTreeMap<(String, &str), Vec<&crate::http::Logged>> = BTreeMap::new();
    for a in &log {
        by_op
            .entry((a.method.clone(), a.template))
            .or_default()
            .push(a);
    }
    for (method, template, id) in ctx.spec.operations() {
        let Some(answers) = by_op.get(&(method.clone(), template.as_str())) else {
            continue;
        };
        let mut problems = Vec::new();
        let mut statuses = std::collections::BTreeSet::new();
        for a in answers {
            statuses.insert(a.status);
            let answer = Answer {
                status: a.status,
                headers: &a.headers,
                body: a.body.as_deref(),
            };
            for p in ctx.spec.check_answer(&method, &template, &answer) {
                problems.push(format!("{}: {p}", a.what));
            }
        }
        report.record(
            &format!("openapi.{id}"),
            if problems.is_empty() {
                Ok(format!(
                    "{} answer(s) of {} {template} match the document (statuses {statuses:?})",
                    answers.len(),
                    method.to_ascii_uppercase()
                ))
            } else {
                Err(summarise(&problems))
            },
        );
    }
}

/// The first problems of a list, and how many there were.
pub fn summarise(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    let mut s = shown.join("; ");
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    s
}

/// `Ok(detail)` when there are no problems.
pub fn verdict(problems: Vec<String>, detail: String) -> Result<String, String> {
    if problems.is_empty() {
        Ok(detail)
    } else {
        Err(summarise(&problems))
    }
}
