//! Evidence packages (`spec/evidence-package.md`): the recorder's signing key, the streamed
//! writer of a package (media, `SHA256SUMS`, signed manifest, public key, certificate) and
//! its offline verifier. The HTTP layer streams exports through [`PackageWriter`];
//! `vms-recorder verify` runs [`verify_package`].

pub mod key;
pub mod package;
mod tar;
pub mod verify;

pub use key::{PublicKey, SigningKey};
pub use package::{CameraInfo, ExportInfo, GapInfo, PackageWriter, package_len};
pub use verify::{Trust, Verified, verify_package};
