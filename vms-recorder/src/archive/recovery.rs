//! Making the index agree with the files, at start-up and for `reindex`: index the durable
//! segments it missed (cutting off a fragment a crash left half-written), remove orphan files
//! that hold no durable fragment, and drop rows whose file is gone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use vms_core::id::{CameraId, StorageRootId};
use vms_core::time::Time90k;
use vms_core::{Error, ErrorKind, IoResultExt, err};

use super::fs::ArchiveFs;
use super::index::Index;
use super::layout;
use super::segment;

/// What recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Segments (re)indexed from their files.
    pub indexed: usize,
    /// Files whose last, partly written fragment was cut off.
    pub truncated: usize,
    /// Files without a single durable fragment, removed.
    pub removed_orphans: usize,
    /// Index rows whose file no longer exists, removed.
    pub removed_rows: usize,
    /// Files that could not be read; their rows were left alone.
    pub unreadable_files: usize,
    /// Roots that could not be walked; their rows were left alone.
    pub unreadable_roots: Vec<PathBuf>,
    /// Paths under a root that are not segment files; left alone.
    pub strays: Vec<PathBuf>,
}

/// Reconciles `index` with the segment files of `roots`. With `full`, every file is scanned
/// and its row rewritten (that is `reindex`); otherwise only files without a row are.
pub fn recover(
    fs: &dyn ArchiveFs,
    index: &Index,
    roots: &[(StorageRootId, PathBuf)],
    full: bool,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut present: HashSet<(CameraId, String, Time90k)> = HashSet::new();
    let mut known_roots: HashSet<StorageRootId> = HashSet::new();
    for (root, root_path) in roots {
        // A root that cannot be read is left as it is, rows and all: the others recover.
        let (found, strays) = match layout::walk(fs, root_path) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(root = %root_path.display(), err = %e, "storage root unreadable; not recovered");
                report.unreadable_roots.push(root_path.clone());
                continue;
            }
        };
        known_roots.insert(*root);
        report.strays.extend(strays);
        for f in found {
            if !full && index.get(f.camera, &f.stream, f.start)?.is_some() {
                present.insert((f.camera, f.stream, f.start));
                continue;
            }
            if index_file(fs, index, *root, &f.path, &mut report)? {
                present.insert((f.camera, f.stream, f.start));
            }
        }
    }
    let mut stale = Vec::new();
    for row in index.all() {
        let row = row?;
        // Rows of a root that is not mounted now stay: their files may come back.
        if known_roots.contains(&row.root)
            && !present.contains(&(row.camera, row.stream.clone(), row.start))
        {
            stale.push(row);
        }
    }
    for row in stale {
        tracing::warn!(camera = %row.camera, stream = %row.stream, start = %row.start, "segment file is gone; dropping its row");
        index.remove(row.camera, &row.stream, row.start)?;
        report.removed_rows += 1;
    }
    index.flush()?;
    Ok(report)
}

/// Scans one file and indexes it; returns whether it holds footage.
fn index_file(
    fs: &dyn ArchiveFs,
    index: &Index,
    root: StorageRootId,
    path: &Path,
    report: &mut Report,
) -> Result<bool, Error> {
    let scanned = fs
        .open(path)
        .map_err(|e| err!(Unavailable, source: e, "opening"))
        .and_then(|(mut r, len)| Ok((segment::scan(&mut r)?, len)));
    let (scanned, file_len) = match scanned {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            // One unreadable file costs only itself; its row, if any, stays.
            tracing::error!(path = %path.display(), err = %e, "segment file unreadable; left as it is");
            report.unreadable_files += 1;
            return Ok(true);
        }
        Err(e) => {
            // Damage in the middle of a file is not something to delete: keep it for a person.
            tracing::error!(path = %path.display(), err = %e, "segment file is damaged; left out of the index");
            return Ok(false);
        }
    };
    let Some(summary) = scanned.summary else {
        tracing::info!(path = %path.display(), "removing a segment file with no durable fragment");
        fs.remove_file(path)
            .io_context(|| format!("removing {}", path.display()))?;
        if let Some(dir) = path.parent() {
            fs.sync_dir(dir)
                .io_context(|| format!("syncing {}", dir.display()))?;
        }
        report.removed_orphans += 1;
        return Ok(false);
    };
    if scanned.valid_len < file_len {
        tracing::info!(path = %path.display(), kept = scanned.valid_len, cut = file_len - scanned.valid_len,
            "cutting off a partly written fragment");
        fs.truncate(path, scanned.valid_len)
            .io_context(|| format!("truncating {}", path.display()))?;
        report.truncated += 1;
    }
    index.put(root, &summary)?;
    report.indexed += 1;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::fs::SimFs;
    use crate::recording::tests::{FakeClocks, params, target};
    use crate::recording::{Progress, Recording};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use vms_core::gap::EndReason;

    const FPS_PERIOD_90K: i64 = 6000;

    /// Records until the power goes; returns the frames accepted before it did.
    async fn record_until_power_cut(r: &mut Recording, clocks: &FakeClocks, frames: i64) -> u64 {
        let p = params(640);
        let mut accepted = 0;
        for i in 0..frames {
            let ok = r
                .video(
                    i * FPS_PERIOD_90K,
                    i % 30 == 0,
                    vec![(i % 251) as u8; 400 + (i % 13) as usize],
                    (i == 0).then(|| p.clone()),
                )
                .await;
            clocks.advance(Duration::from_nanos(66_666_667));
            if ok.is_err() {
                return accepted;
            }
            accepted += 1;
        }
        let _ = r.end(EndReason::RecorderStopped).await;
        accepted
    }

    #[tokio::test]
    async fn an_unreadable_root_costs_only_itself() {
        let fs = SimFs::new(3);
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let t = target(&fs, index.clone());
        let clocks = FakeClocks::new(Time90k(1_800_000_000 * 90_000));
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut r = Recording::new(t.clone(), clocks.clone(), progress, Time90k::MIN);
        record_until_power_cut(&mut r, &clocks, 90).await;
        let rows = index.dump().unwrap();
        assert!(!rows.is_empty());
        // The first root's files vanish from the index's view only because its disk cannot be
        // read: its rows stay, and the other root still recovers.
        let gone = StorageRootId::generate();
        let roots = [
            (t.root, t.root_path.clone()),
            (gone, PathBuf::from("/unplugged")),
        ];
        let report = recover(&fs, &index, &roots, false).unwrap();
        assert_eq!(report.unreadable_roots, [PathBuf::from("/unplugged")]);
        assert_eq!(index.dump().unwrap(), rows);
        let roots = [(t.root, PathBuf::from("/unplugged"))];
        let report = recover(&fs, &index, &roots, false).unwrap();
        assert_eq!(report.removed_rows, 0, "rows of an unreadable root stay");
        assert_eq!(index.dump().unwrap(), rows);
    }

    #[tokio::test]
    async fn power_loss_at_50_points_loses_at_most_the_fragment_in_flight() {
        for seed in 1..=50u64 {
            let fs = SimFs::new(seed * 7919);
            let dir = tempfile::tempdir().unwrap();
            let index = Index::open(&dir.path().join("index")).unwrap();
            let t = target(&fs, index.clone());
            let roots = [(t.root, t.root_path.clone())];
            let clocks = FakeClocks::new(Time90k(1_800_000_000 * 90_000));
            let progress = Arc::new(Mutex::new(Progress::default()));
            let mut r = Recording::new(t.clone(), clocks.clone(), progress.clone(), Time90k::MIN);
            // 20 s of video in 4 s segments is about 30 writes; cut the power in any of them.
            fs.cut_power_after(seed % 37);
            let accepted = record_until_power_cut(&mut r, &clocks, 300).await;
            drop(r);
            fs.crash();

            // Half the time the index is lost too (it is only a cache of the files).
            let index = if seed % 2 == 0 {
                index
            } else {
                Index::open(&dir.path().join("fresh")).unwrap()
            };
            recover(&fs, &index, &roots, false).unwrap();

            // Every file has a row, and every row equals what a full rescan derives.
            let rebuilt = Index::open(&dir.path().join("rebuilt")).unwrap();
            recover(&fs, &rebuilt, &roots, true).unwrap();
            assert_eq!(
                index.dump().unwrap(),
                rebuilt.dump().unwrap(),
                "seed {seed}"
            );
            let (files, strays) = layout::walk(&fs, &t.root_path).unwrap();
            assert!(strays.is_empty(), "seed {seed}: {strays:?}");
            assert_eq!(
                files.len(),
                index.all().count(),
                "seed {seed}: no orphan files"
            );

            // Loss: at most the fragment being written (1 s) and the frame that triggered it.
            let skipped = progress.lock().unwrap().frames_skipped;
            let durable: u64 = index.all().map(|r| u64::from(r.unwrap().frames)).sum();
            let lost = accepted - skipped - durable;
            assert!(lost <= 16, "seed {seed}: lost {lost} of {accepted} frames");

            // Recording resumes after the crash, after the footage that survived.
            let last_end = index
                .all()
                .map(|r| r.unwrap().end())
                .max()
                .unwrap_or(Time90k::MIN);
            let mut r = Recording::new(t.clone(), clocks.clone(), progress.clone(), last_end);
            record_until_power_cut(&mut r, &clocks, 45).await;
            recover(&fs, &index, &roots, false).unwrap();
            let rows: Vec<_> = index.all().map(Result::unwrap).collect();
            for pair in rows.windows(2) {
                assert!(
                    pair[1].start >= pair[0].end(),
                    "seed {seed}: overlapping segments"
                );
            }
        }
    }
}
