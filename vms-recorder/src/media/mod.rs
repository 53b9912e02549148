//! Serving recorded media: HLS playback over byte ranges of the stored files, progressive MP4
//! exports, HTTP ranges, and decoding (snapshots, thumbnails, transcoded exports). Nothing
//! here runs on the recording path.

pub mod decode;
pub mod export;
pub mod hls;
pub mod range;
pub mod serve;
