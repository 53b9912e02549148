//! Small journals for what the segment files cannot hold (camera configuration, evidence
//! holds): the whole list as JSON, rewritten atomically on every change. They change rarely
//! and stay small, so a rewrite (temporary file, fsync, rename, directory fsync) is cheaper
//! than the machinery of an append log, and a crash leaves either the old or the new list.

use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vms_core::keyfile::write_atomically;
use vms_core::{Error, IoResultExt, bail, err};

/// A list of `T` kept in one file as `{"format": "<format>", "<key>": [...]}`.
pub struct Journal<T> {
    path: PathBuf,
    format: &'static str,
    key: &'static str,
    _entries: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    pub fn new(path: PathBuf, format: &'static str, key: &'static str) -> Journal<T> {
        Journal {
            path,
            format,
            key,
            _entries: PhantomData,
        }
    }

    /// The list; empty when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<T>, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).io_context(|| format!("reading {}", self.path.display())),
        };
        let bad =
            |e: &dyn std::fmt::Display| err!(DataLoss, "journal {}: {e}", self.path.display());
        let mut file: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
        let format = file.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if format != self.format {
            bail!(
                DataLoss,
                "journal {}: format {format:?}, this build reads {:?}",
                self.path.display(),
                self.format
            );
        }
        let entries = file.remove(self.key).unwrap_or_default();
        serde_json::from_value(entries).map_err(|e| bad(&e))
    }

    /// Replaces the list, durably.
    pub fn save(&self, entries: &[T]) -> Result<(), Error> {
        let file = serde_json::json!({ "format": self.format, self.key: entries });
        let bytes = serde_json::to_vec_pretty(&file).expect("journal serialises");
        write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        let j: Journal<String> = Journal::new(path.clone(), "test/1", "items");
        assert!(j.load().unwrap().is_empty());
        j.save(&["a".into(), "b".into()]).unwrap();
        assert_eq!(j.load().unwrap(), ["a", "b"]);
        let other: Journal<String> = Journal::new(path.clone(), "test/2", "items");
        assert_eq!(
            other.load().unwrap_err().kind(),
            vms_core::ErrorKind::DataLoss
        );
        std::fs::write(&path, b"{\"format\":\"test/1\",\"items\":[1]}").unwrap();
        assert_eq!(j.load().unwrap_err().kind(), vms_core::ErrorKind::DataLoss);
    }
}
