//! Files that hold secrets and state written whole: an atomic, durable replace (write a
//! temporary file, fsync, rename, fsync the directory), and Ed25519 private keys kept as
//! PKCS#8 PEM readable by their owner only. The recorder's evidence key and central's
//! national root key both live this way.

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use crate::{Error, IoResultExt, bail, err};

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content,
/// durably. The file is created readable by its owner only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let ctx = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .io_context(ctx)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .io_context(ctx)?;
    std::fs::rename(&tmp, path).io_context(ctx)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context(ctx)
}

/// Loads the Ed25519 key at `path`, or makes one there when there is none. A file that will
/// not parse is an error, never a reason to make a new key: that would silently change an
/// identity. So is a key file that others than its owner may read. The flag says whether
/// the key is new, for the caller's log.
pub fn load_or_create_ed25519(path: &Path) -> Result<(ed25519_dalek::SigningKey, bool), Error> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            check_private(path)?;
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                err!(
                    DataLoss,
                    "{}: not an Ed25519 private key in PKCS#8 PEM form: {e}",
                    path.display()
                )
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((create(path)?, true)),
        Err(e) => Err(e).io_context(|| format!("reading {}", path.display())),
    }
}

/// Makes a key from the operating system's random source and stores it atomically.
fn create(path: &Path) -> Result<ed25519_dalek::SigningKey, Error> {
    use rand::TryRngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| err!(Unavailable, "the OS random source failed: {e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    seed.fill(0);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| err!(Internal, "encoding the private key: {e}"))?;
    write_atomically(path, pem.as_bytes())?;
    Ok(key)
}

/// Refuses a private key file that group or others may access.
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .io_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            FailedPrecondition,
            "{}: mode {:04o} lets others read the private key; it must be 0600 (chmod 600)",
            path.display(),
            mode & 0o7777
        );
    }
    Ok(())
}
