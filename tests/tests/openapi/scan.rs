//! Reading route declarations out of Rust source text: a small lexer (identifiers, string
//! literals, punctuation; comments dropped) and a scanner of `.route("…", get(…).post(…))`
//! calls. No Rust parsing beyond tokens; a call it cannot read fully is an error, never a
//! silent omission.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::workspace_root;

/// A path template with its parameter names blanked (`/a/{id}` → `/a/{}`): the names are not on
/// the wire, so the code and the document may call them differently.
pub fn route_key(path: &str) -> String {
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

/// Every route declared in `source` (relative to the workspace root): a `.rs` file, or every
/// `.rs` file under a directory. Each comes with its `file:line`.
pub fn declared_routes(source: &str) -> Result<Vec<(Route, String)>, String> {
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
    let path = workspace_root().join(source);
    let mut files = Vec::new();
    if path.is_dir() {
        walk(&path, &mut files).map_err(|e| format!("{source}: {e}"))?;
    } else {
        files.push(path);
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f
            .strip_prefix(workspace_root())
            .unwrap_or(&f)
            .display()
            .to_string();
        let src = std::fs::read_to_string(&f).map_err(|e| format!("{name}: {e}"))?;
        let tokens = lex(&src).map_err(|e| format!("{name}: {e}"))?;
        for r in routes(&tokens).map_err(|e| format!("{name}: {e}"))? {
            let at = format!("{name}:{}", r.line);
            out.push((r, at));
        }
    }
    Ok(out)
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
    let tokens = lex(src).expect("lexes");
    let found: BTreeSet<(String, String)> = routes(&tokens)
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
        let e = lex(src).and_then(|t| routes(&t)).expect_err(src);
        assert!(e.contains(why), "{src}: {e}");
    }
    assert_eq!(route_key("/a/{id}/b/{x}"), "/a/{}/b/{}");
}
