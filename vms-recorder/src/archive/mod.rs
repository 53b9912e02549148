//! The archive: segment files on storage roots, the index that caches them, recovery after a
//! crash, and retention. The files are the truth; the index can always be rebuilt from them.

pub mod fs;
pub mod index;
pub mod layout;
pub mod mp4;
pub mod recovery;
pub mod retention;
pub mod segment;
