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
    /// WGS 84. Optional.
    #[serde(default)]
    pub location: Option<Location>,
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
    pub location: Option<Location>,
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
    /// `held_share`, `clock_unsynchronized`, `index_rebuilt`, `camera_nonconformant`.
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

impl ErrorBody {
    /// The body of an answer with HTTP `status` for `e`. A 5xx says nothing of its cause (the
    /// server's log has it) beyond where to look: `log` names it, e.g. "the recorder's log".
    pub fn of(e: &crate::Error, status: u16, log: &str) -> ErrorBody {
        let message = if status >= 500 {
            format!("internal error; see {log}")
        } else {
            e.to_string()
        };
        ErrorBody {
            error: ErrorDetail {
                code: e.kind().code().to_owned(),
                message,
            },
        }
    }
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

// ---- The recorder–central channel (spec/central.md) ----

/// `POST /api/v1/enrol` on central's channel port: a recorder asks to join.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolRequest {
    /// The one-time enrolment token, as regional IT got it from central.
    pub token: String,
    /// Every spec version the recorder speaks, e.g. `["1.0"]`.
    pub spec_versions: Vec<String>,
    pub recorder: String,
    pub name: String,
    pub region: String,
    /// The recorder's Ed25519 key (SPKI PEM): its TLS client and evidence-signing key.
    pub public_key_pem: String,
    /// Hex Ed25519 signature by that key over [`enrol_proof_bytes`]: proof that the recorder
    /// holds the key it asks central to certify.
    pub proof: String,
    /// Where clients reach the recorder's API directly; absent when they cannot, and central
    /// then relays their media.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// The bytes an enrolment proof signs.
pub fn enrol_proof_bytes(token: &str, recorder: &str, public_key_pem: &str) -> Vec<u8> {
    format!("vms-enrol/1\n{token}\n{recorder}\n{public_key_pem}").into_bytes()
}

/// Central's answer to an enrolment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolResponse {
    /// The spec version the two agreed on.
    pub spec_version: String,
    pub recorder: String,
    /// The recorder's certificate, issued by the national root.
    pub certificate_pem: String,
    pub root_certificate_pem: String,
    /// The keys media tokens are signed with.
    pub token_keys: Vec<TokenKeyPem>,
    /// How often the recorder sends a heartbeat on its channel.
    pub heartbeat_interval_ms: u64,
}

/// A media-token verification key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenKeyPem {
    pub kid: String,
    pub public_key_pem: String,
}

/// A camera as a recorder's catalog gives it to central: never with credentials or URLs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CatalogCamera {
    pub id: String,
    pub name: String,
    pub region: String,
    pub class: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
    /// `online` (every stream recording), `degraded` (some), `offline` (none).
    pub status: String,
    pub streams: Vec<CatalogStream>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CatalogStream {
    pub name: String,
    pub connected: bool,
    /// The verdict of the stream's newest conformance report, `pass` or `fail`; null before
    /// its first check (`spec/camera-conformance.md`).
    #[serde(default)]
    pub conformance: Option<String>,
}

/// WGS 84 degrees.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Location {
    pub lat_deg: f64,
    pub lon_deg: f64,
}

/// A recorder's health, as its heartbeat carries it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RecorderStatus {
    pub cameras: u32,
    pub streams: u32,
    pub streams_up: u32,
    pub alerts: u32,
}

/// One line of `GET /api/v1/channel/events` (NDJSON), which central opens on a recorder
/// over its channel: what the recorder pushes, in order. Central's query says where to
/// resume; unknown event types are skipped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelEvent {
    Hello {
        recorder: String,
        spec_version: String,
        software_version: String,
    },
    /// The whole catalog at version (`epoch`, `seq`): sent when central's version is not
    /// one the recorder can continue from.
    CatalogFull {
        epoch: String,
        seq: u64,
        cameras: Vec<CatalogCamera>,
    },
    /// The change from `seq - 1` to `seq` within `epoch`.
    CatalogDelta {
        epoch: String,
        seq: u64,
        upserts: Vec<CatalogCamera>,
        removed: Vec<String>,
    },
    Heartbeat {
        time: String,
        status: RecorderStatus,
    },
    /// Audit records after central's cursor, as the exact stored lines.
    Audit { records: Vec<String> },
    /// The head of the recorder's audit log, signed with its certified key.
    Checkpoint { checkpoint: SignedCheckpoint },
    #[serde(other)]
    Unknown,
}

/// `POST /api/v1/recordings/query`: recorded ranges of many cameras at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordingsQuery {
    pub cameras: Vec<String>,
    /// Default `main`.
    #[serde(default)]
    pub stream: Option<String>,
    pub start: String,
    pub end: String,
    /// Central only: how long to wait for each recorder. Default: central's configured
    /// deadline.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// A recorder's answer to [`RecordingsQuery`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordingsQueryResult {
    pub results: Vec<Recordings>,
    /// Cameras of the query this recorder does not have.
    pub unknown: Vec<String>,
}

/// Central's answer to a [`RecordingsQuery`] fanned out to recorders.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FederatedRecordings {
    pub results: Vec<CameraRecordings>,
    /// Recorders that did not answer in time, and the regions and cameras left out.
    pub missing: Vec<MissingRecorder>,
    /// Whether every recorder answered.
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CameraRecordings {
    pub camera: String,
    pub recorder: String,
    pub region: String,
    pub recordings: Recordings,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MissingRecorder {
    pub recorder: String,
    pub name: String,
    pub region: String,
    pub cameras: Vec<String>,
    /// `offline` (no channel), `timeout` (no answer within the deadline) or `error`.
    pub reason: String,
}

// ---- Central's client API (spec/openapi/central.yaml) ----

/// `POST /api/v1/auth/login`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoginRequest {
    pub username: String,
    /// Write-only.
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LoginResponse {
    /// The session's bearer token.
    pub token: String,
    pub expires: String,
    pub user: UserInfo,
}

/// A user as the API shows it: never with a password or its hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    /// `operator`, `investigator`, `regional_admin` or `national_admin`.
    pub role: String,
    pub scopes: Vec<String>,
    pub created: String,
    pub disabled: bool,
}

/// `POST /api/v1/users`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserRequest {
    pub username: String,
    /// Write-only, 12 to 256 characters.
    pub password: String,
    pub role: String,
    pub scopes: Vec<String>,
}

/// `PATCH /api/v1/users/{id}`: what is left out stays as it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UserUpdateRequest {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Write-only.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

/// `POST /api/v1/enrolment-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolmentTokenRequest {
    pub region: String,
    /// 60..=604800. Default 86400.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolmentTokenResponse {
    /// Given once; central keeps only its hash.
    pub token: String,
    pub region: String,
    pub expires: String,
}

/// A recorder as central shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecorderInfo {
    pub id: String,
    pub name: String,
    pub region: String,
    pub spec_version: String,
    pub online: bool,
    /// Milliseconds since its last heartbeat; absent before the first since central started.
    pub last_heartbeat_age_ms: Option<u64>,
    pub status: RecorderStatus,
    pub public_url: Option<String>,
    pub enrolled: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecorderList {
    pub recorders: Vec<RecorderInfo>,
}

/// A camera of the directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirectoryCamera {
    #[serde(flatten)]
    pub camera: CatalogCamera,
    pub recorder: String,
    /// False while its recorder is offline: the status is then the last one known.
    pub recorder_online: bool,
}

/// `GET /api/v1/cameras`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirectoryPage {
    pub cameras: Vec<DirectoryCamera>,
    /// Matches on every page.
    pub total: u64,
    /// Matches per region one level below the searched one.
    pub counts: Vec<RegionCount>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RegionCount {
    pub region: String,
    /// Its name, when the region tree has it.
    pub name: Option<String>,
    pub count: u64,
}

/// `POST /api/v1/media-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaTokenRequest {
    pub camera: String,
    /// A stream name, or `*`. Default `*`.
    #[serde(default)]
    pub stream: Option<String>,
    /// `live`, `playback`, `snapshot`, `export`, `evidence` or `hold`.
    pub purpose: String,
    /// The media range allowed, RFC 3339: required for playback, export, evidence and hold,
    /// refused for live.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MediaTokenResponse {
    pub token: String,
    pub expires: String,
    pub recorder: String,
    /// Where to send the media requests: the recorder's own address, or central's relay for
    /// it. Append the recorder API path (`/api/v1/cameras/…`).
    pub base_url: String,
    pub relayed: bool,
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

/// `GET /api/v1/audit`: a page of audit records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent at the end.
    pub next_cursor: Option<String>,
    /// With a `log` filter: the newest signed checkpoint central keeps of that log.
    pub checkpoint: Option<SignedCheckpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    /// `central`, or the recorder's id.
    pub log: String,
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub camera: Option<String>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub hash: String,
}

/// The version of the camera conformance report format (`spec/camera-conformance.md`).
pub const CONFORMANCE_REPORT_VERSION: u32 = 1;

/// A camera stream's conformance report: what `vms-recorder check-camera --json` writes and
/// `GET /api/v1/cameras/{id}/conformance` serves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConformanceReport {
    pub version: u32,
    /// The stream's URL, never with credentials.
    pub url: String,
    /// `city`, `safe_yard` or `traffic`.
    pub profile: String,
    /// `main` or `sub`.
    pub role: String,
    pub started_at: String,
    pub duration_ms: u64,
    /// `pass` when no rule failed, else `fail`.
    pub verdict: String,
    pub stream: ConformanceStream,
    /// Every rule of the standard, in its order.
    pub rules: Vec<ConformanceRule>,
}

/// What the probe measured. A field is null when it could not be measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ConformanceStream {
    /// The SDP encoding name, lower case (`h264`, `h265`, …).
    pub codec: Option<String>,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub declared_fps: Option<f64>,
    pub measured_fps: Option<f64>,
    /// The longest complete keyframe interval seen.
    pub keyframe_interval_ms: Option<u64>,
    pub bitrate_kbps: Option<u64>,
    pub frames: u64,
    pub session_timeout_secs: Option<u64>,
    /// The camera's clock (from RTCP sender reports) minus the checker's: the median.
    pub camera_clock_offset_ms: Option<i64>,
}

/// One rule's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ConformanceRule {
    /// `rtsp`, `auth`, `codec`, `resolution`, `frame_rate`, `keyframes`, `parameter_sets`,
    /// `bitrate`, `rtp`, `clock`, `session`.
    pub id: String,
    /// `pass`, `fail` or `not_checked`.
    pub status: String,
    pub message: String,
}

/// `GET /api/v1/cameras/{id}/conformance`: the newest check of every stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CameraConformance {
    pub streams: Vec<StreamConformance>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamConformance {
    pub stream: String,
    /// `running` while a check is under way (the previous report, if any, is still given),
    /// `done` once a report is kept, `pending` before the first check starts.
    pub state: String,
    pub report: Option<ConformanceReport>,
}
