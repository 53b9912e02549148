//! Talking to the recorder under test: requests by operation (method and path template) with
//! the administrator token, no token or another one; a log of every answer for the checks that
//! look at all of them; and raw HTTP/1.1 requests whose target no URL library may normalise.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which credential a request carries.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <the administrator token>`.
    Admin,
    /// No credential at all.
    None,
    /// `Authorization: Bearer <this>`.
    Bearer(String),
    /// No header; the administrator token as the `token` query parameter.
    AdminQuery,
    /// No header; this as the `token` query parameter.
    Query(String),
}

/// One request of an operation of the document.
pub struct Request {
    pub method: reqwest::Method,
    /// The operation's path template in the document, e.g. `/api/v1/cameras/{id}`.
    pub template: &'static str,
    /// The concrete path.
    pub path: String,
    /// The query string, already encoded, without `?`.
    pub query: String,
    pub auth: Auth,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn query(mut self, q: impl Into<String>) -> Request {
        self.query = q.into();
        self
    }
    pub fn auth(mut self, a: Auth) -> Request {
        self.auth = a;
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
    pub fn json(mut self, v: &serde_json::Value) -> Request {
        self.body = Some(v.to_string().into_bytes());
        self
    }
}

/// One answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of an error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()?["error"]["code"].as_str().map(str::to_owned)
    }

    /// What came back, for messages: the status and the error code or a short body.
    pub fn summary(&self) -> String {
        match self.error_code() {
            Some(code) => format!("{} {code}", self.status),
            None if self.body.is_empty() => format!("{} (empty body)", self.status),
            None => format!("{} ({} bytes)", self.status, self.body.len()),
        }
    }
}

/// An answer kept for the checks over every answer: its operation, and its body unless it is
/// media.
pub struct Logged {
    pub method: String,
    pub template: &'static str,
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

/// Media types whose bodies are not kept in the log.
const MEDIA_TYPES: [&str; 3] = ["video/mp4", "image/jpeg", "application/x-tar"];

pub struct Client {
    base: String,
    host_port: String,
    token: String,
    http: reqwest::Client,
    log: Mutex<Vec<Logged>>,
}

impl Client {
    /// A client of the recorder at `url` (`http://HOST:PORT`).
    pub fn new(url: &str, token: &str) -> Result<Client, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--url {url}: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "--url {url}: the suite speaks plain HTTP (http://HOST:PORT)"
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("--url {url}: no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        if parsed.path() != "/" && !parsed.path().is_empty() {
            return Err(format!(
                "--url {url}: give the recorder's root, without a path"
            ));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client {
            base: format!("http://{host}:{port}"),
            host_port: format!("{host}:{port}"),
            token: token.to_owned(),
            http,
            log: Mutex::new(Vec::new()),
        })
    }

    pub fn get(&self, template: &'static str, path: impl Into<String>) -> Request {
        self.request(reqwest::Method::GET, template, path)
    }

    pub fn post(&self, template: &'static str, path: impl Into<String>) -> Request {
        self.request(reqwest::Method::POST, template, path)
    }

    fn request(
        &self,
        method: reqwest::Method,
        template: &'static str,
        path: impl Into<String>,
    ) -> Request {
        Request {
            method,
            template,
            path: path.into(),
            query: String::new(),
            auth: Auth::Admin,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Sends a request and logs its answer; `Err` when no answer came.
    pub async fn send(&self, r: Request) -> Result<Reply, String> {
        let mut query = r.query.clone();
        let query_token = match &r.auth {
            Auth::AdminQuery => Some(self.token.as_str()),
            Auth::Query(t) => Some(t.as_str()),
            _ => None,
        };
        if let Some(t) = query_token {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("token=");
            query.push_str(&encode(t));
        }
        let target = if query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{query}", r.path)
        };
        let what = format!("{} {}", r.method, target);
        let mut b = self
            .http
            .request(r.method.clone(), format!("{}{target}", self.base));
        match &r.auth {
            Auth::Admin => b = b.bearer_auth(&self.token),
            Auth::Bearer(t) => b = b.bearer_auth(t),
            Auth::None | Auth::AdminQuery | Auth::Query(_) => {}
        }
        for (k, v) in &r.headers {
            b = b.header(*k, v);
        }
        if let Some(body) = r.body {
            b = b.header(CONTENT_TYPE, "application/json").body(body);
        }
        let resp = b.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("{what}: reading the body: {e}"))?
            .to_vec();
        let media = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| MEDIA_TYPES.iter().any(|m| t.starts_with(m)));
        let logged = Logged {
            method: r.method.as_str().to_ascii_lowercase(),
            template: r.template,
            what,
            status,
            headers: headers.clone(),
            body: (!media).then(|| body.clone()),
        };
        self.log
            .lock()
            .map_err(|_| "the answer log is poisoned".to_owned())?
            .push(logged);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Every answer so far.
    pub fn take_log(&self) -> Vec<Logged> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// A GET of `target` (path and query exactly as given, never normalised) with the
    /// administrator token, over a connection of its own; the status of the answer.
    pub async fn raw_get_status(&self, target: &str) -> Result<u16, String> {
        let io = async {
            let mut s = tokio::net::TcpStream::connect(&self.host_port)
                .await
                .map_err(|e| e.to_string())?;
            let req = format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
                 Connection: close\r\n\r\n",
                self.host_port, self.token
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(2).any(|w| w == b"\r\n") {
                let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the connection closed before a status line".to_owned());
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            line.split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| "no HTTP status line".to_owned())
        };
        tokio::time::timeout(Duration::from_secs(30), io)
            .await
            .map_err(|_| format!("GET {target}: no answer within 30 s"))?
            .map_err(|e| format!("GET {target}: {e}"))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
