//! The results of a run: one entry per check with a stable id, the lines `PASS id — detail` and
//! `FAIL id — what was wrong`, the closing count, and the JSON form of `--json`. The token is
//! scrubbed from every message.

use serde_json::{Value, json};

pub struct Outcome {
    pub id: String,
    pub passed: bool,
    pub message: String,
}

pub struct Report {
    token: String,
    pub checks: Vec<Outcome>,
}

impl Report {
    pub fn new(token: &str) -> Report {
        Report {
            token: token.to_owned(),
            checks: Vec::new(),
        }
    }

    /// Records a check's result; the token never appears in its message.
    pub fn record(&mut self, id: &str, result: Result<String, String>) {
        let (passed, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        let message = scrub(&message, &self.token);
        self.checks.push(Outcome {
            id: id.to_owned(),
            passed,
            message,
        });
    }

    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }

    /// The human lines, the last one the count.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let verdict = if c.passed { "PASS" } else { "FAIL" };
            out.push_str(&format!("{verdict} {} — {}\n", c.id, c.message));
        }
        out.push_str(&format!(
            "{} passed, {} failed\n",
            self.passed(),
            self.failed()
        ));
        out
    }

    pub fn json(&self, url: &str) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "status": if c.passed { "pass" } else { "fail" },
                    "message": c.message,
                })
            })
            .collect();
        json!({
            "version": 1,
            "url": url,
            "checks": checks,
            "passed": self.passed(),
            "failed": self.failed(),
        })
    }
}

/// `text` with every occurrence of the token (as given, and percent-encoded) replaced.
pub fn scrub(text: &str, token: &str) -> String {
    if token.is_empty() {
        return text.to_owned();
    }
    text.replace(token, "<token>")
        .replace(&crate::http::encode(token), "<token>")
}
