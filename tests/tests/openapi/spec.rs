//! One OpenAPI document of `spec/openapi/`, with every document of that directory registered
//! for `$ref` resolution (schemas may refer across documents: `recorder.yaml#/…`): its
//! operations, and validation of answers and bodies against it, which the conformance suite's
//! library (`vms_conformance::openapi`) performs.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;

use super::probe::Reply;
use super::workspace_root;

/// Where the documents are, relative to the workspace root.
pub const SPEC_DIR: &str = "spec/openapi";
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
    checker: vms_conformance::openapi::Spec,
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
        let checker = vms_conformance::openapi::Spec::from_docs(docs.clone(), name)
            .unwrap_or_else(|e| panic!("{SPEC_DIR}: {e}"));
        Spec {
            file: format!("{SPEC_DIR}/{name}"),
            doc,
            docs,
            checker,
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
    pub fn deref<'a>(&'a self, v: &'a Value) -> Result<&'a Value, String> {
        self.checker.deref(v)
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
        self.checker.validate(schema, instance)
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
        let answer = vms_conformance::openapi::Answer {
            status: reply.status,
            headers: &reply.headers,
            body: Some(&reply.body),
        };
        self.checker
            .check_answer(&method.as_str().to_ascii_lowercase(), template, &answer)
    }
}
