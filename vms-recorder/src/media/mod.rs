//! Serving recorded media: HLS playback over byte ranges of the stored files, HTTP ranges.

pub mod export;
pub mod hls;
pub mod range;
pub mod serve;
