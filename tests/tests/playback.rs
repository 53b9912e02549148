//! End-to-end tests of playback: a real recorder records a simulated camera across several
//! segments and a reconnect; the HLS playlist must play in ffmpeg without an error, byte
//! ranges must equal the whole file, and bad requests must get clear 4xx answers.

use std::process::Command;
use std::time::Duration;

use rand::Rng;
use vms_core::time::{Duration90k, Time90k};
use vms_core::wire;
use vms_tests::camsim::stream::Fault;
use vms_tests::recorder::{
    ADMIN_TOKEN, RecorderDirs, RemoteRecorder, camera_toml, eventually, now, sim, t,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_playback_over_segments_and_a_reconnect_plays_in_ffmpeg() {
    let sim = sim(
        "[[camera]]\nname = \"p\"\n[[camera.streams]]\nwidth = 640\nheight = 360\nfps = 15\n\
         gop_frames = 15\n",
    );
    let dirs = RecorderDirs::new(&format!(
        "segment_secs = 10\n{}",
        camera_toml("p", &[("main", sim.url("p", "main", None))])
    ));
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let id = rec.cameras().await.unwrap().cameras[0].id.clone();
    let from = now() - Duration90k::from_secs(5);
    let listing = || async {
        rec.recordings(&id, "main", &from.to_rfc3339(), &now().to_rfc3339())
            .await
            .unwrap()
    };
    // Two closed segments, then a dropped connection, then one more closed segment.
    eventually(Duration::from_secs(40), || async {
        (listing().await.ranges.first()?.segments >= 3).then_some(())
    })
    .await
    .expect("segments close");
    sim.fault("p", "main", &Fault::Drop).await.unwrap();
    let l = eventually(Duration::from_secs(40), || async {
        let l = listing().await;
        (l.ranges.len() >= 2 && l.ranges[1].segments >= 2).then_some(l)
    })
    .await
    .expect("recording resumes after the drop");
    assert!(l.gaps.iter().any(|g| g.reason == "disconnect"), "{l:?}");
    let (start, end) = (
        t(&l.ranges[0].start) + Duration90k::from_secs(2),
        t(&l.ranges[1].end),
    );

    // The playlist, with the token in the query as a <video> element would send it.
    let url = |start: Time90k, end: Time90k| {
        rec.url(&format!(
            "/api/v1/cameras/{id}/playback.m3u8?stream=main&start={}&end={}&token={ADMIN_TOKEN}",
            start.to_rfc3339(),
            end.to_rfc3339()
        ))
    };
    let r = reqwest::get(url(start, end)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1, "{text}");
    assert!(!text.contains("Authorization"));

    // ffmpeg plays it end to end without an error, and decodes about the frames of the range.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(url(start, end))
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");
    let decoded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as i64;
    let frames_in_ranges: i64 = l.ranges.iter().map(|r| r.frames as i64).sum();
    // The playlist starts at the keyframe before `start` (at most one GOP, 15 frames, early).
    let skipped = (start - t(&l.ranges[0].start)).0 / 6000;
    let expected = frames_in_ranges - skipped;
    assert!(
        (expected - 15..=expected).contains(&decoded),
        "decoded {decoded}, expected {expected} less at most a GOP"
    );

    // Every byte range of a segment equals the same bytes of the whole file.
    let segment = text
        .lines()
        .find(|l| l.starts_with("segments/"))
        .expect("a media URI")
        .to_owned();
    let seg_url = rec.url(&format!("/api/v1/cameras/{id}/{segment}"));
    let whole = reqwest::get(&seg_url).await.unwrap();
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].clone();
    let whole = whole.bytes().await.unwrap();
    assert!(whole.len() > 10_000);
    let mut rng = rand::rng();
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let a = rng.random_range(0..whole.len());
        let b = rng.random_range(a..whole.len());
        let r = http
            .get(&seg_url)
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["etag"], etag);
        assert_eq!(r.bytes().await.unwrap(), whole[a..=b]);
    }
    let r = http
        .get(&seg_url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = http
        .get(&seg_url)
        .header("range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // Bad requests: clear 4xx, nothing outside the archive opened.
    let base = format!("/api/v1/cameras/{id}");
    let range = |a: Time90k, b: Time90k| format!("start={}&end={}", a.to_rfc3339(), b.to_rfc3339());
    let far = Time90k::parse_rfc3339("2001-01-01T00:00:00Z").unwrap();
    for (path, status) in [
        (
            format!("{base}/playback.m3u8?stream=main&{}", range(end, start)),
            400,
        ),
        (
            format!("{base}/playback.m3u8?stream=main&start=yesterday&end=today"),
            400,
        ),
        (
            format!(
                "{base}/playback.m3u8?stream=main&{}",
                range(far, far + Duration90k::from_secs(3600 * 48))
            ),
            400,
        ),
        (
            format!(
                "{base}/playback.m3u8?stream=main&{}",
                range(far, far + Duration90k::from_secs(60))
            ),
            404,
        ),
        (
            format!("{base}/playback.m3u8?stream=..%2F..&{}", range(start, end)),
            400,
        ),
        (
            format!("{base}/playback.m3u8?stream=main%00&{}", range(start, end)),
            400,
        ),
        (
            format!(
                "/api/v1/cameras/01ARZ3NDEKTSV4RRFFQ69G5FAV/playback.m3u8?stream=main&{}",
                range(start, end)
            ),
            404,
        ),
        (
            format!("{base}/segments/..%2F..%2F..%2Fetc%2Fpasswd?stream=main"),
            404,
        ),
        (format!("{base}/segments/%2e%2e.mp4?stream=main"), 404),
        (format!("{base}/segments/123.mp4?stream=main"), 404),
        (format!("{base}/segments/123.mp4?stream=..%2F"), 400),
    ] {
        let r = rec
            .request(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let e: wire::ErrorBody = r.json().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!e.error.message.is_empty());
    }
    // Without a token, nothing.
    let r = reqwest::get(url(start, end).replace(&format!("&token={ADMIN_TOKEN}"), ""))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::get(url(start, end).replace(ADMIN_TOKEN, "wrong-token-0123456789"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
