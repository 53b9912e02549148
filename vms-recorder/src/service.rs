//! The running recorder: its data directory (id, index, journals), its storage roots, its
//! cameras and their supervised stream tasks, and the questions the API asks of them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use vms_core::gap::EndReason;
use vms_core::id::{CameraId, HoldId, RecorderId, StorageRootId};
use vms_core::time::{Duration90k, Time90k};
use vms_core::token::TokenKey;
use vms_core::{Error, IoResultExt, bail, err};

use crate::archive::fs::{ArchiveFs, RealFs};
use crate::archive::index::{Index, SegmentRow};
use crate::archive::retention::{Finding, Outcome, Pass, Policy, RootBudget};
use crate::archive::{layout, recovery};
use crate::audit::{Action, Audit};
use crate::auth::{self, Principal};
use crate::cameras::{self, Camera, CameraClass, CameraSpec};
use crate::catalog::CatalogLog;
use crate::checks::Checks;
use crate::clock::{Clocks, RealClocks};
use crate::config::Config;
use crate::conformance;
use crate::evidence::SigningKey;
use crate::holds::{Hold, Holds};
use crate::ingest::Source;
use crate::journal::Journal;
use crate::recording::{Progress, Recording, Target};
use crate::supervisor::{self, Connection, lock};
use vms_core::keyfile::write_atomically;

/// How often retention runs when nothing wakes it sooner.
const RETENTION_INTERVAL: Duration = Duration::from_secs(10);
/// How long an alert raised by a retention event (an eviction for free space, a minimum-age
/// breach) stays active after it last happened.
pub const RETENTION_ALERT_LINGER: Duration = Duration::from_secs(3600);

/// A storage root as configured, and whether it may be written.
pub struct Root {
    pub path: PathBuf,
    pub quota_bytes: Option<u64>,
    pub reserve_bytes: u64,
    pub held_alert_share: f64,
    /// `Err` says why the root is unusable (missing, foreign, swapped).
    pub state: Result<StorageRootId, String>,
}

/// A stream being recorded.
pub struct StreamTask {
    pub name: String,
    root: StorageRootId,
    pub progress: Arc<Mutex<Progress>>,
    pub conn: Arc<Mutex<Connection>>,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

struct CameraEntry {
    camera: Camera,
    tasks: Vec<StreamTask>,
}

/// The recorder's state, shared by the API.
pub struct Service {
    pub id: RecorderId,
    /// Where the journals, the keys and central's enrolment live.
    pub data_dir: PathBuf,
    /// The catalog as central sees it, versioned.
    pub catalog: CatalogLog,
    pub admin_token: String,
    pub index: Index,
    pub roots: Vec<Root>,
    pub clocks: Arc<dyn Clocks>,
    /// Set when the index would not open and was rebuilt from the files at start-up.
    pub index_rebuilt: Option<String>,
    pub holds: Holds,
    /// Camera conformance checks and their newest reports.
    pub checks: Arc<Checks>,
    /// Whether adding or changing a camera checks its streams.
    check_on_change: bool,
    /// The key that signs evidence packages.
    pub evidence_key: SigningKey,
    /// Central's keys that media tokens verify against; none until enrolment.
    token_keys: RwLock<Vec<TokenKey>>,
    audit: Audit,
    fs: Arc<dyn ArchiveFs>,
    policies: BTreeMap<CameraClass, Policy>,
    /// Wakes the retention task early (a segment closed, a write failed, a hold went).
    retention: Arc<Notify>,
    /// What retention found, and when it last found it.
    findings: Mutex<Vec<(Instant, Finding)>>,
    stopping: watch::Sender<bool>,
    journal: Journal<Camera>,
    segment_duration: Duration90k,
    stall_timeout: Duration,
    cameras: tokio::sync::Mutex<BTreeMap<CameraId, CameraEntry>>,
    /// The runtime the service started on: stream tasks and retention run there, also when
    /// the API (which may run elsewhere) adds or changes a camera.
    runtime: tokio::runtime::Handle,
}

fn recorder_id(data_dir: &Path, configured: Option<RecorderId>) -> Result<RecorderId, Error> {
    let path = data_dir.join("recorder-id");
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id: RecorderId = s
                .trim()
                .parse()
                .map_err(|e: Error| e.context(path.display()))?;
            if let Some(c) = configured.filter(|&c| c != id) {
                bail!(
                    InvalidArgument,
                    "recorder_id: {c} does not match {id} kept in {}",
                    path.display()
                );
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = configured.unwrap_or_else(RecorderId::generate);
            write_atomically(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
    }
}

/// Root ids this recorder has used, by path: the journal that tells an empty, unmounted mount
/// point from a new disk.
fn known_roots(data_dir: &Path) -> Result<BTreeMap<PathBuf, StorageRootId>, Error> {
    let path = data_dir.join("storage-roots.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| err!(DataLoss, "{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
    }
}

/// Opens the index, or sets a broken one aside and starts an empty one (recovery then
/// rebuilds it from the files). Returns the index and, if it was rebuilt, why.
pub fn open_index(data_dir: &Path) -> Result<(Index, Option<String>), Error> {
    let dir = data_dir.join("index");
    match Index::open(&dir) {
        Ok(i) => Ok((i, None)),
        Err(e) => {
            let aside = data_dir.join(format!(
                "index.broken-{}",
                jiff::Timestamp::now().as_second()
            ));
            tracing::error!(err = %e, aside = %aside.display(), "index will not open; setting it aside and rebuilding");
            std::fs::rename(&dir, &aside)
                .io_context(|| format!("moving {} aside", dir.display()))?;
            Ok((
                Index::open(&dir)?,
                Some(format!(
                    "index would not open ({e}); rebuilt from the segment files"
                )),
            ))
        }
    }
}

/// Opens every configured root, remembering new ones.
fn open_roots(config: &Config, fs: &dyn ArchiveFs, id: RecorderId) -> Result<Vec<Root>, Error> {
    let mut known = known_roots(&config.data_dir)?;
    let mut roots = Vec::new();
    let mut changed = false;
    for s in &config.storage {
        let state = layout::open_root(fs, &s.path, id, known.get(&s.path).copied())
            .map_err(|e| e.to_string());
        match &state {
            Ok(root) => {
                changed |= known.insert(s.path.clone(), *root).is_none();
            }
            Err(e) => tracing::error!(root = %s.path.display(), err = %e, "storage root unusable"),
        }
        roots.push(Root {
            path: s.path.clone(),
            quota_bytes: s.quota_bytes,
            reserve_bytes: s.reserve_bytes,
            held_alert_share: f64::from(s.held_alert_percent) / 100.0,
            state,
        });
    }
    if changed {
        let json = serde_json::to_vec_pretty(&known).expect("roots serialise");
        write_atomically(&config.data_dir.join("storage-roots.json"), &json)?;
    }
    Ok(roots)
}

/// The usable roots, as `(id, path)`.
fn usable(roots: &[Root]) -> Vec<(StorageRootId, PathBuf)> {
    roots
        .iter()
        .filter_map(|r| r.state.as_ref().ok().map(|id| (*id, r.path.clone())))
        .collect()
}

/// For `reindex`: rebuilds the index of a stopped recorder from its files. With `verify`, the
/// rebuilt index goes to a scratch directory and is compared with the live one instead.
pub fn reindex(config: &Config, verify: bool) -> Result<String, Error> {
    // The live index is locked while its recorder runs: opening it first makes sure this
    // never rescans (and truncates or removes) files a running recorder is writing.
    let live = Index::open(&config.data_dir.join("index"))
        .map_err(|e| e.context("is the recorder still running? reindex needs it stopped"))?;
    let id = recorder_id(&config.data_dir, config.recorder_id)?;
    let roots = open_roots(config, &RealFs, id)?;
    let usable = usable(&roots);
    let scratch = config.data_dir.join("index.reindex");
    let _ = std::fs::remove_dir_all(&scratch);
    let rebuilt = Index::open(&scratch)?;
    let report = recovery::recover(&RealFs, &rebuilt, &usable, true)?;
    if !report.unreadable_roots.is_empty() || report.unreadable_files > 0 {
        bail!(
            Unavailable,
            "cannot read every segment file ({} roots and {} files unreadable; see the log)",
            report.unreadable_roots.len(),
            report.unreadable_files
        );
    }
    let summary = format!(
        "{} segments indexed, {} cut short, {} orphans removed",
        report.indexed, report.truncated, report.removed_orphans
    );
    if verify {
        let (a, b) = (live.dump()?, rebuilt.dump()?);
        drop(rebuilt);
        let _ = std::fs::remove_dir_all(&scratch);
        if a != b {
            bail!(
                DataLoss,
                "live index ({} rows) differs from the files ({} rows)",
                a.len(),
                b.len()
            );
        }
        return Ok(format!("index matches the files: {summary}"));
    }
    rebuilt.flush()?;
    drop(rebuilt);
    drop(live);
    let live = config.data_dir.join("index");
    let old = config
        .data_dir
        .join(format!("index.old-{}", jiff::Timestamp::now().as_second()));
    if live.exists() {
        std::fs::rename(&live, &old).io_context(|| format!("moving {} aside", live.display()))?;
    }
    std::fs::rename(&scratch, &live).io_context(|| format!("installing {}", live.display()))?;
    Ok(format!("index rebuilt: {summary}"))
}

impl Service {
    /// Opens everything, recovers the archive, and starts recording every camera.
    pub async fn start(config: &Config) -> Result<Arc<Service>, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .io_context(|| format!("creating {}", config.data_dir.display()))?;
        let id = recorder_id(&config.data_dir, config.recorder_id)?;
        let fs: Arc<dyn ArchiveFs> = Arc::new(RealFs);
        let roots = open_roots(config, fs.as_ref(), id)?;
        let (index, index_rebuilt) = open_index(&config.data_dir)?;
        let usable = usable(&roots);
        let (fs2, index2) = (fs.clone(), index.clone());
        let report = tokio::task::spawn_blocking(move || {
            recovery::recover(fs2.as_ref(), &index2, &usable, false)
        })
        .await
        .map_err(|e| err!(Internal, "recovery task: {e}"))??;
        tracing::info!(?report, "archive recovered");

        let journal = cameras::journal(&config.data_dir);
        let mut cameras = journal.load()?;
        // Cameras of the config file join the journal once, matched by name; the journal wins.
        let mut added = false;
        for c in &config.cameras {
            let spec = c.to_spec()?;
            if !cameras.iter().any(|k| k.spec.name == spec.name) {
                cameras.push(Camera {
                    id: CameraId::generate(),
                    spec,
                });
                added = true;
            }
        }
        if added {
            journal.save(&cameras)?;
        }
        let holds = Holds::open(&config.data_dir)?;
        let clocks: Arc<dyn Clocks> = Arc::new(RealClocks);
        let probe_secs = match config.conformance_probe_secs {
            0 => conformance::DEFAULT_DURATION,
            s => Duration::from_secs(u64::from(s)),
        };
        let checks = Arc::new(Checks::open(&config.data_dir, clocks.clone(), probe_secs)?);
        let audit = Audit::open(&config.data_dir, clocks.clone())?;
        let evidence_key = SigningKey::load_or_create(&config.data_dir)?;
        let token_keys = auth::load_token_keys(&config.data_dir)?;
        if !token_keys.is_empty() {
            tracing::info!(keys = token_keys.len(), "loaded central's token keys");
        }
        let service = Arc::new(Service {
            id,
            data_dir: config.data_dir.clone(),
            catalog: CatalogLog::default(),
            admin_token: config.admin_token.clone(),
            index,
            roots,
            clocks,
            index_rebuilt,
            holds,
            checks,
            check_on_change: config.conformance_probe_secs != 0,
            evidence_key,
            token_keys: RwLock::new(token_keys),
            audit,
            fs,
            policies: config.retention.policies()?,
            retention: Arc::default(),
            findings: Mutex::default(),
            stopping: watch::Sender::new(false),
            journal,
            segment_duration: Duration90k::from_secs(i64::from(config.segment_secs)),
            stall_timeout: Duration::from_secs(u64::from(config.stall_timeout_secs)),
            cameras: tokio::sync::Mutex::new(BTreeMap::new()),
            runtime: tokio::runtime::Handle::current(),
        });
        {
            let mut map = service.cameras.lock().await;
            for camera in cameras {
                let tasks = service.start_streams(&camera)?;
                map.insert(camera.id, CameraEntry { camera, tasks });
            }
        }
        service.spawn_retention();
        Ok(service)
    }

    /// Runs retention every [`RETENTION_INTERVAL`], and whenever it is woken.
    fn spawn_retention(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let kick = self.retention.clone();
        let mut stop = self.stopping.subscribe();
        self.runtime.spawn(async move {
            loop {
                tokio::select! {
                    () = kick.notified() => {}
                    () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                    _ = stop.changed() => break,
                }
                let Some(s) = weak.upgrade() else { break };
                let (classes, open) = s.retention_inputs().await;
                let pass = tokio::task::spawn_blocking(move || {
                    let r = s.retention_pass(&classes, &open);
                    (s, r)
                })
                .await;
                match pass {
                    Ok((s, Ok(outcome))) => s.note_findings(outcome.findings),
                    Ok((_, Err(e))) => tracing::error!(err = %e, "retention pass failed"),
                    Err(e) => tracing::error!(err = %e, "retention task failed"),
                }
            }
        });
    }

    /// The class of each camera, and the bytes of open segments per root.
    async fn retention_inputs(
        &self,
    ) -> (HashMap<CameraId, CameraClass>, HashMap<StorageRootId, u64>) {
        let map = self.cameras.lock().await;
        let mut open = HashMap::new();
        for t in map.values().flat_map(|e| &e.tasks) {
            *open.entry(t.root).or_insert(0) += lock(&t.progress).open_bytes;
        }
        let classes = map
            .iter()
            .map(|(id, e)| (*id, e.camera.spec.class))
            .collect();
        (classes, open)
    }

    /// One retention pass. Footage of a camera no longer configured follows the strictest
    /// privacy cap of any class.
    fn retention_pass(
        &self,
        classes: &HashMap<CameraId, CameraClass>,
        open: &HashMap<StorageRootId, u64>,
    ) -> Result<Outcome, Error> {
        let strictest = Policy {
            max_age: self.policies.values().filter_map(|p| p.max_age).min(),
            min_age: None,
        };
        let policy = |c: CameraId| {
            classes
                .get(&c)
                .and_then(|k| self.policies.get(k))
                .copied()
                .unwrap_or(strictest)
        };
        let budgets: Vec<RootBudget<'_>> = self
            .roots
            .iter()
            .filter_map(|r| {
                let id = *r.state.as_ref().ok()?;
                Some(RootBudget {
                    id,
                    path: &r.path,
                    quota_bytes: r.quota_bytes,
                    reserve_bytes: r.reserve_bytes,
                    open_bytes: open.get(&id).copied().unwrap_or(0),
                    held_alert_share: r.held_alert_share,
                })
            })
            .collect();
        let holds = self.holds.list();
        let outcome = Pass {
            fs: self.fs.as_ref(),
            index: &self.index,
            holds: &holds,
            policy: &policy,
            now: self.clocks.realtime(),
        }
        .run(&budgets)?;
        if outcome.expired + outcome.evicted > 0 {
            tracing::info!(
                expired = outcome.expired,
                evicted = outcome.evicted,
                bytes = outcome.bytes_removed,
                "retention removed footage"
            );
        }
        Ok(outcome)
    }

    /// Keeps what a pass found: a held-share finding stands for the latest pass only, the
    /// others for [`RETENTION_ALERT_LINGER`] after they last happened.
    fn note_findings(&self, found: Vec<Finding>) {
        let now = Instant::now();
        let mut findings = lock(&self.findings);
        findings.retain(|(t, f)| {
            !matches!(f, Finding::HeldShare { .. })
                && now.duration_since(*t) < RETENTION_ALERT_LINGER
        });
        for f in found {
            findings.retain(|(_, g)| g.subject() != f.subject());
            findings.push((now, f));
        }
    }

    /// What retention found that still stands.
    pub fn retention_findings(&self) -> Vec<Finding> {
        lock(&self.findings)
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Replaces central's token keys (at enrolment, and when central rotates them). Tokens
    /// are verified against the new keys from the next request on.
    pub fn set_token_keys(&self, keys: Vec<TokenKey>) {
        *self
            .token_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }

    /// Who a request's credentials make of it (see [`auth::authenticate`]), at the recorder's
    /// clock's present time.
    pub fn principal(&self, token: Option<&str>, channel: bool) -> Result<Principal, Error> {
        let keys = self
            .token_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        auth::authenticate(
            token,
            channel,
            &self.admin_token,
            &keys,
            self.id,
            self.clocks.realtime().timestamp(),
        )
    }

    /// Records an access or a change by `who` in the audit log, durably, before it takes
    /// effect: an access that cannot be audited is refused.
    pub async fn audit(
        self: &Arc<Self>,
        who: &Principal,
        action: Action,
        camera: Option<CameraId>,
        details: serde_json::Value,
    ) -> Result<(), Error> {
        let s = self.clone();
        let mut details = match details {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        who.audit_details(&mut details);
        let actor = who.actor();
        tokio::task::spawn_blocking(move || s.audit.append(&actor, action, camera, details))
            .await
            .map_err(|e| err!(Internal, "audit task: {e}"))??;
        Ok(())
    }

    /// The durable part of a stream's open segment, if it is recording.
    pub async fn open_view(
        &self,
        camera: CameraId,
        stream: &str,
    ) -> Option<Arc<(crate::archive::index::SegmentRow, Vec<u8>)>> {
        let map = self.cameras.lock().await;
        let task = map.get(&camera)?.tasks.iter().find(|t| t.name == stream)?;
        lock(&task.progress).open_view.clone()
    }

    /// Bytes free on a root's file system.
    pub fn free_bytes(&self, root: &Root) -> Option<u64> {
        self.fs.free_bytes(&root.path)
    }

    /// Whether the recorder has the camera, or footage of it.
    pub async fn knows_camera(&self, id: CameraId) -> Result<bool, Error> {
        Ok(self.cameras.lock().await.contains_key(&id)
            || self.index.streams()?.iter().any(|(c, _)| *c == id))
    }

    /// Places an evidence hold, durably.
    pub async fn place_hold(self: &Arc<Self>, hold: Hold) -> Result<(), Error> {
        if !self.knows_camera(hold.camera).await? {
            bail!(NotFound, "no camera {}", hold.camera);
        }
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.holds.place(hold))
            .await
            .map_err(|e| err!(Internal, "hold task: {e}"))?
    }

    /// Releases an evidence hold, durably; retention may then remove what it kept.
    pub async fn release_hold(self: &Arc<Self>, id: HoldId) -> Result<Hold, Error> {
        let s = self.clone();
        let hold = tokio::task::spawn_blocking(move || s.holds.release(id))
            .await
            .map_err(|e| err!(Internal, "hold task: {e}"))??;
        self.retention.notify_one();
        Ok(hold)
    }

    fn start_streams(&self, camera: &Camera) -> Result<Vec<StreamTask>, Error> {
        let Some((root, root_path)) = usable(&self.roots).into_iter().next() else {
            tracing::error!(camera = %camera.id, "no usable storage root: not recording");
            return Ok(Vec::new());
        };
        let mut tasks = Vec::new();
        for s in &camera.spec.streams {
            let url = s.parsed_url()?;
            let last_end = self
                .index
                .list(camera.id, &s.name, Time90k::MIN..Time90k::MAX)
                .map(|rows| rows.last().map_or(Time90k::MIN, SegmentRow::end))
                .unwrap_or(Time90k::MIN);
            let target = Target {
                fs: self.fs.clone(),
                index: self.index.clone(),
                root,
                root_path: root_path.clone(),
                recorder: self.id,
                camera: camera.id,
                stream: s.name.clone(),
                segment_duration: self.segment_duration,
                retention: self.retention.clone(),
            };
            let progress = Arc::new(Mutex::new(Progress::default()));
            let conn = Arc::new(Mutex::new(Connection::default()));
            let rec = Recording::new(target, self.clocks.clone(), progress.clone(), last_end);
            let source = Source {
                url: url.clone(),
                username: s.username.clone(),
                password: s.password.clone(),
                udp: s.transport == crate::cameras::Transport::Udp,
            };
            let (stop, stop_rx) = watch::channel(false);
            let span = tracing::info_span!("stream", camera = %camera.id, stream = %s.name, url = %crate::ingest::redacted(&url));
            let handle = supervisor::spawn(
                &self.runtime,
                rec,
                source,
                self.stall_timeout,
                conn.clone(),
                stop_rx,
                span,
            );
            tasks.push(StreamTask {
                name: s.name.clone(),
                root,
                progress,
                conn,
                stop,
                handle,
            });
        }
        Ok(tasks)
    }

    async fn stop_tasks(tasks: Vec<StreamTask>) {
        for t in &tasks {
            let _ = t.stop.send(true);
        }
        for t in tasks {
            let _ = t.handle.await;
        }
    }

    /// Stops every stream; each closes its segment with `recorder_stopped`.
    pub async fn shutdown(&self) {
        self.stopping.send_replace(true);
        let entries: Vec<CameraEntry> = std::mem::take(&mut *self.cameras.lock().await)
            .into_values()
            .collect();
        for e in entries {
            Service::stop_tasks(e.tasks).await;
        }
        if let Err(e) = self.index.flush() {
            tracing::error!(err = %e, "index flush at shutdown failed");
        }
    }

    /// Starts a conformance check of every camera with a stream that has no report yet: the
    /// cameras the config file onboarded at this start, or whose check a stop cut short. Call
    /// it from the runtime the checks should run on (the API's, which does not nap).
    pub async fn check_unchecked(&self) {
        if !self.check_on_change {
            return;
        }
        for (camera, _) in self.cameras().await {
            if self.checks.unchecked(&camera) {
                self.checks.start(&camera);
            }
        }
    }

    pub async fn add_camera(&self, spec: CameraSpec) -> Result<CameraId, Error> {
        spec.validate()?;
        let mut map = self.cameras.lock().await;
        let camera = Camera {
            id: CameraId::generate(),
            spec,
        };
        let mut all: Vec<Camera> = map.values().map(|e| e.camera.clone()).collect();
        all.push(camera.clone());
        self.journal.save(&all)?;
        let tasks = self.start_streams(&camera)?;
        let id = camera.id;
        if self.check_on_change {
            self.checks.start(&camera);
        }
        map.insert(id, CameraEntry { camera, tasks });
        tracing::info!(camera = %id, "camera added");
        Ok(id)
    }

    /// Replaces a camera's specification; secrets left out stay as they were.
    pub async fn update_camera(&self, id: CameraId, mut spec: CameraSpec) -> Result<(), Error> {
        let mut map = self.cameras.lock().await;
        let entry = map
            .get_mut(&id)
            .ok_or_else(|| err!(NotFound, "no camera {id}"))?;
        for s in &mut spec.streams {
            // A password left out stays, but only for the same camera endpoint and user: it
            // must never follow a changed URL to another host.
            let same_endpoint = |o: &&crate::cameras::StreamSpec| {
                let (a, b) = (o.parsed_url().ok(), s.parsed_url().ok());
                o.name == s.name
                    && o.username == s.username
                    && a.as_ref()
                        .map(|u| (u.host_str().map(str::to_owned), u.port_or_known_default()))
                        == b.as_ref()
                            .map(|u| (u.host_str().map(str::to_owned), u.port_or_known_default()))
            };
            let old = entry.camera.spec.streams.iter().find(same_endpoint);
            match (&s.password, old) {
                (None, Some(o)) => s.password.clone_from(&o.password),
                (Some(p), _) if p.is_empty() => s.password = None,
                _ => {}
            }
        }
        spec.validate()?;
        let updated = Camera { id, spec };
        let all: Vec<Camera> = map
            .values()
            .map(|e| {
                if e.camera.id == id {
                    updated.clone()
                } else {
                    e.camera.clone()
                }
            })
            .collect();
        self.journal.save(&all)?;
        let entry = map.get_mut(&id).expect("present");
        let old_tasks = std::mem::take(&mut entry.tasks);
        Service::stop_tasks(old_tasks).await;
        entry.tasks = self.start_streams(&updated)?;
        if self.check_on_change {
            self.checks.start(&updated);
        }
        entry.camera = updated;
        tracing::info!(camera = %id, "camera updated");
        Ok(())
    }

    /// Stops recording a camera and forgets it; its footage stays until retention removes it.
    pub async fn remove_camera(&self, id: CameraId) -> Result<(), Error> {
        let mut map = self.cameras.lock().await;
        if !map.contains_key(&id) {
            bail!(NotFound, "no camera {id}");
        }
        let all: Vec<Camera> = map
            .values()
            .filter(|e| e.camera.id != id)
            .map(|e| e.camera.clone())
            .collect();
        self.journal.save(&all)?;
        let entry = map.remove(&id).expect("present");
        for t in &entry.tasks {
            let _ = t.stop.send(true);
        }
        drop(map);
        for t in entry.tasks {
            let _ = t.handle.await;
        }
        self.checks.forget(id).await?;
        tracing::info!(camera = %id, "camera removed");
        Ok(())
    }

    /// Every camera with a snapshot of its streams' state.
    pub async fn cameras(&self) -> Vec<(Camera, Vec<(String, Progress, Connection)>)> {
        let map = self.cameras.lock().await;
        map.values()
            .map(|e| {
                let streams = e
                    .tasks
                    .iter()
                    .map(|t| {
                        (
                            t.name.clone(),
                            lock(&t.progress).clone(),
                            lock(&t.conn).clone(),
                        )
                    })
                    .collect();
                (e.camera.clone(), streams)
            })
            .collect()
    }

    pub async fn camera(
        &self,
        id: CameraId,
    ) -> Option<(Camera, Vec<(String, Progress, Connection)>)> {
        self.cameras().await.into_iter().find(|(c, _)| c.id == id)
    }

    /// The audit log, for shipping to central.
    pub fn audit_log(&self) -> &Audit {
        &self.audit
    }

    /// The catalog as it is now: every camera with whether each stream is connected.
    pub async fn catalog_now(&self) -> Vec<vms_core::wire::CatalogCamera> {
        let map = self.cameras.lock().await;
        map.values()
            .map(|e| {
                let conns: Vec<(String, Connection)> = e
                    .tasks
                    .iter()
                    .map(|t| (t.name.clone(), lock(&t.conn).clone()))
                    .collect();
                let verdicts = self.checks.verdicts(e.camera.id);
                crate::catalog::entry(&e.camera, &conns, &verdicts)
            })
            .collect()
    }

    /// The health a heartbeat carries.
    pub async fn status_summary(&self) -> vms_core::wire::RecorderStatus {
        let map = self.cameras.lock().await;
        let mut s = vms_core::wire::RecorderStatus {
            cameras: map.len() as u32,
            ..Default::default()
        };
        for t in map.values().flat_map(|e| &e.tasks) {
            s.streams += 1;
            s.streams_up += u32::from(lock(&t.conn).connected);
        }
        drop(map);
        s.alerts = self.retention_findings().len() as u32;
        s
    }
}

/// Whether a segment's end reason leaves a gap after it.
pub fn leaves_gap(reason: EndReason) -> bool {
    !matches!(reason, EndReason::Rotated | EndReason::CodecChange)
}

/// Why there is nothing between a segment and the next one found: the first one's end
/// reason, unless that reason continues the recording, in which case what came between was
/// removed by retention.
pub fn hole_reason(reason: EndReason) -> EndReason {
    if leaves_gap(reason) {
        reason
    } else {
        EndReason::Evicted
    }
}
