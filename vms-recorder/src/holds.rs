//! Evidence holds: ranges of a camera's footage that retention must keep, even past the
//! privacy cap. They live in a fsynced journal of their own (`holds.json` in the data
//! directory), never only in the index, so they survive the loss of the index; every change
//! is durable before it is acknowledged.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use vms_core::id::{CameraId, HoldId};
use vms_core::text::check_text;
use vms_core::time::Time90k;
use vms_core::{Error, bail, err};

use crate::archive::layout::check_stream_name;
use crate::journal::Journal;

/// The most holds a recorder keeps: the journal is rewritten whole on every change.
pub const MAX_HOLDS: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub camera: CameraId,
    /// `None`: every stream of the camera.
    pub stream: Option<String>,
    pub start_90k: i64,
    pub end_90k: i64,
    pub case: String,
    pub reason: String,
    pub created_90k: i64,
}

impl Hold {
    /// Whether this hold keeps a segment of `camera`/`stream` spanning `start..end`.
    pub fn covers(&self, camera: CameraId, stream: &str, start: Time90k, end: Time90k) -> bool {
        self.camera == camera
            && self.stream.as_deref().is_none_or(|s| s == stream)
            && self.start_90k < end.0
            && start.0 < self.end_90k
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.start_90k >= self.end_90k {
            bail!(InvalidArgument, "end: must be after start");
        }
        if let Some(s) = &self.stream {
            check_stream_name(s).map_err(|e| e.context("stream"))?;
        }
        check_text("case", &self.case, 128)?;
        check_text("reason", &self.reason, 1024)
    }
}

/// The holds of a recorder, backed by their journal.
pub struct Holds {
    journal: Journal<Hold>,
    list: Mutex<Vec<Hold>>,
}

impl Holds {
    pub fn open(data_dir: &Path) -> Result<Holds, Error> {
        let journal = Journal::new(data_dir.join("holds.json"), "vms-holds/1", "holds");
        let list = journal.load()?;
        Ok(Holds {
            journal,
            list: Mutex::new(list),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Hold>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Places a hold; it is durable when this returns.
    pub fn place(&self, hold: Hold) -> Result<(), Error> {
        hold.validate()?;
        let mut list = self.lock();
        if list.len() >= MAX_HOLDS {
            bail!(ResourceExhausted, "{MAX_HOLDS} holds already placed");
        }
        let mut next = list.clone();
        next.push(hold);
        self.journal.save(&next)?;
        *list = next;
        Ok(())
    }

    /// Releases a hold; the release is durable when this returns.
    pub fn release(&self, id: HoldId) -> Result<Hold, Error> {
        let mut list = self.lock();
        let i = list
            .iter()
            .position(|h| h.id == id)
            .ok_or_else(|| err!(NotFound, "no hold {id}"))?;
        let mut next = list.clone();
        let hold = next.remove(i);
        self.journal.save(&next)?;
        *list = next;
        Ok(hold)
    }

    pub fn list(&self) -> Vec<Hold> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(camera: CameraId, stream: Option<&str>, start: i64, end: i64) -> Hold {
        Hold {
            id: HoldId::generate(),
            camera,
            stream: stream.map(str::to_owned),
            start_90k: start,
            end_90k: end,
            case: "2026-001".into(),
            reason: "robbery at gate 1".into(),
            created_90k: 0,
        }
    }

    #[test]
    fn place_release_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let holds = Holds::open(dir.path()).unwrap();
        let cam = CameraId::generate();
        let a = hold(cam, None, 0, 100);
        let b = hold(cam, Some("main"), 50, 60);
        holds.place(a.clone()).unwrap();
        holds.place(b.clone()).unwrap();
        assert_eq!(
            Holds::open(dir.path()).unwrap().list(),
            [a.clone(), b.clone()]
        );
        assert_eq!(holds.release(a.id).unwrap(), a);
        assert_eq!(
            holds.release(a.id).unwrap_err().kind(),
            vms_core::ErrorKind::NotFound
        );
        assert_eq!(Holds::open(dir.path()).unwrap().list(), [b]);
    }

    #[test]
    fn validation_and_coverage() {
        let cam = CameraId::generate();
        assert!(hold(cam, None, 10, 10).validate().is_err());
        assert!(hold(cam, Some("../x"), 0, 10).validate().is_err());
        let mut h = hold(cam, None, 0, 10);
        h.case = String::new();
        assert!(h.validate().is_err());
        h.case = "a\u{0}b".into();
        assert!(h.validate().is_err());

        let h = hold(cam, Some("main"), 100, 200);
        let t = Time90k;
        assert!(h.covers(cam, "main", t(50), t(101)));
        assert!(h.covers(cam, "main", t(199), t(300)));
        assert!(!h.covers(cam, "main", t(200), t(300)), "ends are exclusive");
        assert!(!h.covers(cam, "main", t(0), t(100)));
        assert!(!h.covers(cam, "sub", t(150), t(160)));
        assert!(!h.covers(CameraId::generate(), "main", t(150), t(160)));
        assert!(hold(cam, None, 100, 200).covers(cam, "sub", t(150), t(160)));
    }
}
