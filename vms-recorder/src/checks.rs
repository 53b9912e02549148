//! The conformance checks a recorder runs on its cameras' streams (`spec/camera-conformance.md`):
//! one probe per stream when a camera is onboarded (through the API, or from the config file
//! at the start that adds it) or changed, or when asked; each stream's
//! newest report is kept in a fsynced journal (`conformance.json`), because the segment files
//! cannot hold it. A check runs beside recording and never delays it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vms_core::id::CameraId;
use vms_core::wire::{CameraConformance, ConformanceReport, StreamConformance};
use vms_core::{Error, err};

use crate::cameras::Camera;
use crate::clock::Clocks;
use crate::conformance::{self, Role, Target};
use crate::journal::Journal;
use crate::supervisor::lock;

/// One kept report.
#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    camera: CameraId,
    stream: String,
    report: ConformanceReport,
}

#[derive(Default)]
struct StreamCheck {
    /// Bumped by every start; a result of an older start is dropped.
    generation: u64,
    running: bool,
    report: Option<ConformanceReport>,
}

/// Every stream's checks.
pub struct Checks {
    journal: Journal<Entry>,
    state: Mutex<BTreeMap<(CameraId, String), StreamCheck>>,
    /// Serialises journal rewrites, so that an older list never replaces a newer one.
    saving: tokio::sync::Mutex<()>,
    clocks: Arc<dyn Clocks>,
    duration: Duration,
}

impl Checks {
    /// Opens the journal in `data_dir`; probes last `duration`.
    pub fn open(
        data_dir: &Path,
        clocks: Arc<dyn Clocks>,
        duration: Duration,
    ) -> Result<Checks, Error> {
        let journal = Journal::new(
            data_dir.join("conformance.json"),
            "vms-conformance/1",
            "reports",
        );
        let state = journal
            .load()?
            .into_iter()
            .map(|e: Entry| {
                let check = StreamCheck {
                    report: Some(e.report),
                    ..Default::default()
                };
                ((e.camera, e.stream), check)
            })
            .collect();
        Ok(Checks {
            journal,
            state: Mutex::new(state),
            saving: tokio::sync::Mutex::new(()),
            clocks,
            duration,
        })
    }

    /// Starts a check of every stream of `camera` on the current runtime: the first stream
    /// against its class's main-stream profile, the others against the sub-stream one.
    pub fn start(self: &Arc<Self>, camera: &Camera) {
        {
            // Streams the camera no longer has are forgotten.
            let mut state = lock(&self.state);
            state.retain(|(c, s), _| {
                *c != camera.id || camera.spec.streams.iter().any(|st| st.name == *s)
            });
        }
        for (i, stream) in camera.spec.streams.iter().enumerate() {
            let Ok(url) = stream.parsed_url() else {
                continue; // validated when the camera was accepted
            };
            let key = (camera.id, stream.name.clone());
            let generation = {
                let mut state = lock(&self.state);
                let check = state.entry(key.clone()).or_default();
                check.generation += 1;
                check.running = true;
                check.generation
            };
            let target = Target {
                url,
                username: stream.username.clone(),
                password: stream.password.clone(),
                duration: self.duration,
            };
            let role = if i == 0 { Role::Main } else { Role::Sub };
            let class = camera.spec.class;
            let this = self.clone();
            tokio::spawn(async move {
                let report = conformance::check(&target, class, role, this.clocks.as_ref()).await;
                tracing::info!(
                    camera = %key.0, stream = %key.1, verdict = %report.verdict,
                    "conformance check done"
                );
                if let Err(e) = this.finish(key, generation, report).await {
                    tracing::error!(err = %e, "keeping a conformance report failed");
                }
            });
        }
    }

    async fn finish(
        self: &Arc<Self>,
        key: (CameraId, String),
        generation: u64,
        report: ConformanceReport,
    ) -> Result<(), Error> {
        let _saving = self.saving.lock().await;
        {
            let mut state = lock(&self.state);
            match state.get_mut(&key) {
                Some(check) if check.generation == generation => {
                    check.running = false;
                    check.report = Some(report);
                }
                _ => return Ok(()), // restarted or forgotten meanwhile
            }
        }
        self.save().await
    }

    /// Forgets a removed camera's reports.
    pub async fn forget(self: &Arc<Self>, camera: CameraId) -> Result<(), Error> {
        let _saving = self.saving.lock().await;
        lock(&self.state).retain(|(c, _), _| *c != camera);
        self.save().await
    }

    async fn save(self: &Arc<Self>) -> Result<(), Error> {
        let entries: Vec<Entry> = lock(&self.state)
            .iter()
            .filter_map(|((camera, stream), check)| {
                Some(Entry {
                    camera: *camera,
                    stream: stream.clone(),
                    report: check.report.clone()?,
                })
            })
            .collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.journal.save(&entries))
            .await
            .map_err(|e| err!(Internal, "conformance journal task: {e}"))?
    }

    /// The state of each stream of `camera`, in its order.
    pub fn of(&self, camera: &Camera) -> CameraConformance {
        let state = lock(&self.state);
        let streams = camera
            .spec
            .streams
            .iter()
            .map(|st| {
                let name = &st.name;
                let check = state.get(&(camera.id, name.clone()));
                let state = match check {
                    Some(c) if c.running => "running",
                    Some(c) if c.report.is_some() => "done",
                    _ => "pending",
                };
                StreamConformance {
                    stream: name.clone(),
                    state: state.to_owned(),
                    report: check.and_then(|c| c.report.clone()),
                }
            })
            .collect();
        CameraConformance { streams }
    }

    /// The verdict of each of `camera`'s streams that has a report.
    pub fn verdicts(&self, camera: CameraId) -> Vec<(String, String)> {
        lock(&self.state)
            .iter()
            .filter(|((c, _), _)| *c == camera)
            .filter_map(|((_, stream), check)| {
                Some((stream.clone(), check.report.as_ref()?.verdict.clone()))
            })
            .collect()
    }

    /// Whether a stream of `camera` has no report and no check running.
    pub fn unchecked(&self, camera: &Camera) -> bool {
        let state = lock(&self.state);
        camera.spec.streams.iter().any(|st| {
            state
                .get(&(camera.id, st.name.clone()))
                .is_none_or(|c| !c.running && c.report.is_none())
        })
    }

    /// Streams whose newest report fails, with the rules that failed.
    pub fn failing(&self) -> Vec<(CameraId, String, Vec<String>)> {
        lock(&self.state)
            .iter()
            .filter_map(|((camera, stream), check)| {
                let report = check.report.as_ref().filter(|r| r.verdict == "fail")?;
                let rules = report
                    .rules
                    .iter()
                    .filter(|r| r.status == "fail")
                    .map(|r| r.id.clone())
                    .collect();
                Some((*camera, stream.clone(), rules))
            })
            .collect()
    }
}
