//! Central's users: accounts with a role and the regions they may see. What a role may do
//! where is `authz`'s job.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use vms_core::id::UserId;
use vms_core::region::RegionCode;

/// What a user may do; `authz` holds the table of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches live video.
    Operator,
    /// Reviews, exports and holds footage as evidence; also live video and snapshots.
    Investigator,
    /// Runs cameras, recorders and enrolment in their regions; also live video and snapshots.
    RegionalAdmin,
    /// Everything, users included.
    NationalAdmin,
}

impl Role {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Investigator => "investigator",
            Role::RegionalAdmin => "regional_admin",
            Role::NationalAdmin => "national_admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user of central.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Lower-case, 3–64 characters of `[a-z0-9._-]`, unique.
    pub username: String,
    pub role: Role,
    /// The regions (and their subtrees) the user sees: at least one, sorted, no duplicates.
    pub scopes: Vec<RegionCode>,
    /// argon2id PHC string. Never part of an API type, and left out of `Debug`.
    pub password_hash: String,
    pub created: Timestamp,
    pub disabled: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("created", &self.created)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}
