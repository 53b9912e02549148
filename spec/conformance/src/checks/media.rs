//! The checks of the footage the recorder serves: the HLS playlist and the token in its query,
//! a stored segment file (byte ranges, validators, its fragmented MP4 per
//! spec/segment-format.md), the MP4 export, snapshots and an evidence package.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sha2::Digest;

use super::{CASE, Ctx, OPERATOR, UNKNOWN_ID, apart, expect_all, time, verdict};
use crate::evidence::{self, Package};
use crate::hls::{self, Playlist};
use crate::http::{Auth, Reply, Request};
use crate::mp4::{self, Segment};
use crate::report::Report;

/// A stored segment the suite fetched whole.
struct Stored {
    file: String,
    reply: Reply,
    parsed: Result<Segment, String>,
}

impl Stored {
    fn start_90k(&self) -> Option<i128> {
        self.file.strip_suffix(".mp4")?.parse().ok()
    }

    fn start(&self) -> Option<Timestamp> {
        Timestamp::from_nanosecond(self.start_90k()? * 100_000 / 9).ok()
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report) {
    let playlist = playlist(ctx).await;
    report.record(
        "playback.hls",
        playlist.as_ref().map(describe).map_err(Clone::clone),
    );
    let files = playlist.as_ref().map(Playlist::files).unwrap_or_default();
    // The file before the last of the window: closed, so its bytes no longer change.
    let chosen = files.len().saturating_sub(2);
    let stored = match files.get(chosen) {
        Some(f) => fetch(ctx, f).await,
        None => Err(format!(
            "no segment to test: the playlist gave none ({})",
            playlist.as_ref().err().map_or("empty", String::as_str)
        )),
    };
    report.record("auth.query_token", query_token(ctx, &stored).await);
    let s = stored.as_ref().map_err(Clone::clone);
    report.record("segments.fmp4", with(&s, |s| fmp4(ctx, s)));
    report.record(
        "segments.etag",
        match &s {
            Ok(s) => etag(ctx, s).await,
            Err(e) => Err(e.clone()),
        },
    );
    report.record(
        "segments.range",
        match &s {
            Ok(s) => ranges(ctx, || segment_req(ctx, &s.file), &s.reply).await,
            Err(e) => Err(e.clone()),
        },
    );
    let next = match files.get(chosen + 1) {
        Some(f) => Some(fetch(ctx, f).await),
        None => None,
    };
    report.record(
        "segments.continuous",
        with(&s, |s| continuous(s, next.as_ref())),
    );
    report.record("segments.unknown", unknown_segments(ctx, &s).await);
    report.record(
        "playback.fragments",
        match (&playlist, &s) {
            (Ok(p), Ok(s)) => fragments(p, s),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        },
    );
    let start = s.as_ref().ok().and_then(|s| s.start());
    let export = export_window(ctx, start);
    report.record("export.mp4_moov_first", export_moov(ctx, &export).await);
    report.record(
        "export.range",
        match &export {
            Ok(w) => export_ranges(ctx, *w).await,
            Err(e) => Err(e.clone()),
        },
    );
    report.record("snapshot.jpeg", snapshot(ctx, start).await);
    report.record("snapshot.width", thumbnail(ctx, &s).await);
    let package = evidence_package(ctx, &export).await;
    let pkg = package
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|(bytes, _)| {
            crate::tar::entries(bytes).map(|entries| Package {
                data: bytes,
                entries,
            })
        });
    report.record(
        "evidence.tar",
        match (&package, &pkg) {
            (Ok((_, length_ok)), Ok(p)) => {
                length_ok.clone().and_then(|()| evidence::check_layout(p))
            }
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        },
    );
    report.record(
        "evidence.sums",
        pkg.as_ref()
            .map_err(Clone::clone)
            .and_then(evidence::check_sums),
    );
    report.record(
        "evidence.verifies",
        pkg.as_ref()
            .map_err(Clone::clone)
            .and_then(evidence::check_signature),
    );
    report.record(
        "evidence.manifest",
        match (&pkg, &export) {
            (Ok(p), Ok(w)) => manifest(ctx, p, *w),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        },
    );
    report.record(
        "evidence.key",
        match &pkg {
            Ok(p) => key(ctx, p).await,
            Err(e) => Err(e.clone()),
        },
    );
}

fn with<T>(
    s: &Result<T, String>,
    f: impl FnOnce(&T) -> Result<String, String>,
) -> Result<String, String> {
    s.as_ref().map_err(Clone::clone).and_then(f)
}

fn describe(p: &Playlist) -> String {
    format!(
        "version 7 VOD playlist: {} media segment(s) over {} file(s), target duration {} s, {} discontinuity(ies)",
        p.segments.len(),
        p.files().len(),
        p.target_duration,
        p.discontinuities
    )
}

fn playlist_req(ctx: &Ctx) -> Request {
    let (start, end) = ctx.window();
    ctx.c
        .get(
            "/api/v1/cameras/{id}/playback.m3u8",
            ctx.camera_path("/playback.m3u8"),
        )
        .query(format!("stream={}&start={start}&end={end}", ctx.stream))
}

/// The playlist of the window: 200, `application/vnd.apple.mpegurl`, well formed.
async fn playlist(ctx: &Ctx) -> Result<Playlist, String> {
    let r = ctx.c.send(playlist_req(ctx)).await?;
    if r.status != 200 {
        return Err(format!(
            "GET playback.m3u8: expected 200, got {}",
            r.summary()
        ));
    }
    let text = std::str::from_utf8(&r.body).map_err(|_| "the playlist is not UTF-8".to_owned())?;
    hls::parse(text, &ctx.stream).map_err(|e| format!("the playlist: {e}"))
}

fn segment_req(ctx: &Ctx, file: &str) -> Request {
    ctx.c
        .get(
            "/api/v1/cameras/{id}/segments/{file}",
            ctx.camera_path(&format!("/segments/{file}")),
        )
        .query(format!("stream={}", ctx.stream))
}

async fn fetch(ctx: &Ctx, file: &str) -> Result<Stored, String> {
    let reply = ctx.c.send(segment_req(ctx, file)).await?;
    if reply.status != 200 {
        return Err(format!(
            "GET segments/{file}: expected 200, got {}",
            reply.summary()
        ));
    }
    if reply.header("content-type") != Some("video/mp4") {
        return Err(format!(
            "GET segments/{file}: content type {:?}, not video/mp4",
            reply.header("content-type")
        ));
    }
    let parsed = mp4::parse_segment(&reply.body);
    Ok(Stored {
        file: file.to_owned(),
        reply,
        parsed,
    })
}

/// Media endpoints take the token as the `token` query parameter, and the playlist carries it
/// into its media URIs.
async fn query_token(ctx: &Ctx, s: &Result<Stored, String>) -> Result<String, String> {
    let r = ctx.c.send(playlist_req(ctx).auth(Auth::AdminQuery)).await?;
    if r.status != 200 {
        return Err(format!(
            "GET playback.m3u8 with the token in the query: expected 200, got {}",
            r.summary()
        ));
    }
    let text = String::from_utf8_lossy(&r.body);
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("segments/"))
        .collect();
    if uris.is_empty() || !uris.iter().all(|u| u.contains("token=")) {
        return Err("the playlist's media URIs do not carry the token of its query".into());
    }
    let s = s.as_ref().map_err(Clone::clone)?;
    let r = ctx
        .c
        .send(
            segment_req(ctx, &s.file)
                .auth(Auth::AdminQuery)
                .header("range", "bytes=0-99"),
        )
        .await?;
    if r.status != 206 {
        return Err(format!(
            "GET segments/{} with the token in the query: expected 206, got {}",
            s.file,
            r.summary()
        ));
    }
    Ok(format!(
        "playlist and segment served with the token in the query; {} media URIs carry it",
        uris.len()
    ))
}

/// The segment's bytes are a fragmented MP4 of spec/segment-format.md, of this camera and
/// stream, starting at the time its name says.
fn fmp4(ctx: &Ctx, s: &Stored) -> Result<String, String> {
    let seg = s
        .parsed
        .as_ref()
        .map_err(|e| format!("segments/{}: {e}", s.file))?;
    let h = &seg.header;
    let mut p = Vec::new();
    if h["camera"] != ctx.camera.as_str() || h["stream"] != ctx.stream.as_str() {
        p.push(format!(
            "the header names {}/{}, not {}/{}",
            h["camera"], h["stream"], ctx.camera, ctx.stream
        ));
    }
    if h["start_90k"].as_i64().map(i128::from) != s.start_90k() {
        p.push(format!(
            "the header's start_90k {} is not the file name's {}",
            h["start_90k"], s.file
        ));
    }
    if let Some(r) = &ctx.recorder
        && h["recorder"] != r.as_str()
    {
        p.push(format!(
            "the header's recorder {} is not the health's {r}",
            h["recorder"]
        ));
    }
    verdict(
        p,
        format!(
            "segments/{}: {} bytes, {} whole fragment(s), {} {}x{}{}, {}",
            s.file,
            s.reply.body.len(),
            seg.fragments.len(),
            h["video_codec"].as_str().unwrap_or("?"),
            h["width"],
            h["height"],
            if seg.has_audio { " with audio" } else { "" },
            if seg.trailer.is_some() {
                "closed with a trailer"
            } else {
                "no trailer"
            }
        ),
    )
}

/// A strong `ETag` on 200 and 206; `If-None-Match` with it gets 304 without a body, another
/// value gets the file.
async fn etag(ctx: &Ctx, s: &Stored) -> Result<String, String> {
    let Some(mut tag) = s.reply.header("etag").map(str::to_owned) else {
        return Err(format!("GET segments/{}: no ETag", s.file));
    };
    if tag.starts_with("W/") || !tag.starts_with('"') {
        return Err(format!("ETag {tag} is not a strong validator"));
    }
    // The segment being written grows; a new ETag then is right, so ask again with it.
    let mut tries = 0;
    loop {
        let r = ctx
            .c
            .send(segment_req(ctx, &s.file).header("if-none-match", tag.clone()))
            .await?;
        match r.status {
            304 if r.body.is_empty() => break,
            304 => return Err("a 304 with a body".into()),
            200 if tries < 3 && r.header("etag").is_some_and(|t| t != tag) => {
                tag = r.header("etag").unwrap_or_default().to_owned();
                tries += 1;
            }
            _ => {
                return Err(format!(
                    "If-None-Match: {tag}: expected 304, got {}",
                    r.summary()
                ));
            }
        }
    }
    let r = ctx
        .c
        .send(segment_req(ctx, &s.file).header("if-none-match", "\"conformance-other\""))
        .await?;
    if r.status != 200 {
        return Err(format!(
            "If-None-Match of another tag: expected 200, got {}",
            r.summary()
        ));
    }
    let r = ctx
        .c
        .send(segment_req(ctx, &s.file).header("range", "bytes=0-99"))
        .await?;
    if r.status == 206 && r.header("etag").is_none() {
        return Err("a 206 without ETag".into());
    }
    Ok(format!("strong ETag {tag}; If-None-Match gives 304"))
}

/// Byte ranges of a file served whole as `whole`: a range, an open range, a suffix range
/// (206 with `Content-Range` and exactly those bytes), and a range past the end (416 with
/// `Content-Range: bytes */LEN`).
async fn ranges(ctx: &Ctx, req: impl Fn() -> Request, whole: &Reply) -> Result<String, String> {
    let len = whole.body.len() as u64;
    if len < 200 {
        return Err(format!("a file of {len} bytes is too short to test ranges"));
    }
    let mid = len / 2;
    // (header, first byte, last byte; None for an open or suffix range, which ends the file).
    let cases = [
        ("bytes=0-99".to_owned(), Some(0), Some(99)),
        (
            format!("bytes={mid}-{}", mid + 99),
            Some(mid),
            Some(mid + 99),
        ),
        (format!("bytes={}-", len - 50), Some(len - 50), None),
        ("bytes=-64".to_owned(), None, None),
    ];
    let mut p = Vec::new();
    for (range, first, last) in &cases {
        let r = ctx.c.send(req().header("range", range.clone())).await?;
        if r.status != 206 {
            p.push(format!("Range: {range}: expected 206, got {}", r.summary()));
            continue;
        }
        let got = r.header("content-range").unwrap_or_default();
        let Some((a, b, total)) = content_range(got) else {
            p.push(format!(
                "Range: {range}: Content-Range {got:?} is not bytes FIRST-LAST/LEN"
            ));
            continue;
        };
        // A file still being written may have grown since it was fetched whole.
        let grown = total > len;
        let want_first = first.unwrap_or(total.saturating_sub(64));
        let want_last = last.unwrap_or(total - 1);
        if total < len || a != want_first || b != want_last {
            p.push(format!(
                "Range: {range}: Content-Range {got:?}, expected bytes {want_first}-{want_last}/{len}"
            ));
            continue;
        }
        if r.body.len() as u64 != b - a + 1 {
            p.push(format!(
                "Range: {range}: {} bytes for {got:?}",
                r.body.len()
            ));
        } else if !grown && r.body[..] != whole.body[a as usize..=b as usize] {
            p.push(format!(
                "Range: {range}: the bytes differ from the same bytes of the whole file"
            ));
        }
    }
    let r = ctx
        .c
        .send(req().header("range", format!("bytes={}-", len + 1_000_000)))
        .await?;
    if r.status != 416 {
        p.push(format!(
            "a range past the end: expected 416, got {}",
            r.summary()
        ));
    } else if let Some(cr) = r.header("content-range")
        && !cr.starts_with("bytes */")
    {
        p.push(format!("a 416 with Content-Range {cr:?}, not bytes */LEN"));
    }
    verdict(
        p,
        format!(
            "ranges, an open range and a suffix range give 206 with the right bytes; past the end 416 (file of {len} bytes)"
        ),
    )
}

/// `bytes FIRST-LAST/LEN`.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

/// Two consecutive segments of a run: the second's first video `tfdt` follows the first's
/// last sample.
fn continuous(s: &Stored, next: Option<&Result<Stored, String>>) -> Result<String, String> {
    let seg = s
        .parsed
        .as_ref()
        .map_err(|e| format!("segments/{}: {e}", s.file))?;
    let Some(next) = next else {
        return Ok("not exercised: the window holds one segment".into());
    };
    let n = next.as_ref().map_err(Clone::clone)?;
    let nseg = n
        .parsed
        .as_ref()
        .map_err(|e| format!("segments/{}: {e}", n.file))?;
    let same_run = seg.header["run"] == nseg.header["run"];
    let consecutive =
        seg.header["run_segment"].as_u64().map(|x| x + 1) == nseg.header["run_segment"].as_u64();
    if !same_run || !consecutive {
        return Ok(format!(
            "not exercised: segments/{} and segments/{} are not consecutive in one run",
            s.file, n.file
        ));
    }
    let last = seg.fragments.last().ok_or("no fragment")?;
    let first = nseg
        .fragments
        .first()
        .ok_or("no fragment in the next segment")?;
    let end = last.video_tfdt + last.video_duration;
    if first.video_tfdt != end {
        return Err(format!(
            "segments/{} ends at tfdt {end}, the next segment of its run starts at {}",
            s.file, first.video_tfdt
        ));
    }
    Ok(format!(
        "segments/{} and segments/{} (run_segment {} and {}) continue at tfdt {end}",
        s.file, n.file, seg.header["run_segment"], nseg.header["run_segment"]
    ))
}

/// Segment names that name no indexed segment get 404.
async fn unknown_segments(ctx: &Ctx, s: &Result<&Stored, String>) -> Result<String, String> {
    let file = s
        .as_ref()
        .map(|s| s.file.clone())
        .unwrap_or_else(|_| "1.mp4".into());
    let cases = [
        (
            ctx.camera_path("/segments/1.mp4"),
            "a start that names no segment",
        ),
        (
            ctx.camera_path("/segments/abc.mp4"),
            "a name that is not {start_90k}.mp4",
        ),
        (
            ctx.camera_path(&format!("/segments/{file}x")),
            "a name with a suffix",
        ),
        (
            format!("/api/v1/cameras/{UNKNOWN_ID}/segments/{file}"),
            "an unknown camera",
        ),
    ];
    let reqs = cases
        .into_iter()
        .map(|(path, why)| {
            let req = ctx
                .c
                .get("/api/v1/cameras/{id}/segments/{file}", path)
                .query(format!("stream={}", ctx.stream));
            (req, format!("GET segments with {why}"))
        })
        .collect();
    let n = expect_all(ctx, reqs, 404, "not_found").await?;
    Ok(format!("{n} unknown segment names get 404 not_found"))
}

/// The playlist's ranges of the segment are whole fragments, each starting with a keyframe,
/// and its init section is the bytes before the first fragment.
fn fragments(p: &Playlist, s: &Stored) -> Result<String, String> {
    let seg = s
        .parsed
        .as_ref()
        .map_err(|e| format!("segments/{}: {e}", s.file))?;
    let mut problems = Vec::new();
    for (file, off, len) in p.maps.iter().filter(|m| m.0 == s.file) {
        if *off != 0 || *len != seg.init_len as u64 {
            problems.push(format!(
                "EXT-X-MAP of {file} is {len}@{off}, not the {} bytes before the first fragment",
                seg.init_len
            ));
        }
    }
    if !p.maps.iter().any(|m| m.0 == s.file) {
        problems.push(format!("no EXT-X-MAP for {}", s.file));
    }
    let mine: Vec<_> = p.segments.iter().filter(|m| m.file == s.file).collect();
    for m in &mine {
        let start = m.offset as usize;
        let end = (m.offset + m.length) as usize;
        match seg
            .fragments
            .iter()
            .find(|f| f.start == start || f.moof == start)
        {
            None => problems.push(format!(
                "the range {}@{} of {} does not start at a fragment",
                m.length, m.offset, s.file
            )),
            Some(f) if !f.first_is_sync => problems.push(format!(
                "the range {}@{} of {} starts at a fragment that does not begin with a keyframe",
                m.length, m.offset, s.file
            )),
            Some(_) => {}
        }
        if !seg.fragments.iter().any(|f| f.end == end) {
            problems.push(format!(
                "the range {}@{} of {} does not end at a fragment's end",
                m.length, m.offset, s.file
            ));
        }
    }
    verdict(
        problems,
        format!(
            "{} media segment(s) of {} are whole fragments starting at keyframes; EXT-X-MAP is its init section",
            mine.len(),
            s.file
        ),
    )
}

/// The export window: 3.5 s of the tested segment, or the start of the footage.
fn export_window(
    ctx: &Ctx,
    seg_start: Option<Timestamp>,
) -> Result<(Timestamp, Timestamp), String> {
    let base = seg_start.unwrap_or(ctx.footage.start);
    let start = base + SignedDuration::from_millis(500);
    let end = (start + SignedDuration::from_millis(3500)).min(ctx.footage.end);
    if start >= end {
        return Err(format!(
            "the footage ({} to {}) is too short to export",
            ctx.footage.start, ctx.footage.end
        ));
    }
    Ok((start, end))
}

fn export_req(ctx: &Ctx, (start, end): (Timestamp, Timestamp)) -> Request {
    ctx.c
        .get(
            "/api/v1/cameras/{id}/export.mp4",
            ctx.camera_path("/export.mp4"),
        )
        .query(format!("stream={}&start={start}&end={end}", ctx.stream))
}

async fn export_whole(ctx: &Ctx, w: (Timestamp, Timestamp)) -> Result<Reply, String> {
    let r = ctx.c.send(export_req(ctx, w)).await?;
    if r.status != 200 {
        return Err(format!(
            "GET export.mp4 of {} to {}: expected 200, got {}",
            w.0,
            w.1,
            r.summary()
        ));
    }
    if r.header("content-type") != Some("video/mp4") {
        return Err(format!(
            "export.mp4: content type {:?}, not video/mp4",
            r.header("content-type")
        ));
    }
    Ok(r)
}

/// The export is a progressive MP4: `ftyp`, `moov` before `mdat`, the documented tracks.
async fn export_moov(
    ctx: &Ctx,
    w: &Result<(Timestamp, Timestamp), String>,
) -> Result<String, String> {
    let w = w.as_ref().map_err(Clone::clone)?;
    let r = export_whole(ctx, *w).await?;
    mp4::check_export(&r.body).map(|d| format!("{} to {}: {d}", w.0, w.1))
}

/// The export is served with byte ranges and its `ETag`.
async fn export_ranges(ctx: &Ctx, w: (Timestamp, Timestamp)) -> Result<String, String> {
    let whole = export_whole(ctx, w).await?;
    let tag = whole
        .header("etag")
        .ok_or("export.mp4 without an ETag")?
        .to_owned();
    let detail = ranges(ctx, || export_req(ctx, w), &whole).await?;
    let r = ctx
        .c
        .send(export_req(ctx, w).header("if-none-match", tag.clone()))
        .await?;
    if r.status != 304 {
        return Err(format!(
            "If-None-Match: {tag}: expected 304, got {}",
            r.summary()
        ));
    }
    Ok(format!("{detail}; If-None-Match gives 304"))
}

/// The (width, height) of a JPEG, from its frame header; `Err` unless it is a whole JPEG.
fn jpeg_size(d: &[u8]) -> Result<(u16, u16), String> {
    if !d.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err("the body does not start with a JPEG SOI marker".into());
    }
    if !d.ends_with(&[0xFF, 0xD9]) {
        return Err("the body does not end with a JPEG EOI marker".into());
    }
    let mut at = 2;
    while at + 4 <= d.len() {
        if d[at] != 0xFF {
            return Err(format!("no JPEG marker at offset {at}"));
        }
        let marker = d[at + 1];
        let len = usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        let is_sof = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if is_sof {
            let f = d.get(at + 5..at + 9).ok_or("a cut JPEG frame header")?;
            return Ok((
                u16::from_be_bytes([f[2], f[3]]),
                u16::from_be_bytes([f[0], f[1]]),
            ));
        }
        if marker == 0xDA {
            break;
        }
        at += 2 + len;
    }
    Err("no JPEG frame header before the scan".into())
}

async fn snapshot_at(ctx: &Ctx, query: String) -> Result<(Reply, (u16, u16)), String> {
    let r = ctx
        .c
        .send(
            ctx.c
                .get(
                    "/api/v1/cameras/{id}/snapshot.jpg",
                    ctx.camera_path("/snapshot.jpg"),
                )
                .query(query.clone()),
        )
        .await?;
    if r.status != 200 {
        return Err(format!(
            "GET snapshot.jpg?{query}: expected 200, got {}",
            r.summary()
        ));
    }
    if r.header("content-type") != Some("image/jpeg") {
        return Err(format!(
            "snapshot.jpg: content type {:?}, not image/jpeg",
            r.header("content-type")
        ));
    }
    let size = jpeg_size(&r.body).map_err(|e| format!("snapshot.jpg?{query}: {e}"))?;
    Ok((r, size))
}

/// A recorded moment and the latest frame are JPEGs; `X-Frame-Time` is the frame's time, at
/// or before the moment asked for.
async fn snapshot(ctx: &Ctx, seg_start: Option<Timestamp>) -> Result<String, String> {
    // A moment strictly inside the footage: a range is half-open, nothing shows at its end.
    let base = seg_start.unwrap_or(ctx.footage.start);
    let mut at = base + SignedDuration::from_secs(1);
    if at >= ctx.footage.end {
        at = base + ctx.footage.end.duration_since(base) / 2;
    }
    let (r, (w, h)) = snapshot_at(ctx, format!("stream={}&time={at}", ctx.stream)).await?;
    let frame = r
        .header("x-frame-time")
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or("no RFC 3339 X-Frame-Time")?;
    if frame > at || frame < ctx.footage.start {
        return Err(format!(
            "the frame for {at} was taken at {frame}: not at or before it within the footage"
        ));
    }
    let (live, _) = snapshot_at(ctx, format!("stream={}", ctx.stream)).await?;
    if live
        .header("x-frame-time")
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_none()
    {
        return Err("the latest frame has no RFC 3339 X-Frame-Time".into());
    }
    Ok(format!(
        "{w}x{h} JPEG of {at} (frame at {frame}); the latest frame is a JPEG too"
    ))
}

/// `width` scales the picture down, keeping its aspect.
async fn thumbnail(ctx: &Ctx, s: &Result<&Stored, String>) -> Result<String, String> {
    let s = s.as_ref().map_err(|e| e.clone())?;
    let seg = s
        .parsed
        .as_ref()
        .map_err(|e| format!("segments/{}: {e}", s.file))?;
    let (Some(sw), Some(sh)) = (seg.header["width"].as_u64(), seg.header["height"].as_u64()) else {
        return Err("the segment header gives no picture size".into());
    };
    let want = 160.min(sw);
    let (_, (w, h)) = snapshot_at(ctx, format!("stream={}&width={want}", ctx.stream)).await?;
    let want_h = (want * sh) as f64 / sw as f64;
    if u64::from(w) != want || (f64::from(h) - want_h).abs() > 2.0 {
        return Err(format!(
            "width={want} of a {sw}x{sh} picture gave {w}x{h}, not {want}x{want_h:.0}"
        ));
    }
    Ok(format!("width={want} of {sw}x{sh} gives {w}x{h}"))
}

/// The reason the suite's evidence export gives.
const REASON: &str = "recorder conformance suite";

/// `POST …/evidence` of the export window: the package, and whether its `Content-Length` was
/// exact.
async fn evidence_package(
    ctx: &Ctx,
    w: &Result<(Timestamp, Timestamp), String>,
) -> Result<(Vec<u8>, Result<(), String>), String> {
    let w = w.as_ref().map_err(Clone::clone)?;
    let r = ctx.c.send(ctx.evidence_req(*w, REASON)).await?;
    if r.status != 200 {
        return Err(format!("POST evidence: expected 200, got {}", r.summary()));
    }
    if r.header("content-type") != Some("application/x-tar") {
        return Err(format!(
            "POST evidence: content type {:?}, not application/x-tar",
            r.header("content-type")
        ));
    }
    let length = match r
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        Some(l) if l == r.body.len() => Ok(()),
        Some(l) => Err(format!(
            "Content-Length {l}, the package has {} bytes",
            r.body.len()
        )),
        None => Err("the package has no Content-Length".into()),
    };
    Ok((r.body, length))
}

/// The manifest describes the export asked for.
fn manifest(
    ctx: &Ctx,
    p: &Package<'_>,
    (start, end): (Timestamp, Timestamp),
) -> Result<String, String> {
    let m = p.manifest()?;
    let mut problems = Vec::new();
    let mut want = |field: &str, got: &Value, expected: &str| {
        if got != expected {
            problems.push(format!("{field} is {got}, not {expected:?}"));
        }
    };
    want("format", &m["format"], "vms-evidence/1");
    want("camera.id", &m["camera"]["id"], &ctx.camera);
    want("stream", &m["stream"], &ctx.stream);
    want("case", &m["case"], CASE);
    want("reason", &m["reason"], REASON);
    want("operator", &m["operator"], OPERATOR);
    if let Some(r) = &ctx.recorder {
        want("recorder", &m["recorder"], r);
    }
    for (field, asked) in [("start", start), ("end", end)] {
        if time(&m["requested"][field])
            .is_none_or(|t| apart(t, asked) >= SignedDuration::from_millis(1))
        {
            problems.push(format!(
                "requested.{field} {} is not {asked}",
                m["requested"][field]
            ));
        }
    }
    match (time(&m["delivered"]["start"]), time(&m["delivered"]["end"])) {
        (Some(s), Some(e)) if s < e => {}
        _ => problems.push(format!("delivered {} is not a range", m["delivered"])),
    }
    for field in ["exported", "spec_version"] {
        if !m[field].is_string() {
            problems.push(format!("{field} is {}, not a string", m[field]));
        }
    }
    let region_ok = m["camera"]["region"]
        .as_str()
        .is_some_and(|r| r.len() == 9 && r.bytes().all(|b| b.is_ascii_digit()));
    if !region_ok {
        problems.push(format!(
            "camera.region {} is not 9 digits",
            m["camera"]["region"]
        ));
    }
    if !m["gaps"].is_array() || !m["time_quality"].is_object() {
        problems.push("gaps or time_quality missing".into());
    }
    verdict(
        problems,
        format!(
            "manifest of {} / {}, delivered {} to {}",
            ctx.camera, ctx.stream, m["delivered"]["start"], m["delivered"]["end"]
        ),
    )
}

/// `GET /api/v1/evidence/key` gives the key that signed the package, and its fingerprint.
async fn key(ctx: &Ctx, p: &Package<'_>) -> Result<String, String> {
    let r = ctx
        .c
        .send(ctx.c.get("/api/v1/evidence/key", "/api/v1/evidence/key"))
        .await?;
    let k = r.json().filter(|_| r.status == 200).ok_or_else(|| {
        format!(
            "GET /api/v1/evidence/key: expected 200, got {}",
            r.summary()
        )
    })?;
    let (der, _) = evidence::spki(k["public_key_pem"].as_str().unwrap_or_default().as_bytes())
        .map_err(|e| format!("public_key_pem: {e}"))?;
    let (package_der, _) = evidence::spki(p.file("recorder-key.pem").unwrap_or_default())
        .map_err(|e| format!("recorder-key.pem: {e}"))?;
    if der != package_der {
        return Err("the recorder's evidence key is not the key in the package".into());
    }
    let fingerprint = evidence::hex(&sha2::Sha256::digest(&der));
    if k["fingerprint"] != fingerprint.as_str() {
        return Err(format!(
            "fingerprint {} is not the key's {fingerprint}",
            k["fingerprint"]
        ));
    }
    Ok(format!(
        "the package's key is the recorder's, fingerprint {fingerprint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_a_jpeg_is_read_from_its_frame_header() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        // SOF0: length 11, precision 8, height 90, width 160, one component.
        jpeg.extend([0xFF, 0xC0, 0, 11, 8, 0, 90, 0, 160, 1, 1, 0x11, 0]);
        jpeg.extend([0xFF, 0xDA, 0, 2, 0xFF, 0xD9]);
        assert_eq!(jpeg_size(&jpeg), Ok((160, 90)));
        assert!(jpeg_size(&jpeg[..jpeg.len() - 1]).is_err());
        assert!(jpeg_size(b"\x89PNG").is_err());
        for len in 0..jpeg.len() {
            let _ = jpeg_size(&jpeg[..len]);
        }
    }

    #[test]
    fn content_range_is_first_last_and_length() {
        assert_eq!(content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(content_range("bytes */1000"), None);
        assert_eq!(content_range("items 0-1/2"), None);
    }
}
