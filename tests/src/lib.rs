//! End-to-end test support for the network: the camera simulator (`camsim`, also the
//! `vms-camsim` binary) and helpers that run our binaries as real processes on loopback.

pub mod camsim;
pub mod central;
pub mod ffmpeg;
pub mod process;
pub mod recorder;
pub mod rtsp_client;
