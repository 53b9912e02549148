//! The OpenAPI documents the suite checks answers against: one document (the recorder's,
//! compiled in or read from `--spec DIR`) with its sibling documents registered for `$ref`s,
//! and the validation of one answer against the response its operation documents for its
//! status. `tests/tests/openapi/` checks our servers with it too.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The documents compiled into the binary: `spec/openapi/`, by file name.
const EMBEDDED: [(&str, &str); 2] = [
    ("recorder.yaml", include_str!("../../openapi/recorder.yaml")),
    ("channel.yaml", include_str!("../../openapi/channel.yaml")),
];
/// The base URI the documents are registered under for `$ref` resolution (never fetched).
const BASE_URI: &str = "https://vms.invalid/spec/openapi/";
/// The document of the recorder API.
pub const RECORDER: &str = "recorder.yaml";

/// One answer, as far as the document describes it.
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a reqwest::header::HeaderMap,
    /// The body, when it is not media (media bodies are checked by their own checks).
    pub body: Option<&'a [u8]>,
}

/// The recorder's OpenAPI document and a registry that resolves `$ref`s into its siblings.
pub struct Spec {
    pub doc: Value,
    uri: url::Url,
    registry: jsonschema::Registry<'static>,
}

impl Spec {
    /// The documents compiled into the binary.
    pub fn embedded() -> Result<Spec, String> {
        let docs = EMBEDDED
            .iter()
            .map(|(name, text)| Ok(((*name).to_owned(), parse(name, text)?)))
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        Spec::from_docs(docs, RECORDER)
    }

    /// The documents of `dir/openapi/` (every `.yaml` file; `recorder.yaml` is checked against).
    pub fn from_dir(dir: &Path) -> Result<Spec, String> {
        let dir = dir.join("openapi");
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut docs = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{}: not a UTF-8 file name", path.display()))?
                .to_owned();
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            docs.insert(name.clone(), parse(&path.display().to_string(), &text)?);
        }
        Spec::from_docs(docs, RECORDER)
    }

    /// Document `name` of `docs` (documents by file name, which may refer to each other).
    pub fn from_docs(docs: BTreeMap<String, Value>, name: &str) -> Result<Spec, String> {
        let doc = docs
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the spec has no openapi/{name}"))?;
        if doc["openapi"]
            .as_str()
            .is_none_or(|v| !v.starts_with("3.1"))
        {
            return Err(format!("openapi/{name} is not an OpenAPI 3.1 document"));
        }
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
            .map_err(|e| format!("the OpenAPI documents: {e}"))?;
        let uri = url::Url::parse(BASE_URI)
            .and_then(|u| u.join(name))
            .map_err(|e| e.to_string())?;
        Ok(Spec { doc, uri, registry })
    }

    /// The operation at `method` (lower case) and path template `template`.
    pub fn operation(&self, method: &str, template: &str) -> Option<&Value> {
        self.doc["paths"].get(template)?.get(method)
    }

    /// Every operation in document order: (lower-case method, path template, operationId).
    pub fn operations(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let Some(id) = op["operationId"].as_str() {
                    out.push((method.clone(), path.clone(), id.to_owned()));
                }
            }
        }
        out
    }

    /// Follows the `$ref`s of a response, parameter or header object within the document.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Ok(v);
            };
            let pointer = r
                .strip_prefix('#')
                .ok_or_else(|| format!("$ref {r:?} leaves the document"))?;
            v = self
                .doc
                .pointer(pointer)
                .ok_or_else(|| format!("$ref {r:?} resolves to nothing"))?;
        }
        Err("a $ref cycle".into())
    }

    /// Validates `instance` against `schema`, a schema object of the recorder document.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
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
            .map_err(|e| format!("the document's schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .take(3)
            .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The schema of a component (`#/components/schemas/{name}`).
    pub fn schema(&self, name: &str) -> Value {
        serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The problems of one answer of the operation at `method` and `template`: its status is
    /// documented, its documented headers are present and valid, its content type is a
    /// documented one, and a JSON or text body matches the schema.
    pub fn check_answer(&self, method: &str, template: &str, answer: &Answer) -> Vec<String> {
        let Some(op) = self.operation(method, template) else {
            return vec!["the operation is not in the document".into()];
        };
        let status = answer.status.to_string();
        let Some(response) = op["responses"].get(&status) else {
            let documented: Vec<&String> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            return vec![format!(
                "status {status} is not documented (documented: {documented:?})"
            )];
        };
        let response = match self.deref(response) {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        let mut problems = Vec::new();
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = match self.deref(header) {
                Ok(h) => h,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            match answer.headers.get(name.to_ascii_lowercase().as_str()) {
                None if header["required"] == true => {
                    problems.push(format!("{status}: header {name} is missing"))
                }
                None => {}
                Some(value) => {
                    let value = Value::String(value.to_str().unwrap_or("<not ASCII>").to_owned());
                    if let Some(schema) = header.get("schema")
                        && let Err(e) = self.validate(schema, &value)
                    {
                        problems.push(format!("{status}: header {name} {value}: {e}"));
                    }
                }
            }
        }
        let Some(content) = response["content"].as_object() else {
            if answer.body.is_some_and(|b| !b.is_empty()) {
                problems.push(format!("{status}: a body where the document has none"));
            }
            return problems;
        };
        let normalise = |m: &str| m.to_ascii_lowercase().replace(' ', "");
        let actual = answer
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(normalise)
            .unwrap_or_default();
        let Some((media, media_object)) = content.iter().find(|(m, _)| normalise(m) == actual)
        else {
            let documented: Vec<&String> = content.keys().collect();
            problems.push(format!(
                "{status}: content type {actual:?} is not a documented one ({documented:?})"
            ));
            return problems;
        };
        let (Some(schema), Some(body)) = (media_object.get("schema"), answer.body) else {
            return problems;
        };
        if schema["format"] == "binary" {
            return problems;
        }
        let instances: Vec<Value> = match media.as_str() {
            "application/json" => match serde_json::from_slice(body) {
                Ok(v) => vec![v],
                Err(e) => {
                    problems.push(format!("{status}: the body is not JSON: {e}"));
                    return problems;
                }
            },
            // One JSON value per line; a stream read only in part may end within a line.
            "application/x-ndjson" => {
                let lines = complete_lines(body);
                if lines.is_empty() {
                    problems.push(format!(
                        "{status}: an NDJSON stream without a complete line"
                    ));
                    return problems;
                }
                let mut values = Vec::new();
                for line in lines.split(|&b| b == b'\n') {
                    match serde_json::from_slice(line) {
                        Ok(v) => values.push(v),
                        Err(e) => {
                            problems.push(format!(
                                "{status}: a line that is not JSON ({e}): {}",
                                String::from_utf8_lossy(line)
                            ));
                            return problems;
                        }
                    }
                }
                values
            }
            _ => match std::str::from_utf8(body) {
                Ok(s) => vec![Value::String(s.to_owned())],
                Err(_) => {
                    problems.push(format!("{status}: a text body that is not UTF-8"));
                    return problems;
                }
            },
        };
        for instance in instances {
            if let Err(e) = self.validate(schema, &instance) {
                problems.push(format!(
                    "{status}: the body does not match the schema: {e}; body: {}",
                    shorten(&instance.to_string())
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

/// At most 300 characters of `s`.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn parse(name: &str, text: &str) -> Result<Value, String> {
    serde_norway::from_str(text).map_err(|e| format!("{name}: not YAML that maps to JSON: {e}"))
}
