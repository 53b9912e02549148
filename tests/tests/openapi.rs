//! The recorder API's OpenAPI document (`spec/openapi/recorder.yaml`) against the code, so that
//! CI fails when the two drift apart:
//!
//! - **Declared routes:** a small scanner reads the `.route("…", get(…).post(…))` calls of
//!   `vms-recorder/src` (no Rust parsing beyond tokens); their (method, path) pairs must be
//!   exactly the document's operations.
//! - **Served routes:** a real recorder answers every documented operation with something other
//!   than its router's fallback (`404 not_found "no such endpoint"`) or `405`, and answers every
//!   undocumented method of a documented path with one of those.
//! - **Responses:** every operation is driven with valid and invalid requests. Each answer's
//!   status must be documented for its operation, its documented headers present, its media
//!   type the documented one, and its body valid against the documented schema. Request bodies
//!   are checked against the request schemas too: the valid ones must be valid there, and the
//!   ones the recorder refuses must be invalid there.
//! - **The document itself:** every `$ref` resolves and every example is valid.
//!
//! Failures are collected and reported together, one line each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use vms_core::id::{CameraId, RecorderId, UserId};
use vms_core::token::{self, Claims, Purpose, TokenKey};
use vms_tests::camsim::remote::RemoteSim;
use vms_tests::camsim::stream::Fault;
use vms_tests::recorder::{ADMIN_TOKEN, RecorderDirs, RemoteRecorder};

/// The document, relative to the workspace root.
const SPEC_FILE: &str = "spec/openapi/recorder.yaml";
/// Where the recorder's routes are declared, relative to the workspace root.
const ROUTER_SOURCES: &str = "vms-recorder/src";
/// The base URI the document is registered under for `$ref` resolution (never fetched).
const SPEC_URI: &str = "https://vms.invalid/spec/openapi/recorder.yaml";
/// The HTTP methods an OpenAPI path item may hold.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// A path template with its parameter names blanked (`/a/{id}` → `/a/{}`): the names are not on
/// the wire, so the code and the document may call them differently.
fn route_key(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Reading route declarations out of Rust source text.
mod routes {
    use std::collections::BTreeSet;

    #[derive(Clone, Debug, PartialEq)]
    pub enum Tok {
        Ident(String),
        Str(String),
        Punct(char),
        /// A number, character or byte literal, or a lifetime: nothing a route is made of.
        Other,
    }

    /// A token and the line it starts on.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Token {
        pub tok: Tok,
        pub line: usize,
    }

    /// Splits Rust source into identifiers, string literals and punctuation, dropping
    /// whitespace and comments, so that a `.route(` inside a comment or a string is not one.
    pub fn lex(src: &str) -> Result<Vec<Token>, String> {
        let s: Vec<char> = src.chars().collect();
        let mut out = Vec::new();
        let (mut i, mut line) = (0, 1);
        let at = |i: usize| s.get(i).copied();
        while let Some(c) = at(i) {
            let start_line = line;
            let mut push = |tok| {
                out.push(Token {
                    tok,
                    line: start_line,
                })
            };
            if c == '\n' {
                line += 1;
                i += 1;
            } else if c.is_whitespace() {
                i += 1;
            } else if c == '/' && at(i + 1) == Some('/') {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            } else if c == '/' && at(i + 1) == Some('*') {
                let mut depth = 0;
                loop {
                    match (at(i), at(i + 1)) {
                        (Some('/'), Some('*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (Some('*'), Some('/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (Some(c), _) => {
                            line += usize::from(c == '\n');
                            i += 1;
                        }
                        (None, _) => return Err(format!("line {start_line}: unclosed comment")),
                    }
                }
            } else if c == '"' {
                let (text, next) = string(&s, i + 1, &mut line)?;
                push(Tok::Str(text));
                i = next;
            } else if c == '\'' {
                // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
                if at(i + 1) == Some('\\') {
                    i += 2;
                    while at(i).is_some_and(|c| c != '\'') {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == Some('\'') {
                    i += 3;
                } else {
                    i += 1;
                    while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        i += 1;
                    }
                }
                push(Tok::Other);
            } else if c.is_alphabetic() || c == '_' {
                let begin = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                let word: String = s[begin..i].iter().collect();
                match (word.as_str(), at(i)) {
                    // Raw strings: r"…", r#"…"#, br"…", cr"…".
                    ("r" | "br" | "cr", Some('"' | '#'))
                        if s[i..].iter().find(|&&c| c != '#') == Some(&'"') =>
                    {
                        let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
                        i += hashes + 1;
                        let close: Vec<char> = std::iter::once('"')
                            .chain(std::iter::repeat_n('#', hashes))
                            .collect();
                        let begin = i;
                        while !s[i..].starts_with(&close) {
                            let c = at(i).ok_or(format!("line {start_line}: unclosed string"))?;
                            line += usize::from(c == '\n');
                            i += 1;
                        }
                        push(Tok::Str(s[begin..i].iter().collect()));
                        i += close.len();
                    }
                    // Byte and C strings: b"…", c"…".
                    ("b" | "c", Some('"')) => {
                        let (text, next) = string(&s, i + 1, &mut line)?;
                        push(Tok::Str(text));
                        i = next;
                    }
                    // A byte literal: b'x'.
                    ("b", Some('\'')) => {
                        i += 1;
                        if at(i) == Some('\\') {
                            i += 1;
                        }
                        i += 1;
                        while at(i).is_some_and(|c| c != '\'') {
                            i += 1;
                        }
                        i += 1;
                        push(Tok::Other);
                    }
                    // A raw identifier: r#route.
                    ("r", Some('#')) => {
                        let begin = i + 1;
                        i += 1;
                        while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            i += 1;
                        }
                        push(Tok::Ident(s[begin..i].iter().collect()));
                    }
                    _ => push(Tok::Ident(word)),
                }
            } else if c.is_ascii_digit() {
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_')
                    || (at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()))
                {
                    i += 1;
                }
                push(Tok::Other);
            } else {
                push(Tok::Punct(c));
                i += 1;
            }
        }
        Ok(out)
    }

    /// The body of a `"…"` string from `i` (just after the quote), unescaped; and the index
    /// just after the closing quote.
    fn string(s: &[char], mut i: usize, line: &mut usize) -> Result<(String, usize), String> {
        let start_line = *line;
        let mut text = String::new();
        loop {
            match s.get(i) {
                None => return Err(format!("line {start_line}: unclosed string")),
                Some('"') => return Ok((text, i + 1)),
                Some('\\') => {
                    match s.get(i + 1) {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('\n') => *line += 1,
                        Some(&c) => text.push(c),
                        None => return Err(format!("line {start_line}: unclosed string")),
                    }
                    i += 2;
                }
                Some(&c) => {
                    *line += usize::from(c == '\n');
                    text.push(c);
                    i += 1;
                }
            }
        }
    }

    /// What serves a route: `get(…)`, `axum::routing::post(…)`, `.put(…)`, `get_service(…)`.
    const METHODS: [&str; 9] = [
        "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect",
    ];
    /// Method routers that serve methods the scanner cannot name.
    const OPAQUE: [&str; 5] = ["any", "any_service", "on", "on_service", "MethodRouter"];
    /// Router calls that declare routes the scanner does not follow.
    const UNSUPPORTED_CALLS: [&str; 3] = ["route_service", "nest", "nest_service"];

    /// A (method, path) pair a `.route(…)` call declares, with the line of the call.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Route {
        pub method: String,
        pub path: String,
        pub line: usize,
    }

    /// Every route the `.route(path, method_router)` calls of `tokens` declare. A call the
    /// scanner cannot read fully is an error, never a silent omission.
    pub fn routes(tokens: &[Token]) -> Result<Vec<Route>, String> {
        let t = |i: usize| tokens.get(i).map(|t| &t.tok);
        let mut out = Vec::new();
        for i in 0..tokens.len() {
            let (Some(Tok::Punct('.')), Some(Tok::Ident(name)), Some(Tok::Punct('('))) =
                (t(i), t(i + 1), t(i + 2))
            else {
                continue;
            };
            let line = tokens[i + 1].line;
            if UNSUPPORTED_CALLS.contains(&name.as_str()) {
                return Err(format!(
                    "line {line}: .{name}(…) is not understood by the route scanner; extend it"
                ));
            }
            if name != "route" {
                continue;
            }
            let (Some(Tok::Str(path)), Some(Tok::Punct(','))) = (t(i + 3), t(i + 4)) else {
                return Err(format!(
                    "line {line}: .route(…) whose first argument is not a string literal"
                ));
            };
            // The method router: the tokens up to the `)` closing `.route(`.
            let begin = i + 5;
            let end =
                closing(tokens, i + 2).ok_or(format!("line {line}: .route(…) is never closed"))?;
            let mut methods = BTreeSet::new();
            let mut k = begin;
            while k < end {
                match (&tokens[k].tok, t(k + 1)) {
                    (Tok::Ident(call), Some(Tok::Punct('('))) => {
                        let method = call.strip_suffix("_service").unwrap_or(call);
                        if OPAQUE.contains(&call.as_str()) {
                            return Err(format!(
                                "line {line}: route {path:?} uses {call}(…), whose methods the \
                                 scanner cannot name"
                            ));
                        }
                        if METHODS.contains(&method) {
                            methods.insert(method.to_ascii_uppercase());
                        }
                        k = closing(tokens, k + 1).ok_or(format!("line {line}: unbalanced"))? + 1;
                    }
                    (Tok::Punct('(' | '[' | '{'), _) => {
                        k = closing(tokens, k).ok_or(format!("line {line}: unbalanced"))? + 1;
                    }
                    _ => k += 1,
                }
            }
            if methods.is_empty() {
                return Err(format!(
                    "line {line}: cannot tell which methods route {path:?} serves"
                ));
            }
            out.extend(methods.into_iter().map(|method| Route {
                method,
                path: path.clone(),
                line,
            }));
        }
        Ok(out)
    }

    /// The index of the bracket closing the one at `open`.
    fn closing(tokens: &[Token], open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (k, tok) in tokens.iter().enumerate().skip(open) {
            match tok.tok {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Every route declared in the `.rs` files under `dir`, each with `file:line`.
fn declared_routes(dir: &Path) -> Result<Vec<(routes::Route, String)>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f
            .strip_prefix(workspace_root())
            .unwrap_or(&f)
            .display()
            .to_string();
        let src = std::fs::read_to_string(&f).map_err(|e| format!("{name}: {e}"))?;
        let tokens = routes::lex(&src).map_err(|e| format!("{name}: {e}"))?;
        for r in routes::routes(&tokens).map_err(|e| format!("{name}: {e}"))? {
            let at = format!("{name}:{}", r.line);
            out.push((r, at));
        }
    }
    Ok(out)
}

/// The OpenAPI document, and a registry that resolves `$ref`s into it.
struct Spec {
    doc: Value,
    registry: jsonschema::Registry<'static>,
}

impl Spec {
    fn load() -> Spec {
        let path = workspace_root().join(SPEC_FILE);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML that maps to JSON: {e}", path.display()));
        let resource = jsonschema::Draft::Draft202012.create_resource(doc.clone());
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft202012)
            .add(SPEC_URI, resource)
            .and_then(|b| b.prepare())
            .unwrap_or_else(|e| panic!("{SPEC_FILE}: {e}"));
        Spec { doc, registry }
    }

    /// Every operation: (upper-case method, path template).
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for m in OPENAPI_METHODS {
                if item.get(m).is_some() {
                    out.insert((m.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    fn operation(&self, method: &Method, template: &str) -> Option<&Value> {
        self.doc["paths"]
            .get(template)?
            .get(method.as_str().to_ascii_lowercase())
    }

    /// Whether an operation needs credentials: its own `security`, else the document's.
    fn secured(&self, op: &Value) -> bool {
        let security = op.get("security").unwrap_or(&self.doc["security"]);
        security.as_array().is_some_and(|reqs| {
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        })
    }

    /// Follows the `$ref`s of a response, parameter or header object within the document.
    fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Ok(v);
            };
            let pointer = r
                .strip_prefix('#')
                .ok_or(format!("$ref {r:?} leaves the document"))?;
            v = self
                .doc
                .pointer(pointer)
                .ok_or(format!("$ref {r:?} resolves to nothing"))?;
        }
        Err("a $ref cycle".into())
    }

    /// Validates `instance` against `schema`, a schema object of the document.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        // The schema's own `#/…` references point into the document.
        fn absolutize(v: &mut Value) {
            match v {
                Value::Object(o) => {
                    for (k, x) in o.iter_mut() {
                        match x {
                            Value::String(r) if k == "$ref" && r.starts_with('#') => {
                                *r = format!("{SPEC_URI}{r}");
                            }
                            _ => absolutize(x),
                        }
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(absolutize),
                _ => {}
            }
        }
        let mut schema = schema.clone();
        absolutize(&mut schema);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The JSON schema of an operation's request body.
    fn request_schema(&self, method: &Method, template: &str) -> Result<&Value, String> {
        let op = self
            .operation(method, template)
            .ok_or("no such operation in the document")?;
        let body = self.deref(op.get("requestBody").ok_or("no request body documented")?)?;
        body.pointer("/content/application~1json/schema")
            .ok_or("no application/json schema for the request body".into())
    }

    /// Checks one answer of the recorder against the document.
    fn check_response(&self, method: &Method, template: &str, reply: &Reply) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(op) = self.operation(method, template) else {
            return vec!["the operation is not in the document".into()];
        };
        let status = reply.status.to_string();
        let responses = &op["responses"];
        let Some(response) = responses.get(&status) else {
            let documented: Vec<&String> = responses
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            return vec![format!(
                "status {status} is not documented for the operation (documented: {documented:?})"
            )];
        };
        let response = match self.deref(response) {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = match self.deref(header) {
                Ok(h) => h,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            match reply.headers.get(name.to_ascii_lowercase().as_str()) {
                None if header["required"] == true => {
                    problems.push(format!("header {name} is missing"))
                }
                None => {}
                Some(value) => {
                    let value = Value::String(value.to_str().unwrap_or("<not ASCII>").to_owned());
                    if let Some(schema) = header.get("schema")
                        && let Err(e) = self.validate(schema, &value)
                    {
                        problems.push(format!("header {name} {value}: {e}"));
                    }
                }
            }
        }
        let Some(content) = response["content"].as_object() else {
            if !reply.body.is_empty() {
                problems.push(format!(
                    "a body where the document has none: {}",
                    reply.body_text()
                ));
            }
            return problems;
        };
        let normalise = |m: &str| m.to_ascii_lowercase().replace(' ', "");
        let actual = reply
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(normalise)
            .unwrap_or_default();
        let Some((media, media_object)) = content.iter().find(|(m, _)| normalise(m) == actual)
        else {
            let documented: Vec<&String> = content.keys().collect();
            problems.push(format!(
                "content type {actual:?} is not a documented one ({documented:?})"
            ));
            return problems;
        };
        let Some(schema) = media_object.get("schema") else {
            return problems;
        };
        // Media bytes are not JSON or text: their type is what is checked.
        if schema["format"] == "binary" {
            return problems;
        }
        let instance = if media == "application/json" {
            match serde_json::from_slice(&reply.body) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("body is not JSON ({e}): {}", reply.body_text()));
                    return problems;
                }
            }
        } else {
            match String::from_utf8(reply.body.clone()) {
                Ok(s) => Value::String(s),
                Err(_) => {
                    problems.push("a text body that is not UTF-8".into());
                    return problems;
                }
            }
        };
        if let Err(e) = self.validate(schema, &instance) {
            problems.push(format!(
                "body does not match the schema: {e}; body: {}",
                reply.body_text()
            ));
        }
        problems
    }
}

/// The media-token purposes that grant an operation (`x-token-purposes`); none for
/// administration.
fn token_purposes(op: &Value) -> Result<Vec<Purpose>, String> {
    let list = op
        .get("x-token-purposes")
        .and_then(Value::as_array)
        .ok_or("no x-token-purposes list")?;
    list.iter()
        .map(|p| {
            serde_json::from_value(p.clone()).map_err(|e| format!("x-token-purposes {p}: {e}"))
        })
        .collect()
}

/// The document on its own: every `$ref` resolves, every operation is complete, every path
/// parameter is declared, and every example is valid against its schema.
#[test]
fn the_openapi_document_is_consistent() {
    let spec = Spec::load();
    let mut problems = Vec::new();
    assert_eq!(spec.doc["openapi"], "3.1.0", "an OpenAPI 3.1 document");

    fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(r) if k == "$ref" => out.push((at.clone(), r)),
                        _ => refs(x, format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    refs(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec.doc, String::new(), &mut all);
    for (at, r) in &all {
        let target = r.strip_prefix('#').and_then(|p| spec.doc.pointer(p));
        if target.is_none() {
            problems.push(format!("{at}: $ref {r:?} resolves to nothing"));
        }
    }

    let mut ids = BTreeSet::new();
    for (method, path) in spec.operations() {
        let item = &spec.doc["paths"][&path];
        let op = &item[method.to_ascii_lowercase()];
        let name = format!("{method} {path}");
        match op["operationId"].as_str() {
            Some(id) if ids.insert(id.to_owned()) => {}
            other => problems.push(format!("{name}: operationId {other:?} missing or repeated")),
        }
        if op["x-since"] != "1.0" {
            problems.push(format!("{name}: x-since is {}, not \"1.0\"", op["x-since"]));
        }
        let responses = op["responses"].as_object().cloned().unwrap_or_default();
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{name}: no success response"));
        }
        if spec.secured(op) && !responses.contains_key("401") {
            problems.push(format!("{name}: needs a token but documents no 401"));
        }
        if spec.secured(op) && !responses.contains_key("403") {
            problems.push(format!("{name}: takes media tokens but documents no 403"));
        }
        match token_purposes(op) {
            Ok(_) if !spec.secured(op) => {
                problems.push(format!("{name}: needs no token, yet has x-token-purposes"))
            }
            Err(e) if spec.secured(op) => problems.push(format!("{name}: {e}")),
            _ => {}
        }
        // Every `{param}` of the path is declared as a path parameter, and nothing else is.
        let in_path: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(p, _)| p.to_owned()))
            .collect();
        let declared: BTreeSet<String> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(op["parameters"].as_array().into_iter().flatten())
            .filter_map(|p| spec.deref(p).ok())
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        if in_path != declared {
            problems.push(format!(
                "{name}: path parameters {in_path:?} but declared {declared:?}"
            ));
        }
        for (status, response) in &responses {
            let Ok(response) = spec.deref(response) else {
                continue;
            };
            for (media, m) in response["content"].as_object().into_iter().flatten() {
                if m.get("schema").is_none() {
                    problems.push(format!("{name} {status} {media}: no schema"));
                }
            }
        }
    }

    // Examples: of schemas, of media types and of parameters.
    for (name, schema) in spec.doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        for (i, example) in schema["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Err(e) = spec.validate(schema, example) {
                problems.push(format!("components/schemas/{name} example {i}: {e}"));
            }
        }
    }
    fn examples<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value, &'a Value)>) {
        match v {
            Value::Object(o) => {
                if let (Some(schema), Some(example)) = (o.get("schema"), o.get("example")) {
                    out.push((at.clone(), schema, example));
                }
                for (k, x) in o {
                    examples(x, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    examples(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    examples(&spec.doc, String::new(), &mut found);
    assert!(
        found.len() >= 10,
        "the example walk finds the examples: {}",
        found.len()
    );
    for (at, schema, example) in found {
        if let Err(e) = spec.validate(schema, example) {
            problems.push(format!("{at}: example: {e}"));
        }
    }

    assert!(
        problems.is_empty(),
        "{SPEC_FILE} is inconsistent:\n  {}",
        problems.join("\n  ")
    );
}

/// The routes the recorder's source declares are exactly the document's operations.
#[test]
fn routes_declared_in_the_code_match_the_openapi_document() {
    let spec = Spec::load();
    let declared = declared_routes(&workspace_root().join(ROUTER_SOURCES))
        .unwrap_or_else(|e| panic!("scanning {ROUTER_SOURCES}: {e}"));
    assert!(!declared.is_empty(), "no route found in {ROUTER_SOURCES}");
    let code: BTreeMap<(String, String), String> = declared
        .into_iter()
        .map(|(r, at)| {
            (
                (r.method, route_key(&r.path)),
                format!("{} (at {at})", r.path),
            )
        })
        .collect();
    let documented: BTreeMap<(String, String), String> = spec
        .operations()
        .into_iter()
        .map(|(m, p)| ((m, route_key(&p)), p))
        .collect();
    let only_doc: Vec<String> = documented
        .iter()
        .filter(|(k, _)| !code.contains_key(*k))
        .map(|((m, _), p)| format!("{m} {p}"))
        .collect();
    let only_code: Vec<String> = code
        .iter()
        .filter(|(k, _)| !documented.contains_key(*k))
        .map(|((m, _), p)| format!("{m} {p}"))
        .collect();
    assert!(
        only_doc.is_empty() && only_code.is_empty(),
        "{SPEC_FILE} and {ROUTER_SOURCES} disagree on the routes.\n\
         documented but not declared in the code:\n  {}\n\
         declared in the code but not documented:\n  {}",
        if only_doc.is_empty() {
            "(none)".to_owned()
        } else {
            only_doc.join("\n  ")
        },
        if only_code.is_empty() {
            "(none)".to_owned()
        } else {
            only_code.join("\n  ")
        },
    );
}

#[test]
fn the_route_scanner_reads_chains_and_ignores_comments_and_strings() {
    let src = r##"
        let r = Router::new()
            // .route("/commented", get(nothing))
            .route("/a", get(a).post(b)) /* .route("/block", put(c)) /* nested */ */
            .route(
                "/c/{id}",
                axum::routing::get(c)
                    .put(with_args((1, 2), [3], |x| { x.route("/inner", get(z)) }))
                    .delete(d),
            )
            .route_layer(layer)
            .route("/s", get(|| async { "// not a comment" }).patch(p))
            .route(r#"/raw"#, get_service(files))
            .route("/life", get(f::<'static>).head(h));
        let c = '"'; let b = b'"'; let s = "\".route(\"/in-string\", get(x))";
    "##;
    let tokens = routes::lex(src).expect("lexes");
    let found: BTreeSet<(String, String)> = routes::routes(&tokens)
        .expect("reads")
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/a"),
        ("POST", "/a"),
        ("GET", "/c/{id}"),
        ("PUT", "/c/{id}"),
        ("DELETE", "/c/{id}"),
        ("GET", "/inner"),
        ("GET", "/s"),
        ("PATCH", "/s"),
        ("GET", "/raw"),
        ("GET", "/life"),
        ("HEAD", "/life"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn the_route_scanner_refuses_what_it_cannot_read() {
    for (src, why) in [
        (r#"Router::new().route("/x", any(h))"#, "any("),
        (r#"Router::new().route("/x", method_router)"#, "cannot tell"),
        (r#"Router::new().route(PATH, get(h))"#, "string literal"),
        (r#"Router::new().nest("/v2", other)"#, ".nest("),
        (
            r#"Router::new().route_service("/x", svc)"#,
            ".route_service(",
        ),
        (r#"Router::new().route("/x", get(h)"#, "never closed"),
    ] {
        let e = routes::lex(src)
            .and_then(|t| routes::routes(&t))
            .expect_err(src);
        assert!(e.contains(why), "{src}: {e}");
    }
    assert_eq!(route_key("/a/{id}/b/{x}"), "/a/{}/b/{}");
}

/// One answer of the recorder.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn body_text(&self) -> String {
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
    fn is_fallback(&self) -> bool {
        self.status == 404
            && self.json().is_some_and(|b| {
                b["error"]["code"] == "not_found" && b["error"]["message"] == "no such endpoint"
            })
    }
}

enum Auth {
    Token,
    Missing,
    Wrong,
    /// A media token.
    Media(String),
}

enum Body {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// A request to the recorder, by operation: method, path template and its arguments.
struct Req {
    method: Method,
    template: String,
    args: Vec<String>,
    query: String,
    body: Body,
    auth: Auth,
    /// What the request tries, for messages.
    note: String,
    /// A `Range` header to send.
    range: Option<&'static str>,
}

fn req(method: Method, template: &str) -> Req {
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
    fn arg(mut self, a: &str) -> Req {
        self.args.push(a.to_owned());
        self
    }
    fn query(mut self, q: &str) -> Req {
        self.query = q.to_owned();
        self
    }
    fn json(mut self, v: &Value) -> Req {
        self.body = Body::Json(v.clone());
        self
    }
    fn raw(mut self, content_type: &'static str, bytes: Vec<u8>) -> Req {
        self.body = Body::Raw(content_type, bytes);
        self
    }
    fn auth(mut self, a: Auth) -> Req {
        self.auth = a;
        self
    }
    fn note(mut self, why: &str) -> Req {
        self.note = why.to_owned();
        self
    }
    /// Every path argument `UNKNOWN_ID`.
    fn unknown_ids(mut self) -> Req {
        self.args = vec![UNKNOWN_ID.to_owned(); self.template.matches('{').count()];
        self
    }

    /// The request, for messages.
    fn what(&self) -> String {
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.note)
        };
        format!("{} {}{note}", self.method, self.target())
    }

    /// The concrete path and query.
    fn target(&self) -> String {
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

/// Drives a recorder and checks every answer against the document.
struct Checker {
    spec: Spec,
    base: String,
    http: reqwest::Client,
    problems: Vec<String>,
    /// (method, template, status) of every answer.
    seen: BTreeSet<(String, String, u16)>,
}

impl Checker {
    fn problem(&mut self, p: String) {
        eprintln!("openapi drift: {p}");
        self.problems.push(p);
    }

    /// Sends a request without checking the answer.
    async fn send_unchecked(&self, r: &Req, own_connection: bool) -> Result<Reply, String> {
        let client = if own_connection {
            // The recorder closes a connection whose body it refused unread; such a request
            // goes on a client of its own rather than poisoning the shared pool.
            reqwest::Client::new()
        } else {
            self.http.clone()
        };
        let mut b = client.request(r.method.clone(), format!("{}{}", self.base, r.target()));
        b = match &r.auth {
            Auth::Token => b.bearer_auth(ADMIN_TOKEN),
            Auth::Wrong => b.bearer_auth("not-the-token-0123456789"),
            Auth::Media(t) => b.bearer_auth(t),
            Auth::Missing => b,
        };
        if let Some(range) = r.range {
            b = b.header("range", range);
        }
        b = match &r.body {
            Body::Empty => b,
            Body::Json(v) => b.json(v),
            Body::Raw(ct, bytes) => b.header("content-type", *ct).body(bytes.clone()),
        };
        let resp = b.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request and checks the answer against the document.
    async fn send(&mut self, r: &Req, own_connection: bool) -> Option<Reply> {
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
    async fn expect(&mut self, r: Req, status: u16) -> Option<Value> {
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

    /// A request body the recorder must accept: valid against the request schema too.
    fn valid_body(&mut self, method: &Method, template: &str, body: &Value) {
        let checked = self
            .spec
            .request_schema(method, template)
            .and_then(|s| self.spec.validate(s, body));
        if let Err(e) = checked {
            self.problem(format!(
                "{method} {template}: a body the recorder accepts is invalid in the document: {e}: {body}"
            ));
        }
    }

    /// A request body the recorder must refuse with 400: invalid against the request schema too.
    async fn invalid_body(&mut self, r: Req, body: &Value, why: &str) {
        match self.spec.request_schema(&r.method, &r.template) {
            Ok(schema) => {
                if self.spec.validate(schema, body).is_ok() {
                    self.problem(format!(
                        "{} {}: the document allows a body the recorder must refuse ({why}): {body}",
                        r.method, r.template
                    ));
                }
            }
            Err(e) => self.problem(format!("{} {}: {e}", r.method, r.template)),
        }
        self.expect(r.json(body).note(why), 400).await;
    }

    /// Polls a GET until `done` holds for its body, checking every answer.
    async fn poll(
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

    /// The `/metrics` families and labels against `x-prometheus-families`.
    fn check_metrics(&mut self, text: &str) {
        let media = &self.spec.doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        let documented: BTreeMap<String, (String, BTreeSet<String>)> = media
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(_, m)| {
                m["x-prometheus-families"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|f| {
                let labels = f["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect();
                (
                    f["name"].as_str().unwrap_or_default().to_owned(),
                    (f["type"].as_str().unwrap_or_default().to_owned(), labels),
                )
            })
            .collect();
        if documented.is_empty() {
            self.problem("/metrics: no x-prometheus-families in the document".into());
            return;
        }
        let mut served: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    served.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let (name, labels) = parse_sample(line);
                match documented.get(&name) {
                    None => self.problem(format!("/metrics: undocumented sample {line:?}")),
                    Some((_, want)) if *want != labels => self.problem(format!(
                        "/metrics: {line:?} has labels {labels:?}, the document {want:?}"
                    )),
                    Some(_) => {}
                }
            }
        }
        let documented_types: BTreeMap<String, String> = documented
            .iter()
            .map(|(n, (t, _))| (n.clone(), t.clone()))
            .collect();
        if served != documented_types {
            self.problem(format!(
                "/metrics families differ: served {served:?}, documented {documented_types:?}"
            ));
        }
    }
}

/// A Prometheus sample line's metric name and label names.
fn parse_sample(line: &str) -> (String, BTreeSet<String>) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line[..name_end].to_owned();
    let mut labels = BTreeSet::new();
    if line[name_end..].starts_with('{') {
        let (mut key, mut in_value, mut escaped) = (String::new(), false, false);
        for c in line[name_end + 1..].chars() {
            if in_value {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_value = false,
                    _ => {}
                }
            } else {
                match c {
                    '=' => {
                        labels.insert(std::mem::take(&mut key));
                    }
                    '"' => in_value = true,
                    ',' | ' ' => {}
                    '}' => break,
                    _ => key.push(c),
                }
            }
        }
    }
    (name, labels)
}

/// A media token of central's key for `recorder`, camera `UNKNOWN_ID`, every stream and the
/// last hour (unless `live`).
fn media_token(key: &ed25519_dalek::SigningKey, recorder: RecorderId, pur: Purpose) -> String {
    let now = jiff::Timestamp::now().as_second();
    let ranged = pur != Purpose::Live;
    let claims = Claims {
        ver: 1,
        iss: "vms-tests".into(),
        aud: recorder,
        sub: UserId::generate(),
        name: "openapi".into(),
        cam: UNKNOWN_ID.parse::<CameraId>().expect("an id"),
        stream: token::ANY_STREAM.into(),
        pur,
        from: ranged.then_some(now - 3600),
        to: ranged.then_some(now),
        iat: now,
        exp: now + 300,
        jti: UserId::generate().to_string(),
    };
    token::issue(key, &claims).expect("a token")
}

/// The query or body that an operation needs to get as far as authorisation.
fn well_formed(r: Req) -> Req {
    let range = format!(
        "stream=main&start={}&end={}",
        rfc3339_from_now(-120),
        rfc3339_from_now(-60)
    );
    let body = json!({"stream": "main", "start": rfc3339_from_now(-120),
        "end": rfc3339_from_now(-60), "case": "C-1", "reason": "openapi", "operator": "op"});
    match r.template.as_str() {
        RECORDINGS | PLAYBACK | EXPORT | TRANSCODED => r.query(&range),
        SNAPSHOT | SEGMENT => r.query("stream=main"),
        EVIDENCE | CAMERA_HOLDS => r.json(&body),
        CAMERAS | CAMERA if r.method != Method::GET && r.method != Method::DELETE => {
            r.json(&json!({}))
        }
        _ => r,
    }
}

fn rfc3339_from_now(secs: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)).to_string()
}

/// A loopback port nobody listens on: bound, then released.
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

const CAMERAS: &str = "/api/v1/cameras";
const CAMERA: &str = "/api/v1/cameras/{id}";
const RECORDINGS: &str = "/api/v1/cameras/{id}/recordings";
const CAMERA_HOLDS: &str = "/api/v1/cameras/{id}/holds";
const PLAYBACK: &str = "/api/v1/cameras/{id}/playback.m3u8";
const SEGMENT: &str = "/api/v1/cameras/{id}/segments/{file}";
const EXPORT: &str = "/api/v1/cameras/{id}/export.mp4";
const SNAPSHOT: &str = "/api/v1/cameras/{id}/snapshot.jpg";
const TRANSCODED: &str = "/api/v1/cameras/{id}/transcoded.mp4";
const EVIDENCE: &str = "/api/v1/cameras/{id}/evidence";
const HOLDS: &str = "/api/v1/holds";
const HOLD: &str = "/api/v1/holds/{id}";
/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

/// A real recorder serves exactly the documented operations and answers them as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_recorder_serves_and_answers_as_the_openapi_document_says() {
    let started = Instant::now();
    let sim = RemoteSim::start(
        Path::new(env!("CARGO_BIN_EXE_vms-camsim")),
        "[[camera]]\nname = \"spec\"\n[[camera.streams]]\nwidth = 320\nheight = 180\nfps = 15\n\
         gop_frames = 15\nloop_secs = 2\n",
    )
    .expect("simulator starts");
    let dirs = RecorderDirs::new("stall_timeout_secs = 2\nsegment_secs = 10\n");
    // Central's token key, where enrolment leaves it.
    let central_key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    vms_recorder::auth::store_token_keys(&dirs.data, &[TokenKey::new(central_key.verifying_key())])
        .expect("token keys");
    // The config ends in the [[storage]] table: a quota gives every storage family a sample.
    let mut config = std::fs::read_to_string(&dirs.config).expect("config");
    config.push_str("quota_bytes = 1000000000000\n");
    std::fs::write(&dirs.config, config).expect("config");
    let rec = RemoteRecorder::start(&dirs).expect("recorder starts");
    let mut c = Checker {
        spec: Spec::load(),
        base: rec.url(""),
        http: reqwest::Client::new(),
        problems: Vec::new(),
        seen: BTreeSet::new(),
    };

    // Served routes: every documented operation reaches a handler...
    let operations = c.spec.operations();
    for (method, path) in &operations {
        let method: Method = method.parse().expect("an HTTP method");
        let mut r = req(method.clone(), path).unknown_ids();
        if method == Method::POST || method == Method::PUT {
            r = r.json(&json!({}));
        }
        // `send` reports an answer of the router's fallback.
        if let Some(reply) = c.send(&r, false).await
            && reply.status == 405
        {
            c.problem(format!(
                "{method} {path} is documented but not served: {} {}",
                reply.status,
                reply.body_text()
            ));
        }
    }
    // ...and no other method of a documented path does.
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
            let r = req(method.clone(), path).unknown_ids();
            match c.send_unchecked(&r, false).await {
                Ok(reply) if reply.status == 405 || reply.is_fallback() => {}
                Ok(reply) => c.problem(format!(
                    "{method} {path} is served but not documented: {} {}",
                    reply.status,
                    reply.body_text()
                )),
                Err(e) => c.problem(format!("{method} {path}: no answer: {e}")),
            }
        }
    }

    // Authentication: an operation that needs a token answers 401 without one or with a wrong
    // one; one that does not, never does.
    for (method, path) in &operations {
        let method: Method = method.parse().expect("an HTTP method");
        let secured = c
            .spec
            .operation(&method, path)
            .is_some_and(|op| c.spec.secured(op));
        for auth in [Auth::Missing, Auth::Wrong] {
            let r = req(method.clone(), path).auth(auth).unknown_ids();
            if secured {
                c.expect(r, 401).await;
            } else if let Some(reply) = c.send(&r, false).await
                && reply.status == 401
            {
                c.problem(format!("{method} {path} needs no token, yet answered 401"));
            }
        }
    }

    // Authorisation: a media token that verifies but does not grant the request gets 403, on
    // an administration route or with a purpose the route does not take. Routes that look up a
    // resource of their path first (a segment, a hold) answer 404 for an unknown one.
    let recorder: RecorderId = rec.ready.recorder.parse().expect("the recorder's id");
    for (method, path) in &operations {
        let method: Method = method.parse().expect("an HTTP method");
        let Some(op) = c.spec.operation(&method, path) else {
            continue;
        };
        if !c.spec.secured(op) {
            continue;
        }
        let granted = token_purposes(op).unwrap_or_default();
        let Some(purpose) = [
            Purpose::Live,
            Purpose::Playback,
            Purpose::Snapshot,
            Purpose::Export,
            Purpose::Evidence,
            Purpose::Hold,
        ]
        .into_iter()
        .find(|p| !granted.contains(p)) else {
            continue;
        };
        let token = media_token(&central_key, recorder, purpose);
        let r = well_formed(req(method.clone(), path).unknown_ids()).auth(Auth::Media(token));
        let looks_up_first = matches!(path.as_str(), SEGMENT | HOLD);
        if let Some(reply) = c.send(&r, false).await
            && reply.status != 403
            && !(looks_up_first && reply.status == 404)
        {
            c.problem(format!(
                "{method} {path} with a {purpose} token: {}, not 403: {}",
                reply.status,
                reply.body_text()
            ));
        }
    }

    c.expect(req(Method::GET, "/api/v1/health").auth(Auth::Missing), 200)
        .await;

    // Cameras: one on the simulator, one on a port that refuses connections.
    let camera_a = json!({
        "name": "Spec camera A",
        "region": "751110000",
        "class": "city",
        "code": "75111000013100000001",
        "streams": [{"name": "main", "url": sim.url("spec", "main", None), "transport": "tcp"}],
        "installed_by": "an unknown field, ignored"
    });
    let refused = refused_port();
    let camera_b = json!({
        "name": "Spec camera B",
        "region": "711110000",
        "class": "safe_yard",
        "code": null,
        "streams": [
            {"name": "main", "url": format!("rtsp://127.0.0.1:{refused}/b/main"),
             "username": "operator", "password": "camera-password", "transport": "udp"},
            {"name": "sub", "url": format!("rtsp://127.0.0.1:{refused}/b/sub")}
        ]
    });
    c.valid_body(&Method::POST, CAMERAS, &camera_a);
    c.valid_body(&Method::POST, CAMERAS, &camera_b);
    let a = c
        .expect(req(Method::POST, CAMERAS).json(&camera_a), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());
    let b = c
        .expect(req(Method::POST, CAMERAS).json(&camera_b), 201)
        .await
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| UNKNOWN_ID.to_owned());

    // Bodies the recorder refuses are invalid in the document too.
    let with = |path: &str, v: Value| {
        let mut body = camera_b.clone();
        *body.pointer_mut(path).expect("a field of the camera") = v;
        body
    };
    let without = |field: &str| {
        let mut body = camera_b.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    let bad_cameras = [
        (without("name"), "no name"),
        (without("streams"), "no streams"),
        (with("/name", json!("   ")), "a blank name"),
        (
            with("/name", json!("Gate\u{7}")),
            "a control character in the name",
        ),
        (
            with("/name", json!("x".repeat(129))),
            "a name of 129 characters",
        ),
        (with("/name", json!(5)), "a name that is a number"),
        (with("/region", json!("12")), "a short region"),
        (
            with("/region", json!("001110000")),
            "a region under no top-level region",
        ),
        (with("/class", json!("zoo")), "an unknown class"),
        (with("/code", json!("12ab")), "a code with letters"),
        (with("/code", json!("")), "an empty code"),
        (with("/code", json!("1".repeat(33))), "a code of 33 digits"),
        (with("/streams", json!([])), "no stream"),
        (
            with("/streams", json!({"name": "main"})),
            "streams that are not a list",
        ),
        (
            with(
                "/streams",
                json!(
                    (0..5)
                        .map(|i| json!({"name": format!("s{i}"), "url": "rtsp://127.0.0.1/x"}))
                        .collect::<Vec<_>>()
                ),
            ),
            "five streams",
        ),
        (
            with("/streams/0/name", json!("../x")),
            "a path in a stream name",
        ),
        (
            with("/streams/0/name", json!("Main")),
            "an upper-case stream name",
        ),
        (with("/streams/0/name", json!("")), "an empty stream name"),
        (
            with("/streams/0/url", json!("http://127.0.0.1/x")),
            "an http URL",
        ),
        (
            with("/streams/0/url", json!("rtsp://u:p@127.0.0.1/x")),
            "credentials in the URL",
        ),
        (
            with("/streams/0/url", json!("rtsp:///x")),
            "a URL without a host",
        ),
        (
            with("/streams/0/transport", json!("sctp")),
            "an unknown transport",
        ),
        (
            with("/streams/0/username", json!(null)),
            "a password without a user name",
        ),
    ];
    for (body, why) in bad_cameras {
        c.invalid_body(req(Method::POST, CAMERAS), &body, why).await;
    }
    c.expect(
        req(Method::POST, CAMERAS)
            .raw("application/json", b"{\"name\": ".to_vec())
            .note("truncated JSON"),
        400,
    )
    .await;
    c.expect(
        req(Method::POST, CAMERAS)
            .raw("text/plain", camera_b.to_string().into_bytes())
            .note("not declared as JSON"),
        400,
    )
    .await;
    let oversized = req(Method::POST, CAMERAS).raw("application/json", vec![b' '; 64 * 1024 + 1]);
    if let Some(reply) = c.send(&oversized, true).await
        && reply.status != 413
    {
        c.problem(format!("an oversized body got {}, not 413", reply.status));
    }

    // Reading cameras.
    c.expect(req(Method::GET, CAMERAS), 200).await;
    c.poll(
        || req(Method::GET, CAMERA).arg(&a),
        Duration::from_secs(30),
        "camera A records",
        |v| {
            v["streams"][0]["status"]["connected"] == true
                && v["streams"][0]["status"]["last_frame_age_ms"].is_u64()
        },
    )
    .await;
    c.expect(req(Method::GET, CAMERA).arg(&b), 200).await;
    c.expect(req(Method::GET, CAMERA).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::GET, CAMERA).arg("not-an-id"), 404)
        .await;

    // Changing a camera.
    let mut renamed = camera_b.clone();
    renamed["name"] = json!("Spec camera B, renamed");
    renamed["streams"][0]
        .as_object_mut()
        .expect("a stream")
        .remove("password");
    c.valid_body(&Method::PUT, CAMERA, &renamed);
    c.expect(req(Method::PUT, CAMERA).arg(&b).json(&renamed), 200)
        .await;
    c.expect(req(Method::PUT, CAMERA).arg(UNKNOWN_ID).json(&renamed), 404)
        .await;
    c.invalid_body(
        req(Method::PUT, CAMERA).arg(&b),
        &with("/region", json!("75")),
        "a short region",
    )
    .await;

    // Recordings: footage, then a gap while the simulator stalls.
    let listing = |id: &str, stream: &str| {
        req(Method::GET, RECORDINGS).arg(id).query(&format!(
            "stream={stream}&start={}&end={}",
            rfc3339_from_now(-600),
            rfc3339_from_now(60)
        ))
    };
    c.poll(
        || listing(&a, "main"),
        Duration::from_secs(30),
        "camera A has durable footage",
        |v| {
            v["ranges"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["frames"].as_u64() > Some(0)))
        },
    )
    .await;
    if let Err(e) = sim
        .fault(
            "spec",
            "main",
            &Fault::Stall {
                duration_ms: 120_000,
            },
        )
        .await
    {
        c.problem(format!("the simulator refused a stall: {e}"));
    }
    c.poll(
        || req(Method::GET, CAMERA).arg(&a),
        Duration::from_secs(30),
        "camera A reports its current gap",
        |v| v["streams"][0]["status"]["current_gap"].is_object(),
    )
    .await;
    c.poll(
        || listing(&a, "main"),
        Duration::from_secs(30),
        "camera A's listing shows a gap",
        |v| v["gaps"].as_array().is_some_and(|g| !g.is_empty()),
    )
    .await;
    c.expect(listing(&b, "sub"), 200).await;
    c.expect(listing(&a, "nope"), 404).await;
    c.expect(listing(UNKNOWN_ID, "main"), 404).await;
    c.expect(listing("not-an-id", "main"), 404).await;
    let (start, end) = (rfc3339_from_now(-600), rfc3339_from_now(0));
    for (query, why) in [
        (String::new(), "no parameters"),
        (format!("start={start}&end={end}"), "no stream"),
        (
            format!("stream=main&start={start}&end={end}&limit=5"),
            "an unknown parameter",
        ),
        (
            format!("stream=main&start={end}&end={start}"),
            "end before start",
        ),
        (
            format!("stream=main&start={start}&end={start}"),
            "an empty span",
        ),
        (
            format!(
                "stream=main&start={}&end={end}",
                rfc3339_from_now(-32 * 86_400)
            ),
            "a span over 31 days",
        ),
        (
            format!("stream=main&start=yesterday&end={end}"),
            "a start that is no time",
        ),
    ] {
        c.expect(
            req(Method::GET, RECORDINGS).arg(&a).query(&query).note(why),
            400,
        )
        .await;
    }

    // Playback: the stall closed camera A's segment, so there is a stored file to play.
    let span = format!(
        "stream=main&start={}&end={}",
        rfc3339_from_now(-600),
        rfc3339_from_now(60)
    );
    let playlist = c
        .send(&req(Method::GET, PLAYBACK).arg(&a).query(&span), false)
        .await
        .filter(|r| r.status == 200)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    let file = playlist
        .as_deref()
        .and_then(|p| p.lines().find(|l| l.starts_with("segments/")))
        .and_then(|l| l.strip_prefix("segments/"))
        .and_then(|l| l.split_once('?'))
        .map(|(f, _)| f.to_owned());
    c.expect(req(Method::GET, EXPORT).arg(&a).query(&span), 200)
        .await;
    c.expect(
        req(Method::GET, EXPORT)
            .arg(&a)
            .query(&format!("{span}&part=7")),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, EXPORT)
            .arg(&a)
            .query(&format!("{span}&part=-1")),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, SNAPSHOT).arg(&a).query(&format!(
            "stream=main&time={}&width=160",
            rfc3339_from_now(-600)
        )),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, SNAPSHOT)
            .arg(&a)
            .query("stream=main&width=5"),
        400,
    )
    .await;
    c.expect(req(Method::GET, SNAPSHOT).arg(&a).query("stream=main"), 200)
        .await;
    c.expect(req(Method::GET, TRANSCODED).arg(&a).query(&span), 200)
        .await;
    c.expect(
        req(Method::GET, TRANSCODED).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-7200),
            rfc3339_from_now(0)
        )),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, TRANSCODED).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-90_000),
            rfc3339_from_now(-89_000)
        )),
        404,
    )
    .await;
    let evidence = json!({"stream": "main", "start": rfc3339_from_now(-600),
        "end": rfc3339_from_now(60), "case": "KZ-2026-1", "reason": "drift check",
        "operator": "Tester"});
    c.valid_body(&Method::POST, EVIDENCE, &evidence);
    c.expect(req(Method::POST, EVIDENCE).arg(&a).json(&evidence), 200)
        .await;
    let mut no_case = evidence.clone();
    no_case["case"] = json!("");
    c.invalid_body(
        req(Method::POST, EVIDENCE).arg(&a),
        &no_case,
        "an empty case",
    )
    .await;
    c.expect(
        req(Method::POST, EVIDENCE).arg(UNKNOWN_ID).json(&evidence),
        404,
    )
    .await;
    match &file {
        Some(file) => {
            c.expect(
                req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main"),
                200,
            )
            .await;
            let ranged = Req {
                range: Some("bytes=0-99"),
                ..req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main")
            };
            if let Some(r) = c.send(&ranged, false).await
                && (r.status != 206 || r.body.len() != 100)
            {
                c.problem(format!(
                    "a range of 100 bytes got {} with {} bytes",
                    r.status,
                    r.body.len()
                ));
            }
            let past = Req {
                range: Some("bytes=999999999-"),
                ..req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=main")
            };
            c.expect(past, 416).await;
            c.expect(
                req(Method::GET, SEGMENT)
                    .arg(&a)
                    .arg(file)
                    .query("stream=..%2F"),
                400,
            )
            .await;
        }
        None => c.problem(format!("no playlist with a media segment: {playlist:?}")),
    }
    c.expect(
        req(Method::GET, SEGMENT)
            .arg(&a)
            .arg("1.mp4")
            .query("stream=main"),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, SEGMENT)
            .arg(&a)
            .arg("%2e%2e.mp4")
            .query("stream=main"),
        404,
    )
    .await;
    c.expect(
        req(Method::GET, PLAYBACK).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(0),
            rfc3339_from_now(-60)
        )),
        400,
    )
    .await;
    c.expect(
        req(Method::GET, PLAYBACK).arg(&a).query(&format!(
            "stream=main&start={}&end={}",
            rfc3339_from_now(-90_000),
            rfc3339_from_now(-89_000)
        )),
        404,
    )
    .await;

    // Evidence holds.
    let hold = json!({
        "stream": "main",
        "start": rfc3339_from_now(-600),
        "end": rfc3339_from_now(-60),
        "case": "KZ-2026-000123",
        "reason": "drift check of the OpenAPI document"
    });
    let mut whole_camera = hold.clone();
    whole_camera
        .as_object_mut()
        .expect("an object")
        .remove("stream");
    whole_camera["filed_by"] = json!("an unknown field, ignored");
    let mut null_stream = hold.clone();
    null_stream["stream"] = Value::Null;
    let mut hold_ids = Vec::new();
    for body in [&hold, &whole_camera, &null_stream] {
        c.valid_body(&Method::POST, CAMERA_HOLDS, body);
        if let Some(v) = c
            .expect(req(Method::POST, CAMERA_HOLDS).arg(&a).json(body), 201)
            .await
            && let Some(id) = v["id"].as_str()
        {
            hold_ids.push(id.to_owned());
        }
    }
    c.expect(
        req(Method::POST, CAMERA_HOLDS).arg(UNKNOWN_ID).json(&hold),
        404,
    )
    .await;
    c.expect(
        req(Method::POST, CAMERA_HOLDS).arg("not-an-id").json(&hold),
        404,
    )
    .await;
    let hold_with = |field: &str, v: Value| {
        let mut body = hold.clone();
        body[field] = v;
        body
    };
    let hold_without = |field: &str| {
        let mut body = hold.clone();
        body.as_object_mut().expect("an object").remove(field);
        body
    };
    for (body, why) in [
        (hold_with("case", json!("")), "an empty case"),
        (
            hold_with("case", json!("c".repeat(129))),
            "a case of 129 characters",
        ),
        (hold_with("reason", json!("")), "an empty reason"),
        (
            hold_with("reason", json!("r".repeat(1025))),
            "a reason of 1025 characters",
        ),
        (hold_with("start", json!("soon")), "a start that is no time"),
        (hold_without("end"), "no end"),
        (hold_without("case"), "no case"),
        (hold_without("reason"), "no reason"),
    ] {
        c.invalid_body(req(Method::POST, CAMERA_HOLDS).arg(&a), &body, why)
            .await;
    }
    c.expect(req(Method::GET, HOLDS), 200).await;
    c.expect(req(Method::GET, "/api/v1/evidence/key"), 200)
        .await;
    c.expect(req(Method::GET, "/api/v1/evidence/key"), 200)
        .await;
    c.expect(req(Method::GET, HOLDS).query(&format!("camera={a}")), 200)
        .await;
    for id in &hold_ids {
        c.expect(req(Method::DELETE, HOLD).arg(id), 204).await;
    }
    if let Some(id) = hold_ids.first() {
        c.expect(req(Method::DELETE, HOLD).arg(id), 404).await;
    }
    c.expect(req(Method::DELETE, HOLD).arg(UNKNOWN_ID), 404)
        .await;
    c.expect(req(Method::DELETE, HOLD).arg("not-an-id"), 404)
        .await;

    // Alerts and metrics.
    c.poll(
        || req(Method::GET, "/api/v1/alerts"),
        Duration::from_secs(30),
        "a stream_down alert for camera B",
        |v| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["kind"] == "stream_down"))
        },
    )
    .await;
    if let Some(reply) = c.send(&req(Method::GET, "/metrics"), false).await {
        if reply.status == 200 {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            c.check_metrics(&text);
        } else {
            c.problem(format!("/metrics answered {}", reply.status));
        }
    }

    // Removing a camera.
    c.expect(req(Method::DELETE, CAMERA).arg(&b), 204).await;
    c.expect(req(Method::DELETE, CAMERA).arg(&b), 404).await;
    c.expect(req(Method::DELETE, CAMERA).arg("not-an-id"), 404)
        .await;

    // Every operation was answered with success at least once.
    for (method, path) in &operations {
        let ok = c
            .seen
            .iter()
            .any(|(m, p, s)| m == method && p == path && (200..300).contains(s));
        if !ok {
            c.problem(format!("{method} {path} was never answered with success"));
        }
    }
    let unexercised: Vec<String> = operations
        .iter()
        .flat_map(|(m, p)| {
            let op = c.spec.operation(&m.parse().expect("a method"), p);
            op.and_then(|o| o["responses"].as_object())
                .into_iter()
                .flatten()
                .filter_map(|(s, _)| s.parse::<u16>().ok())
                .filter(|s| !c.seen.contains(&(m.clone(), p.clone(), *s)))
                .map(|s| format!("{m} {p} {s}"))
                .collect::<Vec<_>>()
        })
        .collect();
    eprintln!(
        "openapi: {} (operation, status) pairs seen in {:.1} s; documented but not provoked: {}",
        c.seen.len(),
        started.elapsed().as_secs_f64(),
        unexercised.join(", ")
    );
    rec.process
        .terminate(Duration::from_secs(20))
        .expect("clean stop");
    assert!(
        c.problems.is_empty(),
        "the recorder and {SPEC_FILE} disagree ({} problems):\n  {}",
        c.problems.len(),
        c.problems.join("\n  ")
    );
}
