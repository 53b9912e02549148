//! The regional recorder: ingest, archive, media serving.
