//! Evidence packages (`spec/evidence-package.md`): the recorder's signing key, the streamed
//! writer of a package (media, `SHA256SUMS`, signed manifest, public key, certificate), its
//! offline verifier and the check of the certificate's chain to a trusted root. The HTTP
//! layer streams exports through [`PackageWriter`]; `vms-recorder verify` runs
//! [`verify_package`].

pub mod chain;
pub mod key;
pub mod package;
mod tar;
pub mod verify;

pub use chain::{Certified, TrustedRoot};
pub use key::{PublicKey, SigningKey};
pub use package::{CameraInfo, ExportInfo, GapInfo, PackageWriter, package_len};
pub use verify::{CertificateStatus, Trust, Verified, verify_package};
