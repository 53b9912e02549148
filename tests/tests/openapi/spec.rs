//! One OpenAPI document of `spec/openapi/`, with every document of that directory registered
//! for `$ref` resolution (schemas may refer across documents: `recorder.yaml#/…`): its
//! operations, and validation of answers and bodies against it.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;

use super::probe::Reply;
use super::workspace_root;

/// Where the documents are, relative to the workspace root.
pub const SPEC_DIR: &str = "spec/openapi";
/// The base URI the documents are registered under for `$ref` resolution (never fetched).
const BASE_URI: &str = "https://vms.invalid/spec/openapi/";
/// The HTTP methods an OpenAPI path item may hold.
pub const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An OpenAPI document, and a registry that resolves `$ref`s into it and its siblings.
pub struct Spec {
    /// Its path relative to the workspace root, for messages.
    pub file: String,
    pub doc: Value,
    /// Every document of the directory, by file name.
    pub docs: BTreeMap<String, Value>,
    uri: url::Url,
    registry: jsonschema::Registry<'static>,
}

impl Spec {
    /// Loads `name` (e.g. `central.yaml`) and every other document of the directory.
    pub fn load(name: &str) -> Spec {
        let dir = workspace_root().join(SPEC_DIR);
        let mut docs = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let doc: Value = serde_norway::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not YAML that maps to JSON: {e}", path.display()));
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("a UTF-8 file name")
                .to_owned();
            docs.insert(file, doc);
        }
        let doc = docs
            .get(name)
            .unwrap_or_else(|| panic!("{SPEC_DIR}/{name} does not exist"))
            .clone();
        let resources = docs.iter().map(|(file, d)| {
            (
                format!("{BASE_URI}{file}"),
                jsonschema::Draft::Draft202012.create_resource(d.clone()),
            )
        });
        let registry = jsonschema::Registry::new()
            .draft(jsonschema::Draft::Draft202012)
            .extend(resources)
            .and_then(|b| b.prepare())
            .unwrap_or_else(|e| panic!("{SPEC_DIR}: {e}"));
        Spec {
            file: format!("{SPEC_DIR}/{name}"),
            doc,
            docs,
            uri: url::Url::parse(BASE_URI)
                .and_then(|u| u.join(name))
                .expect("a valid URI"),
            registry,
        }
    }

    /// Every operation: (upper-case method, path template).
    pub fn operations(&self) -> BTreeSet<(String, String)> {
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

    /// The operations of the paths that `served_by` serves (`x-served-by` of the path item),
    /// or every operation when `served_by` is `None`.
    pub fn operations_of(&self, served_by: Option<&str>) -> BTreeSet<(String, String)> {
        self.operations()
            .into_iter()
            .filter(|(_, p)| {
                served_by.is_none_or(|s| self.doc["paths"][p]["x-served-by"].as_str() == Some(s))
            })
            .collect()
    }

    pub fn operation(&self, method: &Method, template: &str) -> Option<&Value> {
        self.doc["paths"]
            .get(template)?
            .get(method.as_str().to_ascii_lowercase())
    }

    /// Whether an operation needs a token (a bearer or API-key scheme): its own `security`,
    /// else the document's. Mutual TLS is not a token.
    pub fn secured(&self, op: &Value) -> bool {
        let security = op.get("security").unwrap_or(&self.doc["security"]);
        let schemes = &self.doc["components"]["securitySchemes"];
        security.as_array().is_some_and(|reqs| {
            !reqs.is_empty()
                && reqs.iter().all(|r| {
                    r.as_object().is_some_and(|o| {
                        !o.is_empty()
                            && o.keys().all(|name| {
                                matches!(schemes[name]["type"].as_str(), Some("http" | "apiKey"))
                            })
                    })
                })
        })
    }

    /// Follows the `$ref`s of a response, parameter or header object within the document.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
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

    /// What a `$ref` of this document points at, in it or in a sibling document.
    pub fn resolve(&self, r: &str) -> Option<&Value> {
        let (file, pointer) = r.split_once('#').unwrap_or((r, ""));
        let doc = if file.is_empty() {
            &self.doc
        } else {
            self.docs.get(file)?
        };
        doc.pointer(pointer)
    }

    /// Validates `instance` against `schema`, a schema object of the document.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        // The schema's references are relative to the document: make them absolute.
        fn absolutize(v: &mut Value, base: &url::Url) {
            match v {
                Value::Object(o) => {
                    for (k, x) in o.iter_mut() {
                        match x {
                            Value::String(r) if k == "$ref" => {
                                if let Ok(u) = base.join(r) {
                                    *r = u.to_string();
                                }
                            }
                            _ => absolutize(x, base),
                        }
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(|x| absolutize(x, base)),
                _ => {}
            }
        }
        let mut schema = schema.clone();
        absolutize(&mut schema, &self.uri);
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
    pub fn request_schema(&self, method: &Method, template: &str) -> Result<&Value, String> {
        let op = self
            .operation(method, template)
            .ok_or("no such operation in the document")?;
        let body = self.deref(op.get("requestBody").ok_or("no request body documented")?)?;
        body.pointer("/content/application~1json/schema")
            .ok_or("no application/json schema for the request body".into())
    }

    /// Checks one answer against the document.
    pub fn check_response(&self, method: &Method, template: &str, reply: &Reply) -> Vec<String> {
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
        let instances: Vec<Value> = match media.as_str() {
            "application/json" => match serde_json::from_slice(&reply.body) {
                Ok(v) => vec![v],
                Err(e) => {
                    problems.push(format!("body is not JSON ({e}): {}", reply.body_text()));
                    return problems;
                }
            },
            // One JSON value per line; a stream read only in part may end within a line.
            "application/x-ndjson" => {
                let lines = complete_lines(&reply.body);
                if lines.is_empty() {
                    problems.push("an NDJSON stream without a complete line".into());
                    return problems;
                }
                let mut values = Vec::new();
                for line in lines.split(|&b| b == b'\n') {
                    match serde_json::from_slice(line) {
                        Ok(v) => values.push(v),
                        Err(e) => {
                            problems.push(format!(
                                "a line that is not JSON ({e}): {}",
                                String::from_utf8_lossy(line)
                            ));
                            return problems;
                        }
                    }
                }
                values
            }
            _ => match String::from_utf8(reply.body.clone()) {
                Ok(s) => vec![Value::String(s)],
                Err(_) => {
                    problems.push("a text body that is not UTF-8".into());
                    return problems;
                }
            },
        };
        for instance in instances {
            if let Err(e) = self.validate(schema, &instance) {
                problems.push(format!(
                    "body does not match the schema: {e}; body: {instance}"
                ));
            }
        }
        problems
    }
}

/// The complete lines of a body read perhaps only in part: everything before its last `\n`.
fn complete_lines(body: &[u8]) -> &[u8] {
    body.iter()
        .rposition(|&b| b == b'\n')
        .map_or(&[][..], |i| &body[..i])
}
