//! Retention: which footage leaves the archive, and why.
//!
//! A pass does three things, in this order:
//! 1. **Privacy cap.** Footage older than its camera class's maximum age goes, unless an
//!    evidence hold covers it: holds win over the cap.
//! 2. **Room.** Per storage root, the oldest footage not under a hold goes until the root is
//!    back under its quota (indexed plus open segments) and the file system keeps its reserve
//!    of free space. Recording never stops for lack of room; it evicts. Evicting footage
//!    younger than its class's minimum age, or having to evict for free space at all, is
//!    reported so that it raises an alert.
//! 3. **Held share.** Held footage above a configured share of a root's quota is reported.
//!
//! Eviction removes the row before the file: a crash between the two leaves a file without a
//! row, which recovery indexes again and the next pass evicts again. A reader never sees a row
//! whose file is gone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;

use vms_core::id::{CameraId, StorageRootId};
use vms_core::time::{Duration90k, Time90k};
use vms_core::{Error, IoResultExt};

use super::fs::ArchiveFs;
use super::index::{Index, SegmentRow};
use super::layout;
use crate::holds::Hold;

/// How long footage of one camera class is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The privacy cap: footage older than this is removed unless held.
    pub max_age: Option<Duration90k>,
    /// Footage younger than this that has to go for room raises an alert.
    pub min_age: Option<Duration90k>,
}

/// What a pass may use of one storage root.
pub struct RootBudget<'a> {
    pub id: StorageRootId,
    pub path: &'a Path,
    pub quota_bytes: Option<u64>,
    /// Free space to keep on the file system, whatever the quota.
    pub reserve_bytes: u64,
    /// Bytes written to segments still open (not indexed yet).
    pub open_bytes: u64,
    /// Share of the quota (0..=1) that held footage may take before it is reported.
    pub held_alert_share: f64,
}

/// Something a pass found that an operator must hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Footage was evicted because the file system ran short of free space, or room could not
    /// be made at all.
    DiskFull {
        root: StorageRootId,
        message: String,
    },
    /// Footage younger than its class's minimum age had to go for room.
    MinAgeBreach {
        root: StorageRootId,
        camera: CameraId,
        stream: String,
        /// Age of the youngest footage evicted.
        age: Duration90k,
        min_age: Duration90k,
    },
    /// Held footage takes more than its share of a root's quota.
    HeldShare {
        root: StorageRootId,
        held_bytes: u64,
        quota_bytes: u64,
    },
}

impl Finding {
    /// What a finding is about: a newer finding about the same replaces an older one.
    pub fn subject(&self) -> (&'static str, StorageRootId, Option<(CameraId, &str)>) {
        match self {
            Finding::DiskFull { root, .. } => ("disk_full", *root, None),
            Finding::MinAgeBreach {
                root,
                camera,
                stream,
                ..
            } => ("min_age_breach", *root, Some((*camera, stream.as_str()))),
            Finding::HeldShare { root, .. } => ("held_share", *root, None),
        }
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Segments removed by the privacy cap.
    pub expired: u64,
    /// Segments removed for room.
    pub evicted: u64,
    pub bytes_removed: u64,
    pub findings: Vec<Finding>,
}

/// One retention pass over an archive.
pub struct Pass<'a> {
    pub fs: &'a dyn ArchiveFs,
    pub index: &'a Index,
    pub holds: &'a [Hold],
    /// The policy of a camera's class.
    pub policy: &'a dyn Fn(CameraId) -> Policy,
    pub now: Time90k,
}

impl Pass<'_> {
    fn held(&self, row: &SegmentRow) -> bool {
        self.holds
            .iter()
            .any(|h| h.covers(row.camera, &row.stream, row.start, row.end()))
    }

    /// Removes a segment: its row first, then its file.
    fn remove(&self, row: &SegmentRow, root: &Path, out: &mut Outcome) -> Result<(), Error> {
        let path = layout::segment_path(root, row.camera, &row.stream, row.start)?;
        self.index.remove(row.camera, &row.stream, row.start)?;
        match self.fs.remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).io_context(|| format!("removing {}", path.display()))?
            }
            _ => {}
        }
        out.bytes_removed += row.size_bytes;
        Ok(())
    }

    pub fn run(&self, roots: &[RootBudget<'_>]) -> Result<Outcome, Error> {
        let mut out = Outcome::default();
        let paths: HashMap<StorageRootId, &Path> = roots.iter().map(|r| (r.id, r.path)).collect();
        let streams = self.index.streams()?;
        for (camera, stream) in &streams {
            let Some(max_age) = (self.policy)(*camera).max_age else {
                continue;
            };
            let cutoff = self.now - max_age;
            for row in self.index.rows(*camera, stream) {
                let row = row?;
                if row.end() > cutoff {
                    break;
                }
                // Rows on a root that is not mounted wait for it to come back.
                if let Some(root) = paths.get(&row.root).filter(|_| !self.held(&row)) {
                    self.remove(&row, root, &mut out)?;
                    out.expired += 1;
                }
            }
        }
        for root in roots {
            self.make_room(root, &streams, &mut out)?;
            self.check_held_share(root, &streams, &mut out)?;
        }
        Ok(out)
    }

    fn make_room(
        &self,
        root: &RootBudget<'_>,
        streams: &[(CameraId, String)],
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let used = self.index.used_bytes(root.id) + root.open_bytes;
        let over_quota = root.quota_bytes.map_or(0, |q| used.saturating_sub(q));
        let free = self.fs.free_bytes(root.path);
        let short_of_free = free.map_or(0, |f| root.reserve_bytes.saturating_sub(f));
        let need = over_quota.max(short_of_free);
        if need == 0 {
            return Ok(());
        }
        // Oldest first across the root's streams: a merge of each stream's oldest
        // evictable segment on this root.
        let mut cursors: Vec<_> = streams
            .iter()
            .map(|(c, s)| {
                self.index.rows(*c, s).filter(|r| {
                    r.as_ref()
                        .map_or(true, |r| r.root == root.id && !self.held(r))
                })
            })
            .collect();
        let mut heads: Vec<Option<SegmentRow>> = Vec::with_capacity(cursors.len());
        let mut heap = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            let head = c.next().transpose()?;
            if let Some(r) = &head {
                heap.push(Reverse((r.start, i)));
            }
            heads.push(head);
        }
        let mut freed = 0;
        let mut breaches: HashMap<(CameraId, String), (Duration90k, Duration90k)> = HashMap::new();
        while freed < need {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            let row = heads[i].take().expect("a queued cursor has a head");
            self.remove(&row, root.path, out)?;
            out.evicted += 1;
            freed += row.size_bytes;
            let age = self.now - row.end();
            if let Some(min_age) = (self.policy)(row.camera).min_age.filter(|&m| age < m) {
                let b = breaches
                    .entry((row.camera, row.stream.clone()))
                    .or_insert((age, min_age));
                b.0 = b.0.min(age);
            }
            heads[i] = cursors[i].next().transpose()?;
            if let Some(r) = &heads[i] {
                heap.push(Reverse((r.start, i)));
            }
        }
        tracing::info!(root = %root.path.display(), need, freed, over_quota, short_of_free,
            "retention evicted the oldest footage for room");
        for ((camera, stream), (age, min_age)) in breaches {
            out.findings.push(Finding::MinAgeBreach {
                root: root.id,
                camera,
                stream,
                age,
                min_age,
            });
        }
        if freed < need {
            out.findings.push(Finding::DiskFull {
                root: root.id,
                message: format!(
                    "cannot make room: {} more bytes are needed and what is left is held or open",
                    need - freed
                ),
            });
        } else if short_of_free > 0 {
            out.findings.push(Finding::DiskFull {
                root: root.id,
                message: format!(
                    "free space {} bytes was under the {} byte reserve; the oldest footage was evicted",
                    free.unwrap_or(0),
                    root.reserve_bytes
                ),
            });
        }
        Ok(())
    }

    fn check_held_share(
        &self,
        root: &RootBudget<'_>,
        streams: &[(CameraId, String)],
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let Some(quota) = root.quota_bytes else {
            return Ok(());
        };
        let mut seen = HashSet::new();
        let mut held_bytes = 0;
        for h in self.holds {
            let range = Time90k(h.start_90k)..Time90k(h.end_90k);
            for (camera, stream) in streams
                .iter()
                .filter(|(c, s)| h.covers(*c, s, range.start, range.end))
            {
                for row in self.index.list(*camera, stream, range.clone())? {
                    if row.root == root.id
                        && seen.insert((row.camera, row.stream.clone(), row.start))
                    {
                        held_bytes += row.size_bytes;
                    }
                }
            }
        }
        if held_bytes as f64 > root.held_alert_share * quota as f64 {
            out.findings.push(Finding::HeldShare {
                root: root.id,
                held_bytes,
                quota_bytes: quota,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use vms_core::gap::EndReason;
    use vms_core::id::HoldId;

    use super::*;
    use crate::archive::fs::SimFs;
    use crate::recording::tests::{FakeClocks, feed, params, target};
    use crate::recording::{Progress, Recording, Target};

    const T0: &str = "2026-11-26T10:00:00Z";

    struct Archive {
        fs: SimFs,
        index: Index,
        clocks: Arc<FakeClocks>,
        target: Target,
        _dir: tempfile::TempDir,
    }

    impl Archive {
        fn new() -> Archive {
            let fs = SimFs::new(9);
            let dir = tempfile::tempdir().unwrap();
            let index = Index::open(dir.path()).unwrap();
            let target = target(&fs, index.clone());
            Archive {
                fs,
                index,
                clocks: FakeClocks::new(Time90k::parse_rfc3339(T0).unwrap()),
                target,
                _dir: dir,
            }
        }

        /// Records `secs` seconds of a camera (4 s segments, a keyframe every 2 s).
        async fn record(&self, camera: CameraId, secs: i64) {
            let t = Target {
                camera,
                ..self.target.clone()
            };
            let progress = Arc::new(Mutex::new(Progress::default()));
            let mut r = Recording::new(t, self.clocks.clone(), progress, Time90k::MIN);
            feed(&mut r, &self.clocks, 0, secs * 15, 30, Some(&params(640))).await;
            r.end(EndReason::RecorderStopped).await.unwrap();
        }

        fn rows(&self) -> Vec<SegmentRow> {
            self.index.all().map(Result::unwrap).collect()
        }

        fn file_exists(&self, row: &SegmentRow) -> bool {
            let p = layout::segment_path(Path::new("/disk"), row.camera, &row.stream, row.start)
                .unwrap();
            self.fs.exists(&p)
        }

        fn budget(&self, quota_bytes: Option<u64>, reserve_bytes: u64) -> RootBudget<'_> {
            RootBudget {
                id: self.target.root,
                path: Path::new("/disk"),
                quota_bytes,
                reserve_bytes,
                open_bytes: 0,
                held_alert_share: 0.5,
            }
        }

        fn pass(&self, holds: &[Hold], policy: Policy, roots: &[RootBudget<'_>]) -> Outcome {
            Pass {
                fs: &self.fs,
                index: &self.index,
                holds,
                policy: &move |_| policy,
                now: self.clocks_now(),
            }
            .run(roots)
            .unwrap()
        }

        fn clocks_now(&self) -> Time90k {
            use crate::clock::Clocks;
            self.clocks.realtime()
        }
    }

    fn hold_on(row: &SegmentRow) -> Hold {
        Hold {
            id: HoldId::generate(),
            camera: row.camera,
            stream: Some(row.stream.clone()),
            start_90k: row.start.0 + 1,
            end_90k: row.start.0 + 2,
            case: "case-1".into(),
            reason: "evidence".into(),
            created_90k: 0,
        }
    }

    #[tokio::test]
    async fn quota_evicts_oldest_first_and_spares_holds() {
        let a = Archive::new();
        let (cam_a, cam_b) = (CameraId::generate(), CameraId::generate());
        a.record(cam_a, 16).await;
        a.record(cam_b, 16).await;
        let mut before = a.rows();
        before.sort_by_key(|r| r.start);
        assert_eq!(before.len(), 8);
        let used: u64 = before.iter().map(|r| r.size_bytes).sum();
        assert_eq!(a.index.used_bytes(a.target.root), used);
        let holds = [hold_on(&before[1])];
        // Room for all but segments 0, 2 and 3 (1 is held).
        let quota = used - [0, 2, 3].iter().map(|&i| before[i].size_bytes).sum::<u64>();
        let policy = Policy {
            max_age: None,
            min_age: Some(Duration90k::from_secs(3600)),
        };
        let out = a.pass(&holds, policy, &[a.budget(Some(quota), 0)]);
        assert_eq!(out.evicted, 3);
        let after = a.rows();
        // The oldest unheld segments went: 0, 2 and 3 (1 is held).
        for (i, row) in before.iter().enumerate() {
            let kept = ![0, 2, 3].contains(&i);
            assert_eq!(after.contains(row), kept, "segment {i}");
            assert_eq!(a.file_exists(row), kept, "file of segment {i}");
        }
        assert!(a.index.used_bytes(a.target.root) <= quota);
        // The footage was an hour younger than its minimum age.
        assert!(out.findings.iter().any(|f| matches!(f,
            Finding::MinAgeBreach { camera, .. } if *camera == cam_a)));
        assert!(
            !out.findings
                .iter()
                .any(|f| matches!(f, Finding::DiskFull { .. }))
        );
        // Under quota now: another pass removes nothing.
        assert_eq!(
            a.pass(&holds, policy, &[a.budget(Some(quota), 0)]).evicted,
            0
        );
    }

    #[tokio::test]
    async fn privacy_cap_yields_to_holds() {
        let a = Archive::new();
        let cam = CameraId::generate();
        a.record(cam, 16).await;
        let rows = a.rows();
        let holds = [hold_on(&rows[0])];
        a.clocks.advance(std::time::Duration::from_secs(7));
        // Now 7 s after the last frame: segments that ended 10 s or more ago go.
        let policy = Policy {
            max_age: Some(Duration90k::from_secs(10)),
            min_age: None,
        };
        let out = a.pass(&holds, policy, &[a.budget(None, 0)]);
        let now = a.clocks_now();
        let after = a.rows();
        for row in &rows {
            let expired = now - row.end() >= Duration90k::from_secs(10);
            let kept = !expired || row == &rows[0];
            assert_eq!(after.contains(row), kept, "{row:?}");
        }
        assert_eq!(
            out.expired, 2,
            "segment 0 is held, 1 and 2 expired, 3 is young"
        );
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[tokio::test]
    async fn a_full_disk_evicts_and_recording_goes_on() {
        let a = Archive::new();
        let cam = CameraId::generate();
        // A 30 KiB disk, keeping 8 KiB free; each 4 s segment is about 3.5 KiB.
        a.fs.set_capacity(30 * 1024);
        let t = Target {
            camera: cam,
            ..a.target.clone()
        };
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut r = Recording::new(t, a.clocks.clone(), progress.clone(), Time90k::MIN);
        let mut disk_full = 0;
        for i in 0..60 {
            let p = (i == 0).then(|| params(640));
            // 2 s at a time, as the retention loop would run between closes.
            feed(&mut r, &a.clocks, i * 180_000, 30, 30, p.as_ref()).await;
            let out = a.pass(&[], Policy::default(), &[a.budget(None, 8 * 1024)]);
            disk_full += out
                .findings
                .iter()
                .filter(|f| matches!(f, Finding::DiskFull { .. }))
                .count();
        }
        r.end(EndReason::RecorderStopped).await.unwrap();
        let frames = progress.lock().unwrap().frames_total;
        assert_eq!(
            frames,
            60 * 30,
            "every frame was written: recording never stopped"
        );
        assert!(disk_full > 0, "evicting for free space raises an alert");
        let rows = a.rows();
        let newest = rows.iter().map(SegmentRow::end).max().unwrap();
        assert_eq!(newest, a.clocks_now(), "the newest footage is kept");
        assert!(
            rows.len() < 30,
            "old footage went: {} segments left",
            rows.len()
        );
    }
}
