//! The checks of a document that need no running server: the document on its own (references,
//! operations, parameters, examples, and each API's own extensions), and its operations
//! against the routes the code declares.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::scan::{declared_routes, route_key};
use super::spec::Spec;

/// An API's own rules for one operation (`name` is `METHOD /path`); the problems found.
pub type OperationRules<'a> = &'a dyn Fn(&Spec, &str, &Value, &Value) -> Vec<String>;

/// The document on its own: every `$ref` resolves (into it or a sibling), every operation is
/// complete and obeys `rules`, every path parameter is declared, and every example is valid
/// against its schema.
pub fn assert_consistent(spec: &Spec, rules: OperationRules) {
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
        if spec.resolve(r).is_none() {
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
        problems.extend(rules(spec, &name, op, item));
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
        found.len() >= 5,
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
        "{} is inconsistent:\n  {}",
        spec.file,
        problems.join("\n  ")
    );
}

/// The rule of a document whose paths two servers serve: each path item names its server in
/// `x-served-by`, one of `servers`.
pub fn served_by_rule(servers: &[&str]) -> impl Fn(&Spec, &str, &Value, &Value) -> Vec<String> {
    move |_spec, name, _op, item| match item["x-served-by"].as_str() {
        Some(s) if servers.contains(&s) => Vec::new(),
        other => vec![format!(
            "{name}: x-served-by of its path is {other:?}, not one of {servers:?}"
        )],
    }
}

/// The routes `source` declares (a file, or every file under a directory, relative to the
/// workspace root) are exactly the operations of `spec` that `served_by` serves (all when
/// `None`).
pub fn assert_routes_match(spec: &Spec, served_by: Option<&str>, source: &str) {
    let code = code_routes(source);
    let documented: BTreeMap<(String, String), String> = spec
        .operations_of(served_by)
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
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join("\n  ")
        }
    };
    assert!(
        only_doc.is_empty() && only_code.is_empty(),
        "{} and {source} disagree on the routes.\n\
         documented but not declared in the code:\n  {}\n\
         declared in the code but not documented:\n  {}",
        spec.file,
        list(&only_doc),
        list(&only_code),
    );
}

/// The operations of `spec` that `served_by` serves are all declared in `source`, which
/// serves others too.
pub fn assert_routes_declared(spec: &Spec, served_by: &str, source: &str) {
    let code = code_routes(source);
    let missing: Vec<String> = spec
        .operations_of(Some(served_by))
        .into_iter()
        .filter(|(m, p)| !code.contains_key(&(m.clone(), route_key(p))))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} documents routes {source} does not declare:\n  {}",
        spec.file,
        missing.join("\n  ")
    );
}

/// The routes `source` declares, keyed by (method, path with its parameter names blanked),
/// each with its path and where it is declared.
fn code_routes(source: &str) -> BTreeMap<(String, String), String> {
    let declared = declared_routes(source).unwrap_or_else(|e| panic!("scanning {source}: {e}"));
    assert!(!declared.is_empty(), "no route found in {source}");
    declared
        .into_iter()
        .map(|(r, at)| {
            (
                (r.method, route_key(&r.path)),
                format!("{} (at {at})", r.path),
            )
        })
        .collect()
}
