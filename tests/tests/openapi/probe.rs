//! Driving a running server and checking every answer against its document: requests by
//! operation, the transports (plain HTTP, or HTTP/1.1 over TLS to central's recorder port),
//! and the checks every API gets (operations served, authentication, success, statuses
//! provoked).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName};
use serde_json::{Value, json};

use super::spec::Spec;

/// A well-formed id that names nothing.
pub const UNKNOWN_ID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
/// How long a body that never ends (an event stream) is read before it is dropped.
const STREAM_WINDOW: Duration = Duration::from_millis(1500);

/// One answer of a server.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        if text.len() > 600 {
            let cut = (0..=600)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            format!("{}…", &text[..cut])
        } else {
            text.into_owned()
        }
    }

    /// The router's answer to a request no route matches.
    pub fn is_fallback(&self) -> bool {
        self.status == 404
            && self.json().is_some_and(|b| {
                b["error"]["code"] == "not_found" && b["error"]["message"] == "no such endpoint"
            })
    }
}

pub enum Auth {
    /// The checker's own token (the administrator's).
    Token,
    Missing,
    Wrong,
    /// Another token: a media token, another user's session.
    Bearer(String),
}

pub enum Body {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// A request by operation: method, path template and its arguments.
pub struct Req {
    pub method: Method,
    pub template: String,
    pub args: Vec<String>,
    pub query: String,
    pub body: Body,
    pub auth: Auth,
    /// What the request tries, for messages.
    pub note: String,
    /// A `Range` header to send.
    pub range: Option<&'static str>,
}

pub fn req(method: Method, template: &str) -> Req {
    Req {
        method,
        template: template.to_owned(),
        args: Vec::new(),
        query: String::new(),
        body: Body::Empty,
        auth: Auth::Token,
        note: String::new(),
        range: None,
    }
}

impl Req {
    pub fn arg(mut self, a: &str) -> Req {
        self.args.push(a.to_owned());
        self
    }
    pub fn query(mut self, q: &str) -> Req {
        self.query = q.to_owned();
        self
    }
    pub fn json(mut self, v: &Value) -> Req {
        self.body = Body::Json(v.clone());
        self
    }
    pub fn raw(mut self, content_type: &'static str, bytes: Vec<u8>) -> Req {
        self.body = Body::Raw(content_type, bytes);
        self
    }
    pub fn auth(mut self, a: Auth) -> Req {
        self.auth = a;
        self
    }
    pub fn bearer(self, token: &str) -> Req {
        self.auth(Auth::Bearer(token.to_owned()))
    }
    pub fn note(mut self, why: &str) -> Req {
        self.note = why.to_owned();
        self
    }
    /// Every path argument `UNKNOWN_ID`.
    pub fn unknown_ids(mut self) -> Req {
        self.args = vec![UNKNOWN_ID.to_owned(); self.template.matches('{').count()];
        self
    }

    /// The request, for messages.
    pub fn what(&self) -> String {
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.note)
        };
        format!("{} {}{note}", self.method, self.target())
    }

    /// The concrete path and query.
    pub fn target(&self) -> String {
        let mut args = self.args.iter();
        let mut path = String::new();
        for (i, part) in self.template.split('{').enumerate() {
            match part.split_once('}') {
                Some((_, rest)) if i > 0 => {
                    path.push_str(args.next().map_or("MISSING-ARG", String::as_str));
                    path.push_str(rest);
                }
                _ => path.push_str(part),
            }
        }
        if !self.query.is_empty() {
            path.push('?');
            path.push_str(&self.query);
        }
        path
    }
}

/// How requests reach the server.
pub enum Transport {
    /// Plain HTTP to a base URL (`http://127.0.0.1:PORT`).
    Http {
        base: String,
        client: reqwest::Client,
    },
    /// HTTP/1.1 over TLS 1.3 with ALPN `http/1.1`, trusting one root certificate, a connection
    /// per request: central's recorder port, as a recorder enrols.
    Tls {
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    },
}

impl Transport {
    pub fn http(base: String) -> Transport {
        Transport::Http {
            base,
            client: reqwest::Client::new(),
        }
    }

    /// TLS to `addr`, whose certificate must chain to `root_pem` and name its IP address.
    pub fn tls(addr: SocketAddr, root_pem: &str) -> Result<Transport, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let root = CertificateDer::from_pem_slice(root_pem.as_bytes())
            .map_err(|e| format!("root certificate: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(root)
            .map_err(|e| format!("root certificate: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Transport::Tls {
            addr,
            config: Arc::new(config),
        })
    }
}

/// Drives a server and checks every answer against the document.
pub struct Checker {
    pub spec: Spec,
    transport: Transport,
    /// What `Auth::Token` sends.
    token: String,
    /// The server whose operations these are (`x-served-by`); all the document's when `None`.
    served_by: Option<&'static str>,
    /// How the generic checks reach an operation where unknown ids and the checker's token
    /// would not: (method, template) → path arguments and a token.
    probes: BTreeMap<(String, String), (Vec<String>, Option<String>)>,
    pub problems: Vec<String>,
    /// (method, template, status) of every answer.
    pub seen: BTreeSet<(String, String, u16)>,
    started: Instant,
}

impl Checker {
    pub fn new(
        spec: Spec,
        transport: Transport,
        token: &str,
        served_by: Option<&'static str>,
    ) -> Checker {
        Checker {
            spec,
            transport,
            token: token.to_owned(),
            served_by,
            probes: BTreeMap::new(),
            problems: Vec::new(),
            seen: BTreeSet::new(),
            started: Instant::now(),
        }
    }

    /// The operations this checker is responsible for.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        self.spec.operations_of(self.served_by)
    }

    pub fn problem(&mut self, p: String) {
        eprintln!("openapi drift: {p}");
        self.problems.push(p);
    }

    /// Makes the generic checks reach `method template` with these path arguments and, when
    /// given, this token.
    pub fn set_probe(
        &mut self,
        method: Method,
        template: &str,
        args: &[&str],
        token: Option<&str>,
    ) {
        self.probes.insert(
            (method.to_string(), template.to_owned()),
            (
                args.iter().map(|a| (*a).to_owned()).collect(),
                token.map(str::to_owned),
            ),
        );
    }

    /// A request that reaches an operation: its probe, else unknown ids and the checker's
    /// token.
    pub fn probe(&self, method: &Method, template: &str) -> Req {
        let r = req(method.clone(), template).unknown_ids();
        match self.probes.get(&(method.to_string(), template.to_owned())) {
            Some((args, token)) => {
                let r = Req {
                    args: args.clone(),
                    ..r
                };
                match token {
                    Some(t) => r.bearer(t),
                    None => r,
                }
            }
            None => r,
        }
    }

    /// The headers and body bytes of a request.
    fn wire_parts(&self, r: &Req) -> (Vec<(HeaderName, String)>, Vec<u8>) {
        let mut headers = Vec::new();
        let bearer = match &r.auth {
            Auth::Token => Some(self.token.as_str()),
            Auth::Wrong => Some("not-the-token-0123456789"),
            Auth::Bearer(t) => Some(t.as_str()),
            Auth::Missing => None,
        };
        if let Some(t) = bearer {
            headers.push((header::AUTHORIZATION, format!("Bearer {t}")));
        }
        if let Some(range) = r.range {
            headers.push((header::RANGE, range.to_owned()));
        }
        let body = match &r.body {
            Body::Empty => Vec::new(),
            Body::Json(v) => {
                headers.push((header::CONTENT_TYPE, "application/json".to_owned()));
                serde_json::to_vec(v).expect("JSON")
            }
            Body::Raw(ct, bytes) => {
                headers.push((header::CONTENT_TYPE, (*ct).to_owned()));
                bytes.clone()
            }
        };
        (headers, body)
    }

    /// Sends a request without checking the answer.
    pub async fn send_unchecked(&self, r: &Req, own_connection: bool) -> Result<Reply, String> {
        let (headers, body) = self.wire_parts(r);
        match &self.transport {
            Transport::Http { base, client } => {
                // A server closes a connection whose body it refused unread; such a request
                // goes on a client of its own rather than poisoning the shared pool.
                let client = if own_connection {
                    reqwest::Client::new()
                } else {
                    client.clone()
                };
                let mut b = client.request(r.method.clone(), format!("{base}{}", r.target()));
                for (name, value) in headers {
                    b = b.header(name, value);
                }
                if !body.is_empty() {
                    b = b.body(body);
                }
                let mut resp = b.send().await.map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let streaming = headers
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
                let body = if streaming {
                    // An event stream never ends: what comes within the window is checked.
                    let mut body = Vec::new();
                    let deadline = tokio::time::Instant::now() + STREAM_WINDOW;
                    while let Ok(chunk) = tokio::time::timeout_at(deadline, resp.chunk()).await {
                        match chunk.map_err(|e| e.to_string())? {
                            Some(c) => body.extend_from_slice(&c),
                            None => break,
                        }
                    }
                    body
                } else {
                    resp.bytes().await.map_err(|e| e.to_string())?.to_vec()
                };
                Ok(Reply {
                    status,
                    headers,
                    body,
                })
            }
            Transport::Tls { addr, config } => {
                use http_body_util::BodyExt;
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connecting to {addr}: {e}"))?;
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS to {addr}: {e}"))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let mut b = hyper::Request::builder()
                    .method(r.method.clone())
                    .uri(r.target())
                    .header(header::HOST, addr.to_string());
                for (name, value) in headers {
                    b = b.header(name, value);
                }
                let request = b
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let resp = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let (parts, body) = resp.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Reply {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: body.to_vec(),
                })
            }
        }
    }

    /// Sends a request and checks the answer against the document.
    pub async fn send(&mut self, r: &Req, own_connection: bool) -> Option<Reply> {
        let what = r.what();
        let reply = match self.send_unchecked(r, own_connection).await {
            Ok(reply) => reply,
            Err(e) => {
                self.problem(format!("{what}: no answer: {e}"));
                return None;
            }
        };
        self.seen
            .insert((r.method.to_string(), r.template.clone(), reply.status));
        for p in self.spec.check_response(&r.method, &r.template, &reply) {
            self.problem(format!("{what} → {}: {p}", reply.status));
        }
        // A documented operation never reaches the router's fallback, even where a 404 is due.
        if reply.is_fallback() {
            self.problem(format!(
                "{what}: answered by the router's fallback (\"no such endpoint\"): not served"
            ));
        }
        Some(reply)
    }

    /// Sends a request, checks the answer, and expects `status`; returns the JSON body when
    /// the status is the expected one.
    pub async fn expect(&mut self, r: Req, status: u16) -> Option<Value> {
        let reply = self.send(&r, false).await?;
        if reply.status != status {
            self.problem(format!(
                "{}: expected {status}, got {}: {}",
                r.what(),
                reply.status,
                reply.body_text()
            ));
            return None;
        }
        Some(reply.json().unwrap_or(Value::Null))
    }

    /// A request body the server must accept: valid against the request schema too.
    pub fn valid_body(&mut self, method: &Method, template: &str, body: &Value) {
        let checked = self
            .spec
            .request_schema(method, template)
            .and_then(|s| self.spec.validate(s, body));
        if let Err(e) = checked {
            self.problem(format!(
                "{method} {template}: a body the server accepts is invalid in the document: {e}: {body}"
            ));
        }
    }

    /// A request body the server must refuse with 400: invalid against the request schema too.
    pub async fn invalid_body(&mut self, r: Req, body: &Value, why: &str) {
        match self.spec.request_schema(&r.method, &r.template) {
            Ok(schema) => {
                if self.spec.validate(schema, body).is_ok() {
                    self.problem(format!(
                        "{} {}: the document allows a body the server must refuse ({why}): {body}",
                        r.method, r.template
                    ));
                }
            }
            Err(e) => self.problem(format!("{} {}: {e}", r.method, r.template)),
        }
        self.expect(r.json(body).note(why), 400).await;
    }

    /// Polls a GET until `done` holds for its body, checking every answer.
    pub async fn poll(
        &mut self,
        make: impl Fn() -> Req,
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(body) = self.expect(make(), 200).await
                && done(&body)
            {
                return Some(body);
            }
            if Instant::now() >= deadline {
                self.problem(format!("{what}: not within {within:?}"));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every documented operation reaches a handler (neither the router's fallback nor
    /// `405`), and no undocumented method of a documented path does.
    pub async fn check_served(&mut self) {
        let operations = self.operations();
        for (method, path) in &operations {
            let method: Method = method.parse().expect("an HTTP method");
            let mut r = self.probe(&method, path);
            if [Method::POST, Method::PUT, Method::PATCH].contains(&method) {
                r = r.json(&json!({}));
            }
            // `send` reports an answer of the router's fallback.
            if let Some(reply) = self.send(&r, false).await
                && reply.status == 405
            {
                self.problem(format!(
                    "{method} {path} is documented but not served: {} {}",
                    reply.status,
                    reply.body_text()
                ));
            }
        }
        let paths: BTreeSet<&String> = operations.iter().map(|(_, p)| p).collect();
        for path in paths {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                if operations.contains(&(method.to_string(), path.clone())) {
                    continue;
                }
                let r = self.probe(&method, path);
                match self.send_unchecked(&r, false).await {
                    Ok(reply) if reply.status == 405 || reply.is_fallback() => {}
                    Ok(reply) => self.problem(format!(
                        "{method} {path} is served but not documented: {} {}",
                        reply.status,
                        reply.body_text()
                    )),
                    Err(e) => self.problem(format!("{method} {path}: no answer: {e}")),
                }
            }
        }
    }

    /// An operation that needs a token answers 401 without one or with a wrong one; one that
    /// does not, never does.
    pub async fn check_authentication(&mut self) {
        for (method, path) in self.operations() {
            let method: Method = method.parse().expect("an HTTP method");
            let secured = self
                .spec
                .operation(&method, &path)
                .is_some_and(|op| self.spec.secured(op));
            for auth in [Auth::Missing, Auth::Wrong] {
                let r = self.probe(&method, &path).auth(auth);
                if secured {
                    self.expect(r, 401).await;
                } else if let Some(reply) = self.send(&r, false).await
                    && reply.status == 401
                {
                    self.problem(format!("{method} {path} needs no token, yet answered 401"));
                }
            }
        }
    }

    /// Every operation that takes a body refuses one over 64 KiB with 413.
    pub async fn check_body_limit(&mut self) {
        for (method, path) in self.operations() {
            let method: Method = method.parse().expect("an HTTP method");
            if self.spec.request_schema(&method, &path).is_err() {
                continue;
            }
            let r = self
                .probe(&method, &path)
                .raw("application/json", vec![b' '; 64 * 1024 + 1])
                .note("a body over 64 KiB");
            if let Some(reply) = self.send(&r, true).await
                && reply.status != 413
            {
                self.problem(format!(
                    "{}: {}, not 413: {}",
                    r.what(),
                    reply.status,
                    reply.body_text()
                ));
            }
        }
    }

    /// The end of a run: every operation was answered with success, and with each status of
    /// `required` that the document gives it; then no problem may be left.
    pub fn finish(mut self, required: &[u16]) {
        let operations = self.operations();
        let mut unexercised = Vec::new();
        for (method, path) in &operations {
            let ok = self
                .seen
                .iter()
                .any(|(m, p, s)| m == method && p == path && (200..300).contains(s));
            if !ok {
                self.problem(format!("{method} {path} was never answered with success"));
            }
            let op = self
                .spec
                .operation(&method.parse().expect("a method"), path);
            let documented: Vec<u16> = op
                .and_then(|o| o["responses"].as_object())
                .into_iter()
                .flatten()
                .filter_map(|(s, _)| s.parse::<u16>().ok())
                .collect();
            for s in documented {
                if self.seen.contains(&(method.clone(), path.clone(), s)) {
                    continue;
                }
                if required.contains(&s) {
                    self.problem(format!("{method} {path} was never answered {s}"));
                } else {
                    unexercised.push(format!("{method} {path} {s}"));
                }
            }
        }
        eprintln!(
            "openapi: {}: {} (operation, status) pairs seen in {:.1} s; documented but not provoked: {}",
            self.spec.file,
            self.seen.len(),
            self.started.elapsed().as_secs_f64(),
            unexercised.join(", ")
        );
        assert!(
            self.problems.is_empty(),
            "the server and {} disagree ({} problems):\n  {}",
            self.spec.file,
            self.problems.len(),
            self.problems.join("\n  ")
        );
    }
}

/// An RFC 3339 time `secs` from now.
pub fn rfc3339_from_now(secs: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)).to_string()
}

/// A loopback port nobody listens on: bound, then released.
pub fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}
