//! The conformance probe: one scripted RTSP conversation with a camera that records what it
//! answered and what it sent. Authentication is tried without credentials and with a wrong
//! password before the right one; the stream is played over interleaved TCP for the probe's
//! duration with keep-alives; then TEARDOWN and a second session. Nothing here judges: the
//! rules do that from the observations.

use std::time::Duration;

use tokio::time::Instant;

use super::nal::{self, Codec, NalKind};
use super::rtp::{self, Receiver};
use super::rtsp::{self, Challenge, Connection, Login, Message, Response};
use super::rules::{AuthOutcome, Observations, RECONNECT_WITHIN, SetupInfo, VideoInfo};
use crate::clock::Clocks;

/// Where and how to probe.
pub struct Target {
    /// `rtsp://host[:port]/path`, without credentials.
    pub url: url::Url,
    pub username: Option<String>,
    pub password: Option<String>,
    pub duration: Duration,
}

/// A wrong password that no camera's real one is.
const WRONG_PASSWORD: &str = "vms-conformance-wrong-password";

fn status_text(r: &Response) -> String {
    format!("answered {} {}", r.status, r.reason)
}

/// Runs the probe. It never fails: whatever went wrong is in the observations.
pub async fn run(target: &Target, clocks: &dyn Clocks) -> Observations {
    let mut o = Observations::new();
    o.checker_clock_synced = clocks.quality().recorder_synced;
    // An IPv6 literal without its brackets, as a socket address wants it.
    let host = target
        .url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = target.url.port().unwrap_or(554);
    let url = target.url.as_str().to_owned();
    let mut conn = match Connection::connect(&host, port).await {
        Ok(c) => c,
        Err(e) => {
            o.connect = Err(e.to_string());
            return o;
        }
    };
    let Some(describe) = authenticate(&mut conn, target, &url, &host, port, &mut o).await else {
        return o;
    };
    // OPTIONS once authenticated (some cameras want credentials for it too).
    o.options = match conn.request("OPTIONS", &url, &[]).await {
        Ok(r) if r.status == 200 => Ok(r
            .header("public")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()),
        Ok(r) => Err(status_text(&r)),
        Err(e) => Err(e.to_string()),
    };
    let base = describe
        .header("content-base")
        .or(describe.header("content-location"))
        .unwrap_or(&url)
        .to_owned();
    let sdp = String::from_utf8_lossy(&describe.body).into_owned();
    let Some(video) = super::sdp::parse_video(&sdp, &base) else {
        o.video = Err("the SDP has no video media section".into());
        return o;
    };
    let codec = match video.encoding.to_ascii_uppercase().as_str() {
        "H264" => Some(Codec::H264),
        "H265" => Some(Codec::H265),
        _ => None,
    };
    o.video = Ok(VideoInfo {
        encoding: video.encoding.clone(),
        clock_rate: video.clock_rate,
        codec,
        framerate: video.framerate,
        parameter_sets: video.parameter_sets.clone(),
        bad_parameter_sets: video.bad_parameter_sets,
    });
    let Some(channels) = setup(&mut conn, &video.control, &mut o).await else {
        return o;
    };
    let (play_url, started) = match play(&mut conn, &base, &url).await {
        Ok(played) => {
            o.play = Ok(());
            played
        }
        Err(e) => {
            o.play = Err(e);
            return o;
        }
    };
    let keepalive = if o
        .options
        .as_ref()
        .is_ok_and(|p| p.iter().any(|m| m.eq_ignore_ascii_case("GET_PARAMETER")))
    {
        "GET_PARAMETER"
    } else {
        "OPTIONS"
    };
    let timeout = o
        .setup
        .as_ref()
        .ok()
        .and_then(|s| s.timeout_secs)
        .unwrap_or(60);
    let keepalive_every = Duration::from_secs((timeout / 2).clamp(1, 10));
    let mut receiver = Receiver::new(codec, video.payload_type);
    let end = started + target.duration;
    let mut next_keepalive = started + keepalive_every;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_keepalive {
            next_keepalive += keepalive_every;
            let result = conn
                .request(keepalive, &play_url, &[])
                .await
                .map(|r| r.status)
                .map_err(|e| e.to_string());
            let failed = result.is_err();
            o.keepalives.push((now - started, keepalive, result));
            if failed {
                o.ended_early = Some((now - started, "the keep-alive got no answer".into()));
                break;
            }
            continue;
        }
        let wait = end.min(next_keepalive);
        let (at, message) = match tokio::time::timeout_at(wait, conn.next()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                o.ended_early = Some((Instant::now() - started, e.to_string()));
                break;
            }
            Ok(Ok(m)) => m,
        };
        let since = at.saturating_duration_since(started);
        match message {
            Message::Data(ch, data) if ch == channels.0 => receiver.packet(&data, since),
            Message::Data(ch, data) if ch == channels.1 => {
                let now_us = (clocks.realtime().unix_nanos() / 1000) as i64;
                for camera_us in rtp::sender_reports(&data) {
                    o.sender_reports.push((since, (camera_us - now_us) / 1000));
                }
            }
            Message::Data(..) => o.foreign_channel_frames += 1,
            Message::Response(_) | Message::Request => {}
        }
    }
    o.duration = Instant::now().saturating_duration_since(started);
    if let Some(last) = receiver.frames.last() {
        let quiet = o.duration.saturating_sub(last.arrival);
        if o.ended_early.is_none() && quiet > Duration::from_secs(2) {
            o.ended_early = Some((
                last.arrival,
                format!("no media for the last {:.1} s", quiet.as_secs_f64()),
            ));
        }
    }
    finish_media(&mut o, receiver, codec);
    if o.ended_early.is_none() {
        o.teardown = Some(
            conn.request("TEARDOWN", &play_url, &[])
                .await
                .map(|r| r.status)
                .map_err(|e| e.to_string()),
        );
        drop(conn);
        o.reconnect = Some(reconnect(target, &url, &host, port).await);
    }
    o
}

/// Tries DESCRIBE without credentials, with a wrong password and with the right one; returns
/// the answer that carries the SDP, or `None` when the probe cannot go on.
async fn authenticate(
    conn: &mut Connection,
    target: &Target,
    url: &str,
    host: &str,
    port: u16,
    o: &mut Observations,
) -> Option<Response> {
    let accept = [("Accept", "application/sdp")];
    let first = match conn.request("DESCRIBE", url, &accept).await {
        Ok(r) => r,
        Err(e) => {
            o.auth = AuthOutcome::Unexpected(e.to_string());
            return None;
        }
    };
    match first.status {
        200 => {
            o.auth = AuthOutcome::NotRequired;
            return described(first, o);
        }
        401 => {}
        _ => {
            o.auth = AuthOutcome::Unexpected(status_text(&first));
            o.video = Err(status_text(&first));
            return None;
        }
    }
    let challenges = Challenge::parse_all(&first);
    let digest = challenges
        .iter()
        .any(|c| matches!(c, Challenge::Digest { .. }));
    let basic = challenges.contains(&Challenge::Basic);
    let (Some(username), Some(password)) = (&target.username, &target.password) else {
        o.auth = AuthOutcome::NoCredentials;
        return None;
    };
    let Some(challenge) = challenges
        .iter()
        .find(|c| matches!(c, Challenge::Digest { .. }))
        .or(challenges.first())
        .cloned()
    else {
        o.auth = AuthOutcome::Unexpected("401 without a usable WWW-Authenticate challenge".into());
        return None;
    };
    conn.login = Some(Login {
        username: username.clone(),
        password: WRONG_PASSWORD.to_owned(),
        challenge: challenge.clone(),
    });
    let wrong = conn.request("DESCRIBE", url, &accept).await;
    let mut challenge = challenge;
    // A camera may close the connection after a failed login, or send a fresh nonce.
    let wrong_password = match &wrong {
        Ok(r) => {
            if let Some(fresh) = Challenge::parse_all(r)
                .into_iter()
                .find(|c| std::mem::discriminant(c) == std::mem::discriminant(&challenge))
            {
                challenge = fresh;
            }
            Ok(r.status)
        }
        Err(e) => Err(e.to_string()),
    };
    if wrong.is_err() {
        match Connection::connect(host, port).await {
            Ok(c) => *conn = c,
            Err(e) => {
                o.auth =
                    AuthOutcome::Unexpected(format!("reconnecting after a wrong password: {e}"));
                return None;
            }
        }
    }
    conn.login = Some(Login {
        username: username.clone(),
        password: password.clone(),
        challenge,
    });
    let right = conn.request("DESCRIBE", url, &accept).await;
    let right_password = right.as_ref().map(|r| r.status).map_err(|e| e.to_string());
    o.auth = AuthOutcome::Challenged {
        digest,
        basic,
        wrong_password,
        right_password,
    };
    match right {
        Ok(r) if r.status == 200 => described(r, o),
        Ok(r) => {
            o.video = Err(format!("with the credentials: {}", status_text(&r)));
            None
        }
        Err(e) => {
            o.video = Err(e.to_string());
            None
        }
    }
}

/// A DESCRIBE answer that must carry an SDP.
fn described(r: Response, o: &mut Observations) -> Option<Response> {
    let is_sdp = r
        .header("content-type")
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if is_sdp && !r.body.is_empty() {
        Some(r)
    } else {
        o.video = Err("DESCRIBE answered 200 without an application/sdp body".into());
        None
    }
}

/// SETUP of the video track over interleaved TCP; the RTP and RTCP channels.
async fn setup(conn: &mut Connection, control: &str, o: &mut Observations) -> Option<(u8, u8)> {
    let transport = [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")];
    let r = match conn.request("SETUP", control, &transport).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            o.setup = Err(status_text(&r));
            return None;
        }
        Err(e) => {
            o.setup = Err(e.to_string());
            return None;
        }
    };
    let Some((id, timeout_secs)) = r.header("session").map(rtsp::parse_session) else {
        o.setup = Err("no Session header".into());
        return None;
    };
    let (channels, ssrc) = rtsp::parse_transport(r.header("transport").unwrap_or_default());
    let Some(channels) = channels else {
        o.setup = Err("the Transport reply names no interleaved channels".into());
        return None;
    };
    conn.session = Some(id);
    o.setup = Ok(SetupInfo { timeout_secs, ssrc });
    Some(channels)
}

/// Keeps the frames and parameter sets, and parses the SPS the stream uses.
fn finish_media(o: &mut Observations, receiver: Receiver, codec: Option<Codec>) {
    o.frames = receiver.frames;
    o.stats = receiver.stats;
    o.in_band_parameter_sets = receiver.parameter_sets;
    let Some(codec) = codec else {
        return;
    };
    let sdp_sets = o
        .video
        .as_ref()
        .map(|v| v.parameter_sets.clone())
        .unwrap_or_default();
    let find = |kind| {
        o.in_band_parameter_sets
            .iter()
            .chain(sdp_sets.iter())
            .find(|s| codec.kind(s) == Some(kind))
            .cloned()
    };
    o.sps = find(NalKind::Sps).map(|s| nal::parse_sps(codec, &s).map_err(|e| e.to_string()));
    if codec == Codec::H265 {
        o.vps_fps = find(NalKind::Vps).and_then(|v| nal::h265_vps_fps(&v).ok().flatten());
    }
}

/// PLAY from the start on the aggregate URL (the SDP's base, else the stream's URL): that URL
/// and when the answer came, or what went wrong.
async fn play(conn: &mut Connection, base: &str, url: &str) -> Result<(String, Instant), String> {
    let play_url = if base.starts_with("rtsp://") {
        base
    } else {
        url
    }
    .to_owned();
    let r = conn
        .request("PLAY", &play_url, &[("Range", "npt=0.000-")])
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(status_text(&r));
    }
    Ok((play_url, Instant::now()))
}

/// A second session right after TEARDOWN: the time from its PLAY answer to its first RTP.
async fn reconnect(target: &Target, url: &str, host: &str, port: u16) -> Result<Duration, String> {
    let mut conn = Connection::connect(host, port)
        .await
        .map_err(|e| e.to_string())?;
    let accept = [("Accept", "application/sdp")];
    let mut r = conn
        .request("DESCRIBE", url, &accept)
        .await
        .map_err(|e| e.to_string())?;
    if r.status == 401 {
        let challenge = Challenge::parse_all(&r)
            .into_iter()
            .find(|c| matches!(c, Challenge::Digest { .. }))
            .ok_or("no Digest challenge")?;
        conn.login = Some(Login {
            username: target.username.clone().unwrap_or_default(),
            password: target.password.clone().unwrap_or_default(),
            challenge,
        });
        r = conn
            .request("DESCRIBE", url, &accept)
            .await
            .map_err(|e| e.to_string())?;
    }
    if r.status != 200 {
        return Err(format!("DESCRIBE {}", status_text(&r)));
    }
    let base = r.header("content-base").unwrap_or(url).to_owned();
    let video = super::sdp::parse_video(&String::from_utf8_lossy(&r.body), &base)
        .ok_or("the SDP has no video")?;
    let mut scratch = Observations::new();
    let channels = setup(&mut conn, &video.control, &mut scratch)
        .await
        .ok_or_else(|| format!("SETUP: {}", scratch.setup.err().unwrap_or_default()))?;
    let (play_url, played) = play(&mut conn, &base, url)
        .await
        .map_err(|e| format!("PLAY {e}"))?;
    let deadline = played + RECONNECT_WITHIN + Duration::from_secs(3);
    let first = loop {
        match tokio::time::timeout_at(deadline, conn.next()).await {
            Err(_) => return Err("no RTP within 5 s of PLAY".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok((at, Message::Data(ch, _)))) if ch == channels.0 => break at,
            Ok(Ok(_)) => {}
        }
    };
    conn.request("TEARDOWN", &play_url, &[]).await.ok();
    Ok(first.saturating_duration_since(played))
}
