//! The recorder's clocks, read through a trait so tests can run on simulated time: wall-clock
//! time (NTP-disciplined in production), a monotonic clock, and whether the OS says the wall
//! clock is synchronised.

use std::time::Instant;

use vms_core::time::{Time90k, TimeQuality};

pub trait Clocks: Send + Sync + 'static {
    fn realtime(&self) -> Time90k;
    fn monotonic(&self) -> Instant;
    /// Synchronisation of the wall clock; the camera offset is left unset.
    fn quality(&self) -> TimeQuality;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealClocks;

impl Clocks for RealClocks {
    fn realtime(&self) -> Time90k {
        Time90k::from_timestamp(jiff::Timestamp::now())
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }

    fn quality(&self) -> TimeQuality {
        let mut tx = libc::timex {
            modes: 0,
            ..zeroed_timex()
        };
        // SAFETY: adjtimex with `modes == 0` only reads the kernel's clock state into `tx`,
        // a properly aligned, initialised and exclusively borrowed `struct timex`.
        #[allow(unsafe_code)]
        let state = unsafe { libc::adjtimex(&mut tx) };
        let synced = state >= 0 && state != libc::TIME_ERROR;
        TimeQuality {
            recorder_synced: synced,
            recorder_error_ms: (synced && tx.esterror >= 0).then_some((tx.esterror / 1000) as u32),
            camera_offset_ms: None,
        }
    }
}

fn zeroed_timex() -> libc::timex {
    // SAFETY: `struct timex` is plain old data (integers and padding); all-zero is valid.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}
