//! The checks of the API's conventions (spec/recorder-api.md and the OpenAPI document):
//! health, authentication, cameras and their secrets, ids, recordings listings, bad and hostile
//! parameters, path tricks, holds, alerts and metrics.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::{Ctx, UNKNOWN_ID, apart, expect_all, expect_error, time, verdict};
use crate::http::{Auth, Reply, Request};
use crate::mp4::is_ulid;
use crate::report::Report;
use vms_conformance::openapi::Spec;

pub async fn run(ctx: &Ctx, report: &mut Report) {
    report.record("cameras.list", cameras_list(ctx).await);
    report.record("cameras.no_secrets", no_secrets(ctx).await);
    report.record("cameras.get", camera_get(ctx).await);
    report.record("cameras.unknown_id", unknown_id(ctx).await);
    report.record("cameras.malformed_id", malformed_id(ctx).await);
    report.record("conformance.reports", conformance_reports(ctx).await);
    report.record("auth.missing_token", auth(ctx, false).await);
    report.record("auth.bad_token", auth(ctx, true).await);
    report.record("recordings.utc", recordings_utc(ctx).await);
    report.record("recordings.ordered", recordings_ordered(ctx).await);
    report.record("recordings.unknown_stream", unknown_stream(ctx).await);
    report.record("params.bad_values", bad_values(ctx).await);
    report.record("params.hostile", hostile(ctx).await);
    report.record("paths.traversal", traversal(ctx).await);
    report.record("errors.body_limit", body_limit(ctx).await);
    report.record("holds.list", holds(ctx).await);
    report.record("alerts.list", alerts(ctx).await);
    report.record("metrics.families", metrics(ctx).await);
}

/// `GET /api/v1/health` without a token: 200 and the `Health` schema.
pub fn health(spec: &Spec, r: &Reply) -> Result<String, String> {
    if r.status != 200 {
        return Err(format!(
            "GET /api/v1/health without a token: expected 200, got {}",
            r.summary()
        ));
    }
    let body = r.json().ok_or("the health answer is not JSON")?;
    spec.validate(&spec.schema("Health"), &body)
        .map_err(|e| format!("the health answer is not a Health: {e}"))?;
    Ok(format!(
        "recorder {}, spec {}, software {}",
        body["recorder"].as_str().unwrap_or("?"),
        body["spec_version"].as_str().unwrap_or("?"),
        body["software_version"].as_str().unwrap_or("?")
    ))
}

async fn get_json(ctx: &Ctx, req: Request, what: &str) -> Result<Value, String> {
    let r = ctx.c.send(req).await?;
    if r.status != 200 {
        return Err(format!("{what}: expected 200, got {}", r.summary()));
    }
    r.json()
        .ok_or_else(|| format!("{what}: the body is not JSON"))
}

async fn list(ctx: &Ctx) -> Result<Value, String> {
    get_json(
        ctx,
        ctx.c.get("/api/v1/cameras", "/api/v1/cameras"),
        "GET /api/v1/cameras",
    )
    .await
}

async fn one(ctx: &Ctx) -> Result<Value, String> {
    get_json(
        ctx,
        ctx.c.get("/api/v1/cameras/{id}", ctx.camera_path("")),
        "GET /api/v1/cameras/{id}",
    )
    .await
}

/// The listing is a `CameraList` of distinct canonical ids, and holds the camera tested.
async fn cameras_list(ctx: &Ctx) -> Result<String, String> {
    let l = list(ctx).await?;
    ctx.spec
        .validate(&ctx.spec.schema("CameraList"), &l)
        .map_err(|e| format!("the listing is not a CameraList: {e}"))?;
    let ids: Vec<&str> = l["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = ids.iter().collect();
    if distinct.len() != ids.len() {
        return Err(format!("the listing repeats an id: {ids:?}"));
    }
    if !ids.contains(&ctx.camera.as_str()) {
        return Err(format!("the listing lacks camera {}", ctx.camera));
    }
    Ok(format!("{} camera(s), a valid CameraList", ids.len()))
}

/// The places a password could leak: a member named `password` anywhere, or credentials in
/// an RTSP URL.
fn leaks(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k.eq_ignore_ascii_case("password") {
                    out.push(format!("{at}/{k} is present"));
                }
                leaks(x, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaks(x, &format!("{at}/{i}"), out);
            }
        }
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix("rtsp://")
                && rest.split(['/', '?', '#']).next().is_some_and(|auth| {
                    auth.split_once('@')
                        .is_some_and(|(user, _)| user.contains(':'))
                })
            {
                out.push(format!("{at} is a URL with a password"));
            }
        }
        _ => {}
    }
}

/// Secrets are write-only: neither the listing nor one camera carries a password.
async fn no_secrets(ctx: &Ctx) -> Result<String, String> {
    let mut problems = Vec::new();
    leaks(&list(ctx).await?, "GET /api/v1/cameras", &mut problems);
    leaks(&one(ctx).await?, "GET /api/v1/cameras/{id}", &mut problems);
    verdict(
        problems,
        "no password in the listing or the camera (secrets are write-only)".into(),
    )
}

async fn camera_get(ctx: &Ctx) -> Result<String, String> {
    let c = one(ctx).await?;
    ctx.spec
        .validate(&ctx.spec.schema("Camera"), &c)
        .map_err(|e| format!("the camera is not a Camera: {e}"))?;
    if c["id"] != ctx.camera.as_str() {
        return Err(format!("asked for {}, got camera {}", ctx.camera, c["id"]));
    }
    Ok(format!("camera {} is a valid Camera", ctx.camera))
}

/// `GET …/conformance` (camera-conformance.md §5): one entry per stream of the camera, in its
/// order; each report lists every rule in the standard's order, its verdict is `fail` exactly
/// when a rule failed, its role is `main` for the first stream, and its URL has no
/// credentials.
async fn conformance_reports(ctx: &Ctx) -> Result<String, String> {
    let camera = one(ctx).await?;
    let c = get_json(
        ctx,
        ctx.c.get(
            "/api/v1/cameras/{id}/conformance",
            ctx.camera_path("/conformance"),
        ),
        "GET /api/v1/cameras/{id}/conformance",
    )
    .await?;
    ctx.spec
        .validate(&ctx.spec.schema("CameraConformance"), &c)
        .map_err(|e| format!("the answer is not a CameraConformance: {e}"))?;
    let names: Vec<&Value> = camera["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| &s["name"])
        .collect();
    let entries = c["streams"].as_array().cloned().unwrap_or_default();
    let listed: Vec<&Value> = entries.iter().map(|s| &s["stream"]).collect();
    if listed != names {
        return Err(format!("streams {listed:?}, the camera has {names:?}"));
    }
    // The rule ids in the standard's order, as the document's schema enumerates them.
    let order: Vec<&str> =
        ctx.spec.doc["components"]["schemas"]["ConformanceRule"]["properties"]["id"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
    if order.len() != 11 {
        return Err(format!(
            "the document lists {} conformance rules, not 11",
            order.len()
        ));
    }
    let mut reports = 0;
    for (i, entry) in entries.iter().enumerate() {
        let r = &entry["report"];
        if r.is_null() {
            continue;
        }
        reports += 1;
        let stream = &entry["stream"];
        let ids: Vec<&str> = r["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["id"].as_str())
            .collect();
        if ids != order {
            return Err(format!(
                "stream {stream}: rules {ids:?}, not the standard's order"
            ));
        }
        let failed = r["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["status"] == "fail");
        if (r["verdict"] == "fail") != failed {
            return Err(format!(
                "stream {stream}: verdict {} but a rule failed: {failed}",
                r["verdict"]
            ));
        }
        let role = if i == 0 { "main" } else { "sub" };
        if r["role"] != role {
            return Err(format!(
                "stream {stream}: role {}, expected {role}",
                r["role"]
            ));
        }
        if r["url"].as_str().is_none_or(|u| u.contains('@')) {
            return Err(format!(
                "stream {stream}: the URL {} carries credentials",
                r["url"]
            ));
        }
    }
    Ok(format!(
        "{} streams listed, {reports} reports in the standard's form",
        entries.len()
    ))
}

/// The operations with a camera id in their path that the suite may call with any id.
fn by_id(ctx: &Ctx, id: &str) -> Vec<Request> {
    let (start, end) = ctx.window();
    let path = |rest: &str| format!("/api/v1/cameras/{id}{rest}");
    let range = format!("stream={}&start={start}&end={end}", ctx.stream);
    vec![
        ctx.c.get("/api/v1/cameras/{id}", path("")),
        ctx.c
            .get("/api/v1/cameras/{id}/conformance", path("/conformance")),
        ctx.c
            .get("/api/v1/cameras/{id}/recordings", path("/recordings"))
            .query(range.clone()),
        ctx.c
            .get("/api/v1/cameras/{id}/playback.m3u8", path("/playback.m3u8"))
            .query(range),
        ctx.c
            .get("/api/v1/cameras/{id}/snapshot.jpg", path("/snapshot.jpg"))
            .query(format!("stream={}", ctx.stream)),
    ]
}

/// A well-formed id that names no camera gets 404 `not_found`.
async fn unknown_id(ctx: &Ctx) -> Result<String, String> {
    let reqs = by_id(ctx, UNKNOWN_ID)
        .into_iter()
        .map(|r| {
            let what = format!("GET {}", r.template);
            (r, what)
        })
        .collect();
    let n = expect_all(ctx, reqs, 404, "not_found").await?;
    Ok(format!(
        "{n} operations give 404 not_found for {UNKNOWN_ID}"
    ))
}

/// Malformed ids are treated as unknown: 404 `not_found`.
async fn malformed_id(ctx: &Ctx) -> Result<String, String> {
    let ids = [
        "not-a-ulid",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX", // 27
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",  // over 128 bits
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",  // U is not Crockford base32
        "0",
    ];
    let reqs = ids
        .iter()
        .flat_map(|id| {
            by_id(ctx, id).into_iter().map(move |r| {
                let what = format!("GET {} with id {id:?}", r.template);
                (r, what)
            })
        })
        .collect();
    let n = expect_all(ctx, reqs, 404, "not_found").await?;
    Ok(format!(
        "{n} requests with malformed ids give 404 not_found"
    ))
}

/// Every secured operation the suite can call harmlessly, with valid arguments.
fn secured(ctx: &Ctx) -> Vec<Request> {
    let (start, end) = ctx.window();
    let range = format!("stream={}&start={start}&end={end}", ctx.stream);
    let mut reqs = vec![
        ctx.c.get("/api/v1/cameras", "/api/v1/cameras"),
        ctx.c.get("/api/v1/holds", "/api/v1/holds"),
        ctx.c.get("/api/v1/alerts", "/api/v1/alerts"),
        ctx.c.get("/api/v1/evidence/key", "/api/v1/evidence/key"),
        ctx.c.get("/metrics", "/metrics"),
        ctx.c
            .get(
                "/api/v1/cameras/{id}/export.mp4",
                ctx.camera_path("/export.mp4"),
            )
            .query(range.clone()),
        ctx.c
            .get(
                "/api/v1/cameras/{id}/segments/{file}",
                ctx.camera_path(&format!("/segments/{}.mp4", to_90k(start))),
            )
            .query(format!("stream={}", ctx.stream)),
        ctx.evidence_req((start, end), "no token"),
    ];
    reqs.extend(by_id(ctx, &ctx.camera));
    reqs
}

/// The 90 kHz count of a time.
pub fn to_90k(t: Timestamp) -> i128 {
    t.as_nanosecond() * 9 / 100_000
}

/// Without a token, or with one that is not a credential: 401 `unauthenticated` with
/// `WWW-Authenticate: Bearer`, on every secured operation; media operations also with a bad
/// `token` query parameter.
async fn auth(ctx: &Ctx, bad: bool) -> Result<String, String> {
    let mut problems = Vec::new();
    let mut n = 0;
    let bogus = "conformance-not-a-token";
    let jwt_like = "eyJhbGciOiJFZERTQSJ9.eyJ2ZXIiOjF9.AAAA";
    let mut cases: Vec<(Request, &str)> = Vec::new();
    for req in secured(ctx) {
        if bad {
            let media = req.template.contains(".m3u8")
                || req.template.contains("segments")
                || req.template.contains(".mp4")
                || req.template.contains(".jpg");
            if media {
                let copy = clone(ctx, &req).auth(Auth::Query(bogus.into()));
                cases.push((copy, "a bad token query parameter"));
            }
            let copy = clone(ctx, &req).auth(Auth::Bearer(jwt_like.into()));
            cases.push((copy, "a JWT-shaped token that is not one"));
            cases.push((req.auth(Auth::Bearer(bogus.into())), "a bad bearer token"));
        } else {
            cases.push((req.auth(Auth::None), "no token"));
        }
    }
    for (req, how) in cases {
        n += 1;
        let what = format!("{} {} with {how}", req.method, req.template);
        let r = ctx.c.send(req).await?;
        if let Err(e) = expect_error(&r, &what, 401, "unauthenticated") {
            problems.push(e);
            continue;
        }
        let scheme = r.header("www-authenticate").unwrap_or_default();
        if !scheme
            .split(' ')
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        {
            problems.push(format!(
                "{what}: WWW-Authenticate is {scheme:?}, not Bearer"
            ));
        }
    }
    verdict(
        problems,
        format!("{n} requests get 401 unauthenticated with WWW-Authenticate: Bearer"),
    )
}

fn clone(ctx: &Ctx, r: &Request) -> Request {
    let mut c = ctx
        .c
        .get(r.template, r.path.clone())
        .query(r.query.clone())
        .auth(r.auth.clone());
    c.method = r.method.clone();
    c.body = r.body.clone();
    c
}

/// The listing over the whole look-back, as the discovery asked for it.
async fn listing(ctx: &Ctx) -> Result<(Value, Timestamp, Timestamp), String> {
    let end = Timestamp::now();
    let start = end - SignedDuration::from_hours(24 * 30);
    let l = get_json(
        ctx,
        ctx.c
            .get(
                "/api/v1/cameras/{id}/recordings",
                ctx.camera_path("/recordings"),
            )
            .query(format!("stream={}&start={start}&end={end}", ctx.stream)),
        "GET /api/v1/cameras/{id}/recordings",
    )
    .await?;
    Ok((l, start, end))
}

/// An RFC 3339 time in UTC: `Z` (or `+00:00`), parsed.
fn utc(v: &Value, at: &str, problems: &mut Vec<String>) -> Option<Timestamp> {
    let Some(s) = v.as_str() else {
        problems.push(format!("{at} is {v}, not a string"));
        return None;
    };
    let shape_ok =
        s.len() >= 20 && s.as_bytes()[10] == b'T' && (s.ends_with('Z') || s.ends_with("+00:00"));
    match s.parse::<Timestamp>() {
        Ok(t) if shape_ok => Some(t),
        _ => {
            problems.push(format!("{at} {s:?} is not an RFC 3339 UTC time"));
            None
        }
    }
}

/// Every time of a listing is RFC 3339 UTC; `start_90k`/`end_90k` are those times in 90 kHz
/// units (to the millisecond); the listing echoes its camera, stream and range.
async fn recordings_utc(ctx: &Ctx) -> Result<String, String> {
    let (l, start, end) = listing(ctx).await?;
    let mut p = Vec::new();
    if l["camera"] != ctx.camera.as_str() || l["stream"] != ctx.stream.as_str() {
        p.push(format!(
            "the listing is of {}/{}, not {}/{}",
            l["camera"], l["stream"], ctx.camera, ctx.stream
        ));
    }
    for (field, asked) in [("start", start), ("end", end)] {
        if let Some(t) = utc(&l[field], field, &mut p)
            && apart(t, asked) >= SignedDuration::from_millis(1)
        {
            p.push(format!("{field} {t} is not the {asked} asked for"));
        }
    }
    let ranges = l["ranges"].as_array().cloned().unwrap_or_default();
    for (i, r) in ranges.iter().enumerate() {
        for (field, n90k) in [("start", "start_90k"), ("end", "end_90k")] {
            let t = utc(&r[field], &format!("ranges[{i}].{field}"), &mut p);
            if let (Some(t), Some(n)) = (t, r[n90k].as_i64())
                && (to_90k(t) - i128::from(n)).abs() > 90
            {
                p.push(format!(
                    "ranges[{i}].{n90k} {n} is not {field} {t} ({} in 90 kHz units)",
                    to_90k(t)
                ));
            }
        }
    }
    for (i, g) in l["gaps"].as_array().into_iter().flatten().enumerate() {
        utc(&g["start"], &format!("gaps[{i}].start"), &mut p);
        utc(&g["end"], &format!("gaps[{i}].end"), &mut p);
    }
    verdict(
        p,
        format!(
            "{} range(s) and {} gap(s), every time RFC 3339 UTC",
            ranges.len(),
            l["gaps"].as_array().map_or(0, Vec::len)
        ),
    )
}

/// Ranges and gaps: each starts before it ends, oldest first, none overlapping; a gap lies
/// between ranges (or after the last) and its `duration_ms` is its length.
async fn recordings_ordered(ctx: &Ctx) -> Result<String, String> {
    let (l, _, _) = listing(ctx).await?;
    let mut p = Vec::new();
    let spans = |key: &str, p: &mut Vec<String>| -> Vec<(Timestamp, Timestamp)> {
        let mut out = Vec::new();
        for (i, x) in l[key].as_array().into_iter().flatten().enumerate() {
            match (time(&x["start"]), time(&x["end"])) {
                (Some(s), Some(e)) => out.push((s, e)),
                _ => p.push(format!("{key}[{i}] has no start and end times")),
            }
        }
        out
    };
    let ranges = spans("ranges", &mut p);
    let gaps = spans("gaps", &mut p);
    for (key, list) in [("ranges", &ranges), ("gaps", &gaps)] {
        for (i, (s, e)) in list.iter().enumerate() {
            if s >= e {
                p.push(format!("{key}[{i}] starts at {s}, not before its end {e}"));
            }
        }
        for (i, w) in list.windows(2).enumerate() {
            if w[1].0 < w[0].1 {
                p.push(format!(
                    "{key}[{}] starts at {}, before {key}[{i}] ends at {} (not ordered or overlapping)",
                    i + 1,
                    w[1].0,
                    w[0].1
                ));
            }
        }
    }
    for (i, (gs, ge)) in gaps.iter().enumerate() {
        if ranges.iter().any(|(rs, re)| gs < re && rs < ge) {
            p.push(format!("gaps[{i}] {gs}..{ge} overlaps a range"));
        }
        let ms = ge.duration_since(*gs).as_millis();
        let listed = l["gaps"][i]["duration_ms"].as_i64().map(i128::from);
        if listed.is_none_or(|d| (d - ms).abs() > 1) {
            p.push(format!(
                "gaps[{i}].duration_ms {} is not its length {ms} ms",
                l["gaps"][i]["duration_ms"]
            ));
        }
    }
    for (i, r) in l["ranges"].as_array().into_iter().flatten().enumerate() {
        if !r["run"].as_str().is_some_and(is_ulid) {
            p.push(format!("ranges[{i}].run is not a ULID"));
        }
    }
    verdict(
        p,
        format!(
            "{} range(s) and {} gap(s) ordered, non-overlapping, start before end",
            ranges.len(),
            gaps.len()
        ),
    )
}

/// A stream name the camera does not have gets 404.
async fn unknown_stream(ctx: &Ctx) -> Result<String, String> {
    let (start, end) = ctx.window();
    let r = ctx
        .c
        .send(
            ctx.c
                .get(
                    "/api/v1/cameras/{id}/recordings",
                    ctx.camera_path("/recordings"),
                )
                .query(format!(
                    "stream=conformance-no-such-stream&start={start}&end={end}"
                )),
        )
        .await?;
    expect_error(
        &r,
        "recordings of stream conformance-no-such-stream",
        404,
        "not_found",
    )?;
    Ok("a stream the camera lacks gets 404 not_found".into())
}

/// The values the document or recorder-api.md makes errors: 400 `invalid_argument` each.
async fn bad_values(ctx: &Ctx) -> Result<String, String> {
    let (start, end) = ctx.window();
    let s = &ctx.stream;
    let rec = "/api/v1/cameras/{id}/recordings";
    let play = "/api/v1/cameras/{id}/playback.m3u8";
    let snap = "/api/v1/cameras/{id}/snapshot.jpg";
    let export = "/api/v1/cameras/{id}/export.mp4";
    let long_ago = end - SignedDuration::from_hours(24 * 32);
    let day_ago = end - SignedDuration::from_hours(25);
    let cases: Vec<(&'static str, &str, String, &str)> = vec![
        (
            rec,
            "/recordings",
            format!("stream={s}&end={end}"),
            "start missing",
        ),
        (
            rec,
            "/recordings",
            format!("stream={s}&start=yesterday&end={end}"),
            "start not RFC 3339",
        ),
        (
            rec,
            "/recordings",
            format!("stream={s}&start={end}&end={start}"),
            "end before start",
        ),
        (
            rec,
            "/recordings",
            format!("stream={s}&start={long_ago}&end={end}"),
            "a span over 31 days",
        ),
        (
            rec,
            "/recordings",
            format!("stream={s}&start={start}&end={end}&conformance=1"),
            "an unknown parameter",
        ),
        (
            rec,
            "/recordings",
            format!("start={start}&end={end}"),
            "stream missing",
        ),
        (
            play,
            "/playback.m3u8",
            format!("stream={s}&start={day_ago}&end={end}"),
            "a span over 24 hours",
        ),
        (
            play,
            "/playback.m3u8",
            format!("stream={s}&start={end}&end={start}"),
            "end before start",
        ),
        (
            snap,
            "/snapshot.jpg",
            format!("stream={s}&width=15"),
            "width under 16",
        ),
        (
            snap,
            "/snapshot.jpg",
            format!("stream={s}&width=7681"),
            "width over 7680",
        ),
        (
            snap,
            "/snapshot.jpg",
            format!("stream={s}&width=wide"),
            "width not an integer",
        ),
        (
            snap,
            "/snapshot.jpg",
            format!("stream={s}&time=noon"),
            "time not RFC 3339",
        ),
        (
            export,
            "/export.mp4",
            format!("stream={s}&start={start}&end={end}&part=-1"),
            "part under 0",
        ),
        (
            export,
            "/export.mp4",
            format!("stream={s}&start={day_ago}&end={end}"),
            "a span over 24 hours",
        ),
        (
            "/api/v1/cameras/{id}/segments/{file}",
            "/segments/0.mp4",
            String::new(),
            "stream missing",
        ),
    ];
    let reqs = cases
        .into_iter()
        .map(|(template, rest, query, why)| {
            let req = ctx.c.get(template, ctx.camera_path(rest)).query(query);
            (req, format!("GET {template} with {why}"))
        })
        .collect();
    let n = expect_all(ctx, reqs, 400, "invalid_argument").await?;
    Ok(format!(
        "{n} documented bad values get 400 invalid_argument"
    ))
}

/// Hostile query values: a 4xx answer, never a 2xx or 5xx.
async fn hostile(ctx: &Ctx) -> Result<String, String> {
    let (start, end) = ctx.window();
    let s = &ctx.stream;
    let long = "9".repeat(8192);
    let values = [
        "%00",
        "%FF%FE",
        "2026-13-45T99:99:99Z",
        "99999-01-01T00:00:00Z",
        "2026-01-01T00:00:00+05:00+05:00",
        "2026-01-01T00:00:00 05:00",
        "-1",
        "18446744073709551616",
        "1e308",
        "%E2%80%AE%F0%9F%92%A5",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        &long,
        "",
    ];
    let mut reqs: Vec<(Request, String)> = Vec::new();
    for v in values {
        let shown: String = v.chars().take(40).collect();
        let rec = |q: String| {
            ctx.c
                .get(
                    "/api/v1/cameras/{id}/recordings",
                    ctx.camera_path("/recordings"),
                )
                .query(q)
        };
        reqs.push((
            rec(format!("stream={s}&start={v}&end={end}")),
            format!("recordings start={shown}"),
        ));
        reqs.push((
            rec(format!("stream={v}&start={start}&end={end}")),
            format!("recordings stream={shown}"),
        ));
        reqs.push((
            ctx.c
                .get(
                    "/api/v1/cameras/{id}/snapshot.jpg",
                    ctx.camera_path("/snapshot.jpg"),
                )
                .query(format!("stream={s}&width={v}")),
            format!("snapshot width={shown}"),
        ));
        reqs.push((
            ctx.c
                .get(
                    "/api/v1/cameras/{id}/export.mp4",
                    ctx.camera_path("/export.mp4"),
                )
                .query(format!("stream={s}&start={start}&end={end}&part={v}")),
            format!("export part={shown}"),
        ));
        reqs.push((
            ctx.c
                .get("/api/v1/holds", "/api/v1/holds")
                .query(format!("camera={v}")),
            format!("holds camera={shown}"),
        ));
    }
    reqs.push((
        ctx.c
            .get(
                "/api/v1/cameras/{id}/recordings",
                ctx.camera_path("/recordings"),
            )
            .query(format!("stream={s}&stream=other&start={start}&end={end}")),
        "recordings with stream twice".into(),
    ));
    let mut p = Vec::new();
    let n = reqs.len();
    for (req, what) in reqs {
        let r = ctx.c.send(req).await?;
        if !(400..500).contains(&r.status) {
            p.push(format!("{what}: expected a 4xx, got {}", r.summary()));
        }
    }
    verdict(
        p,
        format!("{n} hostile query values get 4xx, none 2xx or 5xx"),
    )
}

/// Path tricks (`..`, encoded slashes and dots, NUL) sent as raw request targets: 4xx, never
/// 2xx or 5xx.
async fn traversal(ctx: &Ctx) -> Result<String, String> {
    let cam = &ctx.camera;
    let s = &ctx.stream;
    let (start, end) = ctx.window();
    let name = format!("{}.mp4", to_90k(start));
    let targets = [
        format!("/api/v1/cameras/{cam}/segments/..%2F..%2F.vms-storage.json?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/%2e%2e%2f%2e%2e%2fetc%2fpasswd?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/../../../../../../etc/passwd?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/..%5C..%5C..%5Cetc%5Cpasswd?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/%2F{name}?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/{name}%00.jpg?stream={s}"),
        format!("/api/v1/cameras/{cam}/segments/{name}?stream=..%2F..%2F{s}"),
        format!("/api/v1/cameras/{cam}/segments/{name}?stream=%2E%2E"),
        format!("/api/v1/cameras/..%2F{cam}/recordings?stream={s}&start={start}&end={end}"),
        format!("/api/v1/cameras/{cam}%2F..%2F{cam}/recordings?stream={s}&start={start}&end={end}"),
        format!("/api/v1/cameras/%2e%2e/recordings?stream={s}&start={start}&end={end}"),
        format!("/api/v1/cameras/{cam}/..%2F..%2Fhealth"),
        format!("/api/v1/cameras/{cam}/segments/%252e%252e%252f{name}?stream={s}"),
    ];
    let mut p = Vec::new();
    for t in &targets {
        let status = ctx.c.raw_get_status(t).await?;
        if !(400..500).contains(&status) {
            p.push(format!("GET {t}: expected a 4xx, got {status}"));
        }
    }
    verdict(
        p,
        format!("{} path tricks get 4xx, none 2xx or 5xx", targets.len()),
    )
}

/// A body over 64 KiB gets 413 `invalid_argument`.
async fn body_limit(ctx: &Ctx) -> Result<String, String> {
    let r = ctx
        .c
        .send(ctx.evidence_req(ctx.window(), &"x".repeat(70 * 1024)))
        .await?;
    expect_error(
        &r,
        "POST /api/v1/cameras/{id}/evidence with a 70 KiB body",
        413,
        "invalid_argument",
    )?;
    Ok("a 70 KiB body gets 413 invalid_argument".into())
}

/// The holds in force; `?camera=` of the camera lists only its holds; a value that is not an
/// id gets 404.
async fn holds(ctx: &Ctx) -> Result<String, String> {
    let all = get_json(
        ctx,
        ctx.c.get("/api/v1/holds", "/api/v1/holds"),
        "GET /api/v1/holds",
    )
    .await?;
    let mine = get_json(
        ctx,
        ctx.c
            .get("/api/v1/holds", "/api/v1/holds")
            .query(format!("camera={}", ctx.camera)),
        "GET /api/v1/holds?camera=",
    )
    .await?;
    let mut p = Vec::new();
    for h in mine["holds"].as_array().into_iter().flatten() {
        if h["camera"] != ctx.camera.as_str() {
            p.push(format!(
                "?camera={} lists hold {} of camera {}",
                ctx.camera, h["id"], h["camera"]
            ));
        }
    }
    let r = ctx
        .c
        .send(
            ctx.c
                .get("/api/v1/holds", "/api/v1/holds")
                .query("camera=not-an-id"),
        )
        .await?;
    if let Err(e) = expect_error(&r, "GET /api/v1/holds?camera=not-an-id", 404, "not_found") {
        p.push(e);
    }
    verdict(
        p,
        format!(
            "{} hold(s) in force, {} of the camera",
            all["holds"].as_array().map_or(0, Vec::len),
            mine["holds"].as_array().map_or(0, Vec::len)
        ),
    )
}

async fn alerts(ctx: &Ctx) -> Result<String, String> {
    let a = get_json(
        ctx,
        ctx.c.get("/api/v1/alerts", "/api/v1/alerts"),
        "GET /api/v1/alerts",
    )
    .await?;
    Ok(format!(
        "{} alert(s) in force",
        a["alerts"].as_array().map_or(0, Vec::len)
    ))
}

/// Every family of `x-prometheus-families` has its `# HELP` and `# TYPE` lines.
async fn metrics(ctx: &Ctx) -> Result<String, String> {
    let r = ctx.c.send(ctx.c.get("/metrics", "/metrics")).await?;
    if r.status != 200 {
        return Err(format!("GET /metrics: expected 200, got {}", r.summary()));
    }
    let text = String::from_utf8_lossy(&r.body);
    let families = ctx.spec.doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        .as_object()
        .and_then(|c| c.values().next())
        .and_then(|m| m["x-prometheus-families"].as_array())
        .cloned()
        .ok_or("the document lists no x-prometheus-families")?;
    let mut p = Vec::new();
    for f in &families {
        let (Some(name), Some(typ)) = (f["name"].as_str(), f["type"].as_str()) else {
            continue;
        };
        let help = format!("# HELP {name} ");
        let type_line = format!("# TYPE {name} {typ}");
        if !text.lines().any(|l| l.starts_with(&help)) {
            p.push(format!("no `# HELP {name}` line"));
        }
        if !text.lines().any(|l| l.trim_end() == type_line) {
            p.push(format!("no `{type_line}` line"));
        }
    }
    verdict(
        p,
        format!(
            "all {} documented families present with HELP and TYPE",
            families.len()
        ),
    )
}
