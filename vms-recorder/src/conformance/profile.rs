//! The camera profiles of the standard (`spec/camera-conformance.md`): for each camera class
//! and stream role, the codecs, minimum picture size, minimum frame rate, longest keyframe
//! interval and bitrate band a camera must keep to. This table is the normative one; the
//! document's table mirrors it, and a unit test checks the two agree.

use std::fmt;
use std::str::FromStr;

use vms_core::{Error, err};

use crate::cameras::CameraClass;

/// Which stream of a camera: the first is its main stream, the others are sub-streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Main,
    Sub,
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role, Error> {
        match s {
            "main" => Ok(Role::Main),
            "sub" => Ok(Role::Sub),
            _ => Err(err!(InvalidArgument, "role {s:?} is not one of main, sub")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Main => "main",
            Role::Sub => "sub",
        })
    }
}

/// What one class and role must keep to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requirements {
    pub min_width: u32,
    pub min_height: u32,
    pub min_fps: f64,
    pub max_keyframe_interval_ms: u64,
    pub min_kbps: u64,
    pub max_kbps: u64,
}

/// The requirements of `class` for a stream of `role`.
pub fn requirements(class: CameraClass, role: Role) -> Requirements {
    let (min_width, min_height) = match role {
        Role::Main => (1920, 1080),
        Role::Sub => (640, 360),
    };
    let max_keyframe_interval_ms = match class {
        CameraClass::Traffic => 1000,
        CameraClass::City | CameraClass::SafeYard => 2000,
    };
    let (min_fps, min_kbps, max_kbps) = match (class, role) {
        (CameraClass::City, Role::Main) => (25.0, 1000, 8000),
        (CameraClass::City, Role::Sub) => (15.0, 128, 2000),
        (CameraClass::SafeYard, Role::Main) => (15.0, 500, 6000),
        (CameraClass::SafeYard, Role::Sub) => (10.0, 128, 1500),
        (CameraClass::Traffic, Role::Main) => (25.0, 2000, 16000),
        (CameraClass::Traffic, Role::Sub) => (15.0, 128, 2000),
    };
    Requirements {
        min_width,
        min_height,
        min_fps,
        max_keyframe_interval_ms,
        min_kbps,
        max_kbps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile table of spec/camera-conformance.md §2, row by row, against this one.
    #[test]
    fn the_table_of_the_standard_is_this_one() {
        let doc = include_str!("../../../spec/camera-conformance.md");
        let row = |name: &str| -> Vec<String> {
            let line = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("no row {name:?} in the profile table"));
            line.split('|')
                .skip(2)
                .take(3)
                .map(|c| c.trim().to_owned())
                .collect()
        };
        let classes = [
            CameraClass::City,
            CameraClass::SafeYard,
            CameraClass::Traffic,
        ];
        for (role, word) in [(Role::Main, "main"), (Role::Sub, "sub")] {
            let sizes = row(&format!("{word} stream minimum resolution"));
            let fps = row(&format!("minimum frame rate, {word}"));
            let bands = row(&format!("bitrate band, {word} (kbit/s)"));
            let keyframes = row("maximum keyframe interval");
            for (i, class) in classes.into_iter().enumerate() {
                let r = requirements(class, role);
                assert_eq!(
                    sizes[i],
                    format!("{}×{}", r.min_width, r.min_height),
                    "{class} {role}"
                );
                assert_eq!(fps[i], format!("{}", r.min_fps), "{class} {role}");
                assert_eq!(
                    bands[i],
                    format!("{}–{}", r.min_kbps, r.max_kbps),
                    "{class} {role}"
                );
                assert_eq!(
                    keyframes[i],
                    format!("{} s", r.max_keyframe_interval_ms / 1000),
                    "{class}"
                );
            }
        }
    }
}
