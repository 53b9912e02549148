//! Serving recorded media: HLS playback over byte ranges of the stored files, HTTP ranges.

pub mod hls;
pub mod range;
pub mod serve;
