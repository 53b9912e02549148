//! The archive's file I/O, behind a trait so that a test can swap the real file system for
//! [`SimFs`]. `SimFs` models what survives a power loss: on [`SimFs::crash`] every byte that
//! no `sync_data` covered and every directory entry that no `sync_dir` covered is lost, in the
//! style of SQLite's crash-test file layer. `kill -9` alone cannot catch a missing fsync: the
//! page cache survives it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file open for appending.
pub trait ArchiveFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file operations the archive uses. A new directory entry (file or directory) is durable
/// only once its parent directory has been synced.
pub trait ArchiveFs: Send + Sync + 'static {
    /// Creates a file that must not exist yet.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn ArchiveFile>>;
    /// Opens a file for reading, with its length.
    fn open(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let (mut r, len) = self.open(path)?;
        let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        r.read_to_end(&mut v)?;
        Ok(v)
    }
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory, with whether each is a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>>;
    fn exists(&self, path: &Path) -> bool;
    /// Bytes an unprivileged writer may still write on the file system holding `path`.
    fn free_bytes(&self, path: &Path) -> Option<u64>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

struct RealFile(std::fs::File);

impl ArchiveFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl ArchiveFs for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn ArchiveFile>> {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }
    fn open(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)> {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        Ok((Box::new(f), len))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(path)? {
            let e = e?;
            if let Ok(name) = e.file_name().into_string() {
                out.push((name, e.file_type()?.is_dir()));
            }
        }
        out.sort();
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn free_bytes(&self, path: &Path) -> Option<u64> {
        statvfs_free(path)
    }
}

fn statvfs_free(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `struct statvfs` is plain old data, so all-zero is a valid value to overwrite.
    #[allow(unsafe_code)]
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st` is a valid,
    // exclusively borrowed `struct statvfs` for the kernel to fill.
    #[allow(unsafe_code)]
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (r == 0).then_some(st.f_bavail * st.f_frsize)
}

#[derive(Default)]
struct SimFile {
    data: Vec<u8>,
    /// Bytes `..synced` survive a crash.
    synced: usize,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    dirs: BTreeMap<PathBuf, ()>,
    /// Entries (files and directories) whose parent was synced since they were created.
    durable_entries: BTreeMap<PathBuf, ()>,
    /// Random source for how much of the unsynced tail a crash keeps.
    seed: u64,
    /// Writes left before the power is cut; `Some(0)` cuts it during the next write.
    writes_left: Option<u64>,
    /// The power is off: every operation fails until [`SimFs::crash`].
    dead: bool,
    /// Size of the disk: a write past it fails with `StorageFull`, as on a full disk.
    capacity: Option<u64>,
}

impl SimState {
    fn used(&self) -> u64 {
        self.files.values().map(|f| f.data.len() as u64).sum()
    }
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

/// An in-memory file system that loses unsynced data on [`SimFs::crash`].
#[derive(Clone, Default)]
pub struct SimFs(Arc<Mutex<SimState>>);

struct SimHandle {
    fs: SimFs,
    path: PathBuf,
}

impl SimFs {
    pub fn new(seed: u64) -> SimFs {
        let fs = SimFs::default();
        fs.state().seed = seed | 1;
        fs
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the power during the `writes`-th write from now: that write lands only in part,
    /// and every operation fails from then until [`SimFs::crash`].
    pub fn cut_power_after(&self, writes: u64) {
        self.state().writes_left = Some(writes);
    }

    fn next_random(s: &mut SimState) -> u64 {
        s.seed ^= s.seed << 13;
        s.seed ^= s.seed >> 7;
        s.seed ^= s.seed << 17;
        s.seed
    }

    /// A power loss: entries never made durable vanish (with everything below them), and of
    /// each file's unsynced tail only a random prefix survives (the page cache may have
    /// written some of it out).
    pub fn crash(&self) {
        let mut s = self.state();
        let durable = std::mem::take(&mut s.durable_entries);
        let survives = |p: &Path| {
            p.ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && *a != Path::new("/"))
                .all(|a| durable.contains_key(a))
        };
        s.dirs.retain(|p, _| survives(p));
        s.files.retain(|p, _| survives(p));
        let paths: Vec<PathBuf> = s.files.keys().cloned().collect();
        for p in paths {
            let r = SimFs::next_random(&mut s);
            let f = s.files.get_mut(&p).expect("listed");
            let unsynced = f.data.len() - f.synced;
            let kept = (r % (unsynced as u64 + 1)) as usize;
            f.data.truncate(f.synced + kept);
            f.synced = f.data.len();
        }
        s.dead = false;
        s.writes_left = None;
        s.durable_entries = durable;
    }

    /// Gives the disk a size; writes past it fail as on a full disk.
    pub fn set_capacity(&self, bytes: u64) {
        self.state().capacity = Some(bytes);
    }

    /// Marks a path (and its ancestors) as existing and durable: the state before a test.
    pub fn preexisting_dir(&self, path: &Path) {
        let mut s = self.state();
        for a in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            s.dirs.insert(a.to_owned(), ());
            s.durable_entries.insert(a.to_owned(), ());
        }
    }
}

impl ArchiveFile for SimHandle {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.fs.state();
        if s.dead {
            return Err(power_lost());
        }
        let mut len = buf.len();
        match s.writes_left {
            Some(0) => {
                len = (SimFs::next_random(&mut s) % (buf.len() as u64 + 1)) as usize;
                s.dead = true;
            }
            Some(n) => s.writes_left = Some(n - 1),
            None => {}
        }
        if s.capacity.is_some_and(|c| s.used() + len as u64 > c) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        let dead = s.dead;
        let f = s.files.get_mut(&self.path).ok_or(io::ErrorKind::NotFound)?;
        f.data.extend_from_slice(&buf[..len]);
        if dead { Err(power_lost()) } else { Ok(()) }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.fs.state();
        if s.dead {
            return Err(power_lost());
        }
        let f = s.files.get_mut(&self.path).ok_or(io::ErrorKind::NotFound)?;
        f.synced = f.data.len();
        Ok(())
    }
}

impl ArchiveFs for SimFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn ArchiveFile>> {
        let mut s = self.state();
        if s.dead {
            return Err(power_lost());
        }
        let parent = path.parent().unwrap_or(Path::new(""));
        if !s.dirs.contains_key(parent) {
            return Err(io::ErrorKind::NotFound.into());
        }
        if s.files.contains_key(path) || s.dirs.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        s.files.insert(path.to_owned(), SimFile::default());
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            path: path.to_owned(),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)> {
        let s = self.state();
        let data = s
            .files
            .get(path)
            .ok_or(io::ErrorKind::NotFound)?
            .data
            .clone();
        let len = data.len() as u64;
        Ok((Box::new(io::Cursor::new(data)), len))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(power_lost());
        }
        let f = s.files.get_mut(path).ok_or(io::ErrorKind::NotFound)?;
        f.data.truncate(len as usize);
        f.synced = f.data.len();
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(power_lost());
        }
        s.files.remove(path).ok_or(io::ErrorKind::NotFound)?;
        // Modelled as durable at once. On a real disk an unsynced unlink may be undone by a
        // crash; what it removes is retention's or recovery's to remove again.
        s.durable_entries.remove(path);
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(power_lost());
        }
        for a in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            if s.files.contains_key(a) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            s.dirs.insert(a.to_owned(), ());
        }
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.dead {
            return Err(power_lost());
        }
        if !s.dirs.contains_key(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let children: Vec<PathBuf> = s
            .files
            .keys()
            .chain(s.dirs.keys())
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        for c in children {
            s.durable_entries.insert(c, ());
        }
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>> {
        let s = self.state();
        if !s.dirs.contains_key(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let mut out: Vec<(String, bool)> = s
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| name(p).map(|n| (n, false)))
            .chain(
                s.dirs
                    .keys()
                    .filter(|p| p.parent() == Some(path))
                    .filter_map(|p| name(p).map(|n| (n, true))),
            )
            .collect();
        out.sort();
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        let s = self.state();
        s.files.contains_key(path) || s.dirs.contains_key(path)
    }
    fn free_bytes(&self, _path: &Path) -> Option<u64> {
        let s = self.state();
        s.capacity.map(|c| c.saturating_sub(s.used()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_what_was_synced() {
        let fs = SimFs::new(42);
        let root = Path::new("/a");
        fs.preexisting_dir(root);
        fs.create_dir_all(&root.join("b")).unwrap();
        let mut f = fs.create_new(&root.join("b/f")).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        fs.crash();
        assert!(
            !fs.exists(&root.join("b")),
            "directory entry was never synced"
        );

        fs.create_dir_all(&root.join("b")).unwrap();
        fs.sync_dir(root).unwrap();
        let mut f = fs.create_new(&root.join("b/f")).unwrap();
        fs.sync_dir(&root.join("b")).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        f.write_all(b" world, not synced").unwrap();
        fs.crash();
        let data = fs.read(&root.join("b/f")).unwrap();
        assert!(data.starts_with(b"hello"), "{data:?}");
        assert!(b"hello world, not synced".starts_with(&data));
    }
}
