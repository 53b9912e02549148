//! Where segments live: storage roots, each marked by an identity file so that a swapped,
//! unmounted or wrongly mounted disk is detected and never written over, and the path of every
//! segment, derived only from validated ids, names and times.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vms_core::id::{CameraId, RecorderId, StorageRootId};
use vms_core::time::Time90k;
use vms_core::{Error, IoResultExt, bail, err};

use super::fs::ArchiveFs;

/// The identity file at the top of every storage root.
pub const IDENTITY_FILE: &str = ".vms-storage.json";

/// Extension of segment files.
pub const SEGMENT_EXT: &str = "mp4";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Identity {
    format: String,
    root: StorageRootId,
    recorder: RecorderId,
}

const IDENTITY_FORMAT: &str = "vms-storage/1";

/// A stream name: `[a-z0-9_-]{1,32}`. It becomes a path element, so nothing else passes.
pub fn check_stream_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        bail!(
            InvalidArgument,
            "stream name {name:?} must match [a-z0-9_-]{{1,32}}"
        );
    }
    Ok(())
}

/// Opens a storage root for writing, or says why it must not be written.
///
/// - `known` is the root id the recorder's data directory remembers for this path, if any.
/// - A missing directory is never created: an unmounted disk must not fill the mount point.
/// - A directory without an identity file is claimed only if the recorder has never used this
///   path and the directory is empty.
pub fn open_root(
    fs: &dyn ArchiveFs,
    path: &Path,
    recorder: RecorderId,
    known: Option<StorageRootId>,
) -> Result<StorageRootId, Error> {
    if !fs.exists(path) {
        bail!(
            FailedPrecondition,
            "storage root {} does not exist (not mounted?)",
            path.display()
        );
    }
    let id_path = path.join(IDENTITY_FILE);
    if fs.exists(&id_path) {
        let bytes = fs
            .read(&id_path)
            .io_context(|| format!("reading {}", id_path.display()))?;
        let identity: Identity = serde_json::from_slice(&bytes).map_err(|e| {
            err!(
                FailedPrecondition,
                "storage root {}: bad identity file: {e}",
                path.display()
            )
        })?;
        if identity.recorder != recorder {
            bail!(
                FailedPrecondition,
                "storage root {} belongs to recorder {}, not this one ({recorder})",
                path.display(),
                identity.recorder
            );
        }
        if let Some(k) = known.filter(|&k| k != identity.root) {
            bail!(
                FailedPrecondition,
                "storage root {} holds root {}, expected {k} (disks swapped?)",
                path.display(),
                identity.root
            );
        }
        return Ok(identity.root);
    }
    if let Some(k) = known {
        bail!(
            FailedPrecondition,
            "storage root {} lost its identity file (root {k}); not mounted?",
            path.display()
        );
    }
    let entries = fs
        .list_dir(path)
        .io_context(|| format!("listing {}", path.display()))?;
    if entries.iter().any(|(name, _)| name != "lost+found") {
        bail!(
            FailedPrecondition,
            "storage root {} is not empty and has no identity file; refusing to claim it",
            path.display()
        );
    }
    let identity = Identity {
        format: IDENTITY_FORMAT.into(),
        root: StorageRootId::generate(),
        recorder,
    };
    let json = serde_json::to_vec_pretty(&identity).expect("identity serialises");
    let mut f = fs
        .create_new(&id_path)
        .io_context(|| format!("creating {}", id_path.display()))?;
    f.write_all(&json)
        .and_then(|()| f.sync_data())
        .and_then(|()| fs.sync_dir(path))
        .io_context(|| format!("writing {}", id_path.display()))?;
    Ok(identity.root)
}

/// Directory of a stream's segments for one UTC day: `{root}/{camera}/{stream}/{YYYY}/{MM}/{DD}`.
pub fn day_dir(
    root: &Path,
    camera: CameraId,
    stream: &str,
    day: Time90k,
) -> Result<PathBuf, Error> {
    check_stream_name(stream)?;
    let (y, m, d) = day.utc_date();
    Ok(root
        .join(camera.to_string())
        .join(stream)
        .join(format!("{y:04}"))
        .join(format!("{m:02}"))
        .join(format!("{d:02}")))
}

/// Path of the segment that starts at `start`: `{day_dir}/{start_90k}.mp4`.
pub fn segment_path(
    root: &Path,
    camera: CameraId,
    stream: &str,
    start: Time90k,
) -> Result<PathBuf, Error> {
    Ok(day_dir(root, camera, stream, start)?.join(format!("{}.{SEGMENT_EXT}", start.0)))
}

/// Creates a day directory and makes every new level of it durable.
pub fn ensure_dir(fs: &dyn ArchiveFs, root: &Path, dir: &Path) -> Result<(), Error> {
    if fs.exists(dir) {
        return Ok(());
    }
    fs.create_dir_all(dir)
        .io_context(|| format!("creating {}", dir.display()))?;
    let mut level = dir;
    while level != root {
        let parent = level
            .parent()
            .ok_or_else(|| err!(Internal, "{} is outside its root", dir.display()))?;
        fs.sync_dir(parent)
            .io_context(|| format!("syncing {}", parent.display()))?;
        level = parent;
    }
    Ok(())
}

/// A segment file found under a root, with what its path says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundSegment {
    pub camera: CameraId,
    pub stream: String,
    pub start: Time90k,
    pub path: PathBuf,
}

/// Walks a root and returns every segment file whose path is well-formed (others are left
/// alone and reported in `strays`).
pub fn walk(fs: &dyn ArchiveFs, root: &Path) -> Result<(Vec<FoundSegment>, Vec<PathBuf>), Error> {
    let mut found = Vec::new();
    let mut strays = Vec::new();
    let list = |p: &Path| {
        fs.list_dir(p)
            .io_context(|| format!("listing {}", p.display()))
    };
    for (cam_name, is_dir) in list(root)? {
        let cam_path = root.join(&cam_name);
        let camera = match (is_dir, cam_name.parse::<CameraId>()) {
            (true, Ok(c)) => c,
            _ => {
                if cam_name != IDENTITY_FILE && cam_name != "lost+found" {
                    strays.push(cam_path);
                }
                continue;
            }
        };
        for (stream, is_dir) in list(&cam_path)? {
            let stream_path = cam_path.join(&stream);
            if !is_dir || check_stream_name(&stream).is_err() {
                strays.push(stream_path);
                continue;
            }
            // Year, month and day levels: anything but a directory is a stray, not an error.
            let mut days = Vec::new();
            for (y, y_dir) in list(&stream_path)? {
                let y_path = stream_path.join(&y);
                if !y_dir {
                    strays.push(y_path);
                    continue;
                }
                for (m, m_dir) in list(&y_path)? {
                    let m_path = y_path.join(&m);
                    if !m_dir {
                        strays.push(m_path);
                        continue;
                    }
                    for (d, d_dir) in list(&m_path)? {
                        if d_dir {
                            days.push(m_path.join(&d));
                        } else {
                            strays.push(m_path.join(&d));
                        }
                    }
                }
            }
            for day in days {
                for (file, is_dir) in list(&day)? {
                    let path = day.join(&file);
                    let start = file
                        .strip_suffix(&format!(".{SEGMENT_EXT}"))
                        .and_then(|s| s.parse::<i64>().ok())
                        .map(Time90k);
                    match start {
                        Some(start)
                            if !is_dir
                                && segment_path(root, camera, &stream, start).ok().as_ref()
                                    == Some(&path) =>
                        {
                            found.push(FoundSegment {
                                camera,
                                stream: stream.clone(),
                                start,
                                path,
                            });
                        }
                        _ => strays.push(path),
                    }
                }
            }
        }
    }
    Ok((found, strays))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::fs::SimFs;

    #[test]
    fn identity_protects_roots() {
        let fs = SimFs::new(3);
        let (me, other) = (RecorderId::generate(), RecorderId::generate());
        let root = Path::new("/disk");
        assert!(
            open_root(&fs, root, me, None).is_err(),
            "missing root is not created"
        );
        fs.preexisting_dir(root);
        let id = open_root(&fs, root, me, None).unwrap();
        assert_eq!(open_root(&fs, root, me, Some(id)).unwrap(), id);
        let e = open_root(&fs, root, other, None).unwrap_err();
        assert!(e.to_string().contains("belongs to recorder"), "{e}");
        let e = open_root(&fs, root, me, Some(StorageRootId::generate())).unwrap_err();
        assert!(e.to_string().contains("swapped"), "{e}");
        // An empty mount point where a known root should be: not mounted.
        let empty = Path::new("/mnt");
        fs.preexisting_dir(empty);
        assert!(
            open_root(&fs, empty, me, Some(id))
                .unwrap_err()
                .to_string()
                .contains("not mounted")
        );
        // A foreign, non-empty directory is never claimed.
        fs.create_dir_all(&empty.join("data")).unwrap();
        assert!(
            open_root(&fs, empty, me, None)
                .unwrap_err()
                .to_string()
                .contains("not empty")
        );
        // The identity survives a power loss once open_root returned.
        fs.crash();
        assert_eq!(open_root(&fs, root, me, Some(id)).unwrap(), id);
    }

    #[test]
    fn paths_and_walk() {
        let fs = SimFs::new(4);
        let root = Path::new("/disk");
        fs.preexisting_dir(root);
        let cam = CameraId::generate();
        let start = Time90k::parse_rfc3339("2026-11-26T23:59:59Z").unwrap();
        let p = segment_path(root, cam, "main", start).unwrap();
        assert!(
            p.ends_with(format!("{cam}/main/2026/11/26/{}.mp4", start.0)),
            "{}",
            p.display()
        );
        assert!(segment_path(root, cam, "../x", start).is_err());
        assert!(segment_path(root, cam, "Main", start).is_err());
        ensure_dir(&fs, root, p.parent().unwrap()).unwrap();
        fs.create_new(&p).unwrap().sync_data().unwrap();
        fs.sync_dir(p.parent().unwrap()).unwrap();
        fs.create_new(&p.with_file_name("junk.txt")).unwrap();
        fs.crash();
        // A file where a year directory belongs is a stray, not a reason to stop.
        let year_level = root.join(cam.to_string()).join("main").join("README");
        fs.create_new(&year_level).unwrap();
        let (_, strays) = walk(&fs, root).unwrap();
        assert_eq!(strays, std::slice::from_ref(&year_level));
        fs.remove_file(&year_level).unwrap();
        let (found, strays) = walk(&fs, root).unwrap();
        assert_eq!(
            found,
            [FoundSegment {
                camera: cam,
                stream: "main".into(),
                start,
                path: p.clone()
            }]
        );
        assert!(
            strays.is_empty(),
            "unsynced junk vanished in the crash: {strays:?}"
        );
    }
}
