//! A deliberately small RTSP/1.0 client for the conformance probe: one TCP connection,
//! requests with Digest (or Basic) authorisation, responses and interleaved RTP/RTCP frames
//! read from the same stream. Unlike ingest, it is strict and tolerant at once: it reports
//! exactly what the camera said instead of recovering from it. Sizes are bounded; a camera
//! cannot make it allocate more than a response or a frame.

use std::collections::BTreeMap;
use std::time::Duration;

use md5::{Digest as _, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vms_core::{Error, bail, err};

/// A response's head and body at most this long.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a request waits for its response.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// An RTSP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header values by lower-case name; repeated headers keep every value.
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What arrives on the connection.
pub enum Message {
    Response(Response),
    /// An interleaved frame: channel and payload.
    Data(u8, Vec<u8>),
    /// A request from the camera (rare); the probe ignores it.
    Request,
}

/// A challenge from `WWW-Authenticate`.
#[derive(Clone, Debug, PartialEq)]
pub enum Challenge {
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        qop_auth: bool,
    },
    Basic,
}

impl Challenge {
    /// Every challenge a 401 offers, in order. Unknown schemes are left out.
    pub fn parse_all(response: &Response) -> Vec<Challenge> {
        response
            .all("www-authenticate")
            .iter()
            .filter_map(|v| Challenge::parse(v))
            .collect()
    }

    fn parse(value: &str) -> Option<Challenge> {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = auth_params(rest);
        let algorithm_ok = params
            .get("algorithm")
            .is_none_or(|a| a.eq_ignore_ascii_case("md5"));
        Some(Challenge::Digest {
            realm: params.get("realm")?.clone(),
            nonce: params.get("nonce")?.clone(),
            opaque: params.get("opaque").cloned(),
            qop_auth: algorithm_ok
                && params
                    .get("qop")
                    .is_some_and(|q| q.split(',').any(|q| q.trim() == "auth")),
        })
    }
}

/// `name=value` or `name="value"` pairs, comma separated, names lower-cased.
fn auth_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.insert(name.trim().to_ascii_lowercase(), value.to_owned());
        rest = tail.trim_start_matches([',', ' ', '\t']);
    }
    out
}

/// Credentials and the challenge they answer.
#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
    pub challenge: Challenge,
}

fn md5_hex(s: &str) -> String {
    vms_core::hex::encode(&Md5::digest(s.as_bytes()))
}

impl Login {
    /// The `Authorization` header value for one request (RFC 2617; `nc` counts requests).
    fn authorization(&self, method: &str, uri: &str, nc: u32) -> String {
        match &self.challenge {
            Challenge::Basic => {
                use base64::Engine as _;
                let raw = format!("{}:{}", self.username, self.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                qop_auth,
            } => {
                let ha1 = md5_hex(&format!("{}:{realm}:{}", self.username, self.password));
                let ha2 = md5_hex(&format!("{method}:{uri}"));
                let mut value = format!(
                    "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"",
                    self.username
                );
                let response = if *qop_auth {
                    let cnonce = format!("{:016x}", rand::random::<u64>());
                    let nc = format!("{nc:08x}");
                    value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
                    md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
                } else {
                    md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
                };
                value.push_str(&format!(", response=\"{response}\""));
                if let Some(opaque) = opaque {
                    value.push_str(&format!(", opaque=\"{opaque}\""));
                }
                value
            }
        }
    }
}

/// One RTSP connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    cseq: u32,
    pub login: Option<Login>,
    pub session: Option<String>,
    /// Messages that arrived while waiting for a response, with their arrival: interleaved
    /// data before PLAY's answer, for instance. Read them back with [`Connection::next`].
    pending: std::collections::VecDeque<(Instant, Message)>,
}

impl Connection {
    pub async fn connect(host: &str, port: u16) -> Result<Connection, Error> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| err!(Unavailable, "connecting to {host}:{port} timed out"))?
            .map_err(|e| err!(Unavailable, "connecting to {host}:{port}: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Connection {
            stream,
            buf: Vec::new(),
            cseq: 0,
            login: None,
            session: None,
            pending: Default::default(),
        })
    }

    /// Sends a request and waits for its response, keeping anything else that arrives.
    pub async fn request(
        &mut self,
        method: &str,
        uri: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response, Error> {
        self.cseq += 1;
        let mut head = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: vms-check-camera/1\r\n",
            self.cseq
        );
        if let Some(login) = &self.login {
            head.push_str(&format!(
                "Authorization: {}\r\n",
                login.authorization(method, uri, self.cseq)
            ));
        }
        if let Some(session) = &self.session {
            head.push_str(&format!("Session: {session}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| err!(Unavailable, "{method}: sending: {e}"))?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| err!(Unavailable, "{method}: no answer within 5 s"))??;
            match message {
                Message::Response(r) => {
                    let cseq = r.header("cseq").and_then(|c| c.trim().parse::<u32>().ok());
                    if cseq.is_some_and(|c| c != self.cseq) {
                        continue; // a late answer to an earlier request
                    }
                    return Ok(r);
                }
                other => self.pending.push_back((Instant::now(), other)),
            }
        }
    }

    /// The next message and when it arrived: one kept while waiting for a response, or a
    /// new one.
    pub async fn next(&mut self) -> Result<(Instant, Message), Error> {
        match self.pending.pop_front() {
            Some(m) => Ok(m),
            None => {
                let m = self.read().await?;
                Ok((Instant::now(), m))
            }
        }
    }

    /// Reads the next message. Cancel-safe: bytes read stay in the buffer until a whole
    /// message is there, so a timeout around it loses nothing.
    async fn read(&mut self) -> Result<Message, Error> {
        loop {
            if let Some((message, used)) = parse_message(&self.buf)? {
                self.buf.drain(..used);
                return Ok(message);
            }
            self.buf.reserve(16 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => bail!(Unavailable, "the camera closed the connection"),
                Ok(_) => {}
                Err(e) => bail!(Unavailable, "reading from the camera: {e}"),
            }
        }
    }
}

/// A whole message at the start of `buf` and its length, `None` if more bytes are needed.
fn parse_message(buf: &[u8]) -> Result<Option<(Message, usize)>, Error> {
    if buf.first() == Some(&b'$') {
        let Some(h) = buf.get(1..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([h[1], h[2]]));
        return Ok(buf
            .get(4..4 + len)
            .map(|data| (Message::Data(h[0], data.to_vec()), 4 + len)));
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2));
    let Some(head_len) = end else {
        if buf.len() >= MAX_HEAD_BYTES {
            bail!(
                InvalidArgument,
                "an RTSP message head over {MAX_HEAD_BYTES} bytes"
            );
        }
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..head_len]);
    let mut lines = text.lines();
    let start = lines.next().unwrap_or_default().trim().to_owned();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            bail!(InvalidArgument, "a malformed RTSP header line {line:?}");
        };
        headers
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_owned());
    }
    let len = match headers.get("content-length").and_then(|v| v.first()) {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= MAX_BODY_BYTES)
            .ok_or_else(|| err!(InvalidArgument, "Content-Length {v:?}"))?,
        None => 0,
    };
    let Some(body) = buf.get(head_len..head_len + len) else {
        return Ok(None);
    };
    let used = head_len + len;
    if let Some(rest) = start.strip_prefix("RTSP/1.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code
            .parse::<u16>()
            .map_err(|_| err!(InvalidArgument, "a malformed status line {start:?}"))?;
        let response = Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: body.to_vec(),
        };
        return Ok(Some((Message::Response(response), used)));
    }
    match start.split_once(' ') {
        Some(_) if start.ends_with("RTSP/1.0") => Ok(Some((Message::Request, used))),
        _ => bail!(InvalidArgument, "not an RTSP/1.0 message: {start:?}"),
    }
}

/// The value of a `Session` header: the id and its timeout in seconds, if given.
pub fn parse_session(value: &str) -> (String, Option<u64>) {
    let mut parts = value.split(';');
    let id = parts.next().unwrap_or_default().trim().to_owned();
    let timeout = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("timeout")
            .then(|| v.trim().parse().ok())?
    });
    (id, timeout)
}

/// The `interleaved=` channels and `ssrc=` of a `Transport` reply.
pub fn parse_transport(value: &str) -> (Option<(u8, u8)>, Option<u32>) {
    let mut channels = None;
    let mut ssrc = None;
    for part in value.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "interleaved" => {
                let (a, b) = v.split_once('-').unwrap_or((v, v));
                if let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse()) {
                    channels = Some((a, b));
                }
            }
            "ssrc" => ssrc = u32::from_str_radix(v.trim(), 16).ok(),
            _ => {}
        }
    }
    (channels, ssrc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_with(challenges: &[&str]) -> Response {
        let mut headers = BTreeMap::new();
        headers.insert(
            "www-authenticate".to_owned(),
            challenges.iter().map(|c| c.to_string()).collect(),
        );
        Response {
            status: 401,
            reason: "Unauthorized".into(),
            headers,
            body: vec![],
        }
    }

    #[test]
    fn challenges_are_parsed() {
        let r = response_with(&[
            r#"Digest realm="cam", nonce="abc,def", qop="auth,auth-int", opaque="o""#,
            "Basic realm=\"cam\"",
            "Negotiate",
        ]);
        assert_eq!(
            Challenge::parse_all(&r),
            vec![
                Challenge::Digest {
                    realm: "cam".into(),
                    nonce: "abc,def".into(),
                    opaque: Some("o".into()),
                    qop_auth: true
                },
                Challenge::Basic
            ]
        );
        // No nonce: not a usable challenge.
        assert!(Challenge::parse_all(&response_with(&["Digest realm=\"x\""])).is_empty());
    }

    #[test]
    fn digest_response_matches_rfc_2617_example() {
        // The worked example of RFC 2617 section 3.5, qop=auth with a fixed cnonce, checked
        // by recomputing the response from its parts.
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex("GET:/dir/index.html");
        let response = md5_hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
        // Without qop (RFC 2069 style) the header carries no nc or cnonce.
        let login = Login {
            username: "u".into(),
            password: "p".into(),
            challenge: Challenge::Digest {
                realm: "r".into(),
                nonce: "n".into(),
                opaque: None,
                qop_auth: false,
            },
        };
        let value = login.authorization("DESCRIBE", "rtsp://h/x", 1);
        let expected = md5_hex(&format!(
            "{}:n:{}",
            md5_hex("u:r:p"),
            md5_hex("DESCRIBE:rtsp://h/x")
        ));
        assert!(
            value.ends_with(&format!("response=\"{expected}\"")),
            "{value}"
        );
        assert!(!value.contains("nc="));
    }

    #[test]
    fn messages_are_parsed_whole_or_not_at_all() {
        let wire = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nabc$\x00\x00\x02hi";
        for cut in 0..wire.len() {
            let parsed = parse_message(&wire[..cut]).unwrap();
            let head = wire.len() - 6;
            assert_eq!(parsed.is_some(), cut >= head, "cut {cut}");
        }
        let (m, used) = parse_message(wire).unwrap().unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(
            (r.status, r.header("CSEQ"), &r.body[..]),
            (200, Some("2"), &b"abc"[..])
        );
        let Some((Message::Data(0, data), 6)) = parse_message(&wire[used..]).unwrap() else {
            panic!()
        };
        assert_eq!(data, b"hi");
        assert!(parse_message(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_message(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n").is_err());
        assert!(parse_message(&vec![b'a'; MAX_HEAD_BYTES]).is_err());
    }

    #[test]
    fn session_and_transport_headers() {
        assert_eq!(
            parse_session("12345678;timeout=30"),
            ("12345678".into(), Some(30))
        );
        assert_eq!(parse_session("abc"), ("abc".into(), None));
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=0A0b0C0d;mode=\"PLAY\""),
            (Some((2, 3)), Some(0x0a0b_0c0d))
        );
        assert_eq!(
            parse_transport("RTP/AVP;unicast;client_port=5000-5001"),
            (None, None)
        );
    }
}
