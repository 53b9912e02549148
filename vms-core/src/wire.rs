//! The JSON types of the spec: the recorder API (`spec/recorder-api.md`, `spec/openapi/`),
//! the evidence manifest (`spec/evidence-package.md`) and the signed audit checkpoint
//! (`spec/audit-log.md`).
//! Serialisation lives here and only here. Like every wire type, they ignore unknown fields so
//! that peers of different versions interoperate; units are in the field names, times are
//! RFC 3339 UTC strings, and secrets are write-only.

use serde::{Deserialize, Serialize};

/// Version of the interoperability spec this build speaks.
pub const SPEC_VERSION: &str = "1.0";

/// `GET /api/v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: String,
    pub recorder: String,
    pub spec_version: String,
    pub software_version: String,
}

/// A camera in a `POST` or `PUT` body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CameraRequest {
    pub name: String,
    pub region: String,
    pub class: String,
    #[serde(default)]
    pub code: Option<String>,
    pub streams: Vec<StreamRequest>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamRequest {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Write-only. Left out of a `PUT`: unchanged. An empty string clears it.
    #[serde(default)]
    pub password: Option<String>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Option<String>,
}

/// A camera as the API returns it: never with a password.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CameraResponse {
    pub id: String,
    pub name: String,
    pub region: String,
    pub class: String,
    pub code: Option<String>,
    pub streams: Vec<StreamResponse>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamResponse {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    /// Whether a password is set (its value is never returned).
    pub has_password: bool,
    pub transport: String,
    pub status: StreamStatus,
}

/// Live status of one stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamStatus {
    pub connected: bool,
    pub fps: f64,
    pub bitrate_kbps: f64,
    /// Milliseconds since the last frame arrived; absent before the first.
    pub last_frame_age_ms: Option<u64>,
    pub reconnects: u64,
    /// The gap the stream is in now, if it is not recording.
    pub current_gap: Option<OpenGap>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpenGap {
    pub start: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CameraList {
    pub cameras: Vec<CameraResponse>,
}

/// `GET /api/v1/cameras/{id}/recordings`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Recordings {
    pub camera: String,
    pub stream: String,
    pub start: String,
    pub end: String,
    pub ranges: Vec<RecordedRange>,
    pub gaps: Vec<Gap>,
}

/// Footage that is continuous in media time (one run, possibly several segments).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordedRange {
    pub start: String,
    pub end: String,
    pub start_90k: i64,
    pub end_90k: i64,
    pub frames: u64,
    pub segments: u32,
    pub run: String,
    pub time_quality: TimeQuality,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TimeQuality {
    pub recorder_synced: bool,
    pub recorder_error_ms: Option<u32>,
    pub camera_offset_ms: Option<i64>,
}

/// Time between two ranges with nothing recorded, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    pub start: String,
    pub end: String,
    pub duration_ms: i64,
    pub reason: String,
}

/// `POST /api/v1/cameras/{id}/holds`: keep a range of a camera's footage as evidence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HoldRequest {
    /// One stream; absent or null: every stream of the camera.
    #[serde(default)]
    pub stream: Option<String>,
    pub start: String,
    pub end: String,
    /// Case number, 1 to 128 characters.
    pub case: String,
    /// Why, 1 to 1024 characters.
    pub reason: String,
}

/// An evidence hold: the footage it covers is never evicted, even past the privacy cap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hold {
    pub id: String,
    pub camera: String,
    pub stream: Option<String>,
    pub start: String,
    pub end: String,
    pub case: String,
    pub reason: String,
    pub created: String,
}

/// `GET /api/v1/holds`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Holds {
    pub holds: Vec<Hold>,
}

/// `GET /api/v1/evidence/key`: the key that signs this recorder's evidence packages, for
/// `verify --trusted-key`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvidenceKey {
    /// SPKI PEM.
    pub public_key_pem: String,
    /// Hex SHA-256 of the SPKI DER, as in manifests.
    pub fingerprint: String,
    /// The certificate vouching for the key, once central has issued one.
    pub certificate_pem: Option<String>,
}

/// `GET /api/v1/alerts`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alerts {
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Stable kind: `stream_down`, `storage_root_missing`, `disk_full`, `min_age_breach`,
    /// `held_share`, `clock_unsynchronized`, `index_rebuilt`.
    pub kind: String,
    pub message: String,
    pub camera: Option<String>,
    pub stream: Option<String>,
    pub storage_root: Option<String>,
}

/// The one error shape of every API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// Stable snake_case code (`vms_core::ErrorKind::code`).
    pub code: String,
    pub message: String,
}

/// The `format` of an evidence manifest this build writes and reads.
pub const EVIDENCE_FORMAT: &str = "vms-evidence/1";

/// `manifest.json` of an evidence package (`spec/evidence-package.md`): what was exported,
/// by whom and why, and the SHA-256 of every file beside it. The signature covers its exact
/// bytes, so readers never re-serialise it to check anything.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvidenceManifest {
    /// [`EVIDENCE_FORMAT`].
    pub format: String,
    /// [`SPEC_VERSION`] of the recorder that made the package.
    pub spec_version: String,
    pub recorder: String,
    pub camera: EvidenceCamera,
    pub stream: String,
    /// The range the operator asked for.
    pub requested: UtcRange,
    /// The range the media files cover, from their first to their last frame.
    pub delivered: UtcRange,
    /// Every stretch of the delivered range with no footage, and why.
    pub gaps: Vec<Gap>,
    /// The worst time quality of the footage delivered.
    pub time_quality: TimeQuality,
    /// Every file of the package but the manifest, its signature and the keys.
    pub files: Vec<EvidenceFile>,
    /// Who exported, as the recorder authenticated them.
    pub operator: String,
    pub case: String,
    pub reason: String,
    /// When the package was made.
    pub exported: String,
    /// Lower-case hex SHA-256 of the DER of the signing key's SubjectPublicKeyInfo.
    pub recorder_key_sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvidenceCamera {
    pub id: String,
    pub name: String,
    pub region: String,
    /// The registry number, when regional IT assigned one.
    pub code: Option<String>,
}

/// A half-open UTC range `[start, end)`, RFC 3339.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UtcRange {
    pub start: String,
    pub end: String,
}

/// A file of an evidence package.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvidenceFile {
    /// Its path inside the package: `media/<name>` or `SHA256SUMS`.
    pub path: String,
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// A signed checkpoint of an audit log (`spec/audit-log.md`, "Checkpoints"): its keeper's
/// statement that the log's record `seq` has hash `hash`, as of `time`. A recorder sends its
/// own to central; central signs its own log's with the national root key. Made and checked
/// in `crate::audit`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SignedCheckpoint {
    /// Which log: a recorder's id, or `central`.
    pub log: String,
    pub seq: u64,
    /// Lower-case hex SHA-256: the record's `hash`.
    pub hash: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// Ed25519 signature of the checkpoint bytes: 128 lower-case hex digits (64 bytes).
    pub signature: String,
}
