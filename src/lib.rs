//! # backfill
//!
//! Backfill partitioned Parquet tables safely, and prove what changed.
//!
//! ## The pipeline
//!
//! ```text
//!  TABLE (local | s3:// | memory://)
//!    │ storage     location -> object store
//!    ▼
//!  table        discover key=value folders -> partitions, files, typed values
//!    │ selection   --where / --from / --to / --partition -> chosen partitions
//!    ▼
//!  snapshot     read files in parallel -> per-partition rows + checksum (checksum: spec v1)
//!    │
//!    ├─▶ diff     snapshot vs snapshot -> unchanged / changed / missing / new
//!    └─▶ verify   gaps, empty partitions, bad files, NULL partitions, drift
//! ```
//!
//! ## Glossary
//!
//! table, partition, partition key, selection, snapshot, checksum, diff: as in the
//! README. A [`checksum::Part`] is the additive piece of a checksum that files and
//! row groups contribute.
//!
//! ## Module map
//!
//! - [`storage`]: location strings to object stores, credentials from `AWS_*`.
//! - [`table`]: discovery and partition values ([`table::value`]: escaping, types).
//! - [`selection`]: the selection flags, evaluated over discovered partitions.
//! - [`checksum`]: the checksum spec as code (`docs/CHECKSUM.md` in words).
//! - [`snapshot`]: per-partition counts and checksums; snapshot files.
//! - [`diff`]: comparing two snapshots (pure).
//! - [`verify`]: standalone checks of a table.
//! - [`demo`]: the built-in example lake.
//!
//! The library never prints; the binary renders what these return.

pub mod checksum;
pub mod demo;
pub mod diff;
mod error;
pub mod selection;
pub mod snapshot;
pub mod storage;
pub mod table;
pub mod verify;

pub use error::{Error, Result};
