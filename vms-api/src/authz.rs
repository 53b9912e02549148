//! The one authorisation rule of central (`spec/central-roles.md`): a user sees what lies in
//! the subtrees of their region scopes, and their role says what they may do there. Out of
//! scope gives `NotFound`, worded by the caller so that nothing leaks about what exists
//! elsewhere; in scope with the wrong role gives `PermissionDenied`.
//!
//! | permission         | operator | investigator | regional_admin | national_admin |
//! |--------------------|:--------:|:------------:|:--------------:|:--------------:|
//! | `view_directory`   | yes      | yes          | yes            | yes            |
//! | `live`             | yes      | yes          | yes            | yes            |
//! | `snapshot`         |          | yes          | yes            | yes            |
//! | `playback`         |          | yes          |                | yes            |
//! | `export`           |          | yes          |                | yes            |
//! | `evidence`         |          | yes          |                | yes            |
//! | `hold`             |          | yes          |                | yes            |
//! | `manage_cameras`   |          |              | yes            | yes            |
//! | `manage_recorders` |          |              | yes            | yes            |
//! | `enrol`            |          |              | yes            | yes            |
//! | `manage_users`     |          |              |                | yes, national  |
//! | `view_audit`       |          |              |                | yes, national  |
//!
//! "National" permissions concern the whole network: they are checked at [`republic`], and
//! need a scope of the whole republic (`000000000`) whatever region they are checked at.

use vms_core::region::RegionCode;
use vms_core::{Error, bail};

use crate::users::{Role, User};

/// Something a user may do to the things of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See cameras and recorders in the directory, and their health.
    ViewDirectory,
    /// Watch live video.
    Live,
    /// Take a still picture of live or recorded video.
    Snapshot,
    /// Review recorded footage.
    Playback,
    /// Export a time range as a video file.
    Export,
    /// Export a time range as a signed evidence package.
    Evidence,
    /// Place and release evidence holds.
    Hold,
    /// Add, change and remove cameras.
    ManageCameras,
    /// Change and remove recorders.
    ManageRecorders,
    /// Enrol new recorders.
    Enrol,
    /// Create, change and delete users (national).
    ManageUsers,
    /// Read the audit trail (national).
    ViewAudit,
}

impl Permission {
    /// The name in messages and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewDirectory => "view_directory",
            Permission::Live => "live",
            Permission::Snapshot => "snapshot",
            Permission::Playback => "playback",
            Permission::Export => "export",
            Permission::Evidence => "evidence",
            Permission::Hold => "hold",
            Permission::ManageCameras => "manage_cameras",
            Permission::ManageRecorders => "manage_recorders",
            Permission::Enrol => "enrol",
            Permission::ManageUsers => "manage_users",
            Permission::ViewAudit => "view_audit",
        }
    }

    /// Whether it concerns the whole network rather than a region's things.
    pub fn is_national(self) -> bool {
        matches!(self, Permission::ManageUsers | Permission::ViewAudit)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The region code of the whole republic, `000000000`: the scope of national admins, and
/// the region national permissions are checked at.
pub fn republic() -> RegionCode {
    "000000000".parse().expect("the all-zero code is valid")
}

/// The table of the module documentation: whether `role` carries `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Operator => matches!(permission, ViewDirectory | Live),
        Role::Investigator => matches!(
            permission,
            ViewDirectory | Live | Snapshot | Playback | Export | Evidence | Hold
        ),
        Role::RegionalAdmin => matches!(
            permission,
            ViewDirectory | Live | Snapshot | ManageCameras | ManageRecorders | Enrol
        ),
        Role::NationalAdmin => true,
    }
}

/// Whether `region` lies in one of the user's scopes: the filter for lists.
pub fn visible(user: &User, region: &RegionCode) -> bool {
    user.scopes.iter().any(|scope| region.is_within(scope))
}

/// The rule. `what` names the thing asked for ("camera 01J…"): out of the user's scopes the
/// error is `NotFound` "{what} not found", as if it did not exist; in scope without the
/// permission it is `PermissionDenied`.
pub fn check(
    user: &User,
    permission: Permission,
    region: &RegionCode,
    what: &str,
) -> Result<(), Error> {
    if !visible(user, region) {
        bail!(NotFound, "{what} not found");
    }
    if !allows(user.role, permission) {
        bail!(
            PermissionDenied,
            "{what}: the {} role does not have the {permission} permission",
            user.role
        );
    }
    if permission.is_national() && !visible(user, &republic()) {
        bail!(
            PermissionDenied,
            "{what}: the {permission} permission needs a scope of the whole republic"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vms_core::ErrorKind;
    use vms_core::id::UserId;

    const ROLES: [Role; 4] = [
        Role::Operator,
        Role::Investigator,
        Role::RegionalAdmin,
        Role::NationalAdmin,
    ];

    /// The table, written out again independently of `allows`: operator, investigator,
    /// regional admin, national admin.
    const TABLE: [(Permission, [bool; 4]); 12] = [
        (Permission::ViewDirectory, [true, true, true, true]),
        (Permission::Live, [true, true, true, true]),
        (Permission::Snapshot, [false, true, true, true]),
        (Permission::Playback, [false, true, false, true]),
        (Permission::Export, [false, true, false, true]),
        (Permission::Evidence, [false, true, false, true]),
        (Permission::Hold, [false, true, false, true]),
        (Permission::ManageCameras, [false, false, true, true]),
        (Permission::ManageRecorders, [false, false, true, true]),
        (Permission::Enrol, [false, false, true, true]),
        (Permission::ManageUsers, [false, false, false, true]),
        (Permission::ViewAudit, [false, false, false, true]),
    ];

    fn r(s: &str) -> RegionCode {
        s.parse().unwrap()
    }

    fn user(role: Role, scopes: &[&str]) -> User {
        User {
            id: UserId::generate(),
            username: "someone".into(),
            role,
            scopes: scopes.iter().map(|s| r(s)).collect(),
            password_hash: String::new(),
            created: jiff::Timestamp::UNIX_EPOCH,
            disabled: false,
        }
    }

    fn outcome(res: Result<(), Error>) -> Option<ErrorKind> {
        res.err().map(|e| e.kind())
    }

    #[test]
    fn every_role_permission_and_scope() {
        use ErrorKind::{NotFound, PermissionDenied};
        // The module documents the table for `allows`; this checks the rule's outcomes.
        for (i, role) in ROLES.into_iter().enumerate() {
            let almaty = user(role, &["750000000", "710000000"]);
            let everywhere = user(role, &["000000000"]);
            for (permission, row) in TABLE {
                let has = row[i];
                let regional = has && !permission.is_national();
                let case = format!("{role} {permission}");
                // In scope (a subtree of a scope, and a scope itself), out of scope.
                let in_scope_expected = (!regional).then_some(PermissionDenied);
                for region in ["751110000", "710000000"] {
                    assert_eq!(
                        outcome(check(&almaty, permission, &r(region), "camera x")),
                        in_scope_expected,
                        "{case} in scope at {region}"
                    );
                }
                for region in ["111110000", "000000000"] {
                    assert_eq!(
                        outcome(check(&almaty, permission, &r(region), "camera x")),
                        Some(NotFound),
                        "{case} out of scope at {region}"
                    );
                }
                // Scoped to the whole republic, anywhere: only the role decides.
                let everywhere_expected = (!has).then_some(PermissionDenied);
                for region in ["751110000", "000000000"] {
                    assert_eq!(
                        outcome(check(&everywhere, permission, &r(region), "camera x")),
                        everywhere_expected,
                        "{case} scoped to the republic at {region}"
                    );
                }
                assert_eq!(allows(role, permission), has, "{case}");
            }
        }
    }

    #[test]
    fn messages_leak_nothing_out_of_scope() {
        let u = user(Role::Operator, &["750000000"]);
        let e = check(&u, Permission::Playback, &r("111110000"), "camera 7").unwrap_err();
        assert_eq!(e.to_string(), "camera 7 not found");
        let e = check(&u, Permission::Playback, &r("751110000"), "camera 8").unwrap_err();
        assert_eq!(
            e.to_string(),
            "camera 8: the operator role does not have the playback permission"
        );
    }

    #[test]
    fn visibility_is_by_subtree() {
        let u = user(Role::Operator, &["751100000", "110000000"]);
        assert!(visible(&u, &r("751110000")));
        assert!(visible(&u, &r("751100000")));
        assert!(visible(&u, &r("111110000")));
        assert!(!visible(&u, &r("751210000")));
        assert!(
            !visible(&u, &r("750000000")),
            "a parent is not in a child's scope"
        );
        assert!(!visible(&u, &republic()));
        assert!(visible(
            &user(Role::Operator, &["000000000"]),
            &r("751210000")
        ));
    }
}
