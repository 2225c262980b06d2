//! # backfill
//!
//! Backfill partitioned Parquet tables safely, and prove what changed.
//!
//! ## The pipeline
//!
//! ```text
//!  TABLE (local | s3:// | memory://)
//!    │ storage     location -> object store, and the work area beside the table
//!    ▼
//!  table        discover key=value folders -> partitions, files, typed values
//!    │ selection   --where / --from / --to / --partition -> chosen partitions
//!    ├─▶ plan       freeze: partitions in order, files, bytes, rows (footers only)
//!    │     │ lock       one run per table, or one worker per partition of a frozen run
//!    │     │ journal    every step recorded before it is taken; resume reads it
//!    │     ▼ run, per partition, --jobs at a time:
//!    │   transform  read once (before-checksum) -> the user's SQL in DataFusion -> conform
//!    │              (a large partition: a slice of rows at a time, through stage too;
//!    │              rows the SQL kept or left as they were: hashed once, as read)
//!    │   stage      encode new files, prove them, write outside the table, read back
//!    │   commit     rename-exchange (local) / add-then-delete (object stores); backups; undo
//!    │
//!  snapshot     read files in parallel -> per-partition rows + checksum (checksum: v2)
//!    ├─▶ diff     snapshot vs snapshot -> unchanged / changed / missing / new
//!    └─▶ verify   gaps, empty partitions, bad files, NULL partitions, drift
//! ```
//!
//! ## Glossary
//!
//! - **table**: a folder (or prefix) of Hive-partitioned Parquet files; **partition**: one
//!   `key=value/...` folder of it, named by its **partition id** (`day=2024-01-03/region=eu`);
//!   **partition key**: one level of that layout, with a type.
//! - **selection**: the partitions a command works on (`--where`, `--from`/`--to`,
//!   `--partition`).
//! - **transform**: the user's SQL over one partition (`FROM source`).
//! - **plan**: the selected partitions, their files, and the run's settings, frozen before
//!   anything changes; **run**: one carrying out of a plan, with an id.
//! - **stage**: writing a partition's new files outside the live table and proving them;
//!   **commit**: making them the partition, wholly or not at all; **backup**: the old files,
//!   kept until the run is released; **journal**: the append-only record of a run.
//! - **snapshot**: per-partition rows and checksums at a moment; **checksum**: the content
//!   fingerprint of docs/CHECKSUM.md, whose additive piece is a [`checksum::Part`];
//!   **diff**: two snapshots compared.
//!
//! ## Module map
//!
//! - [`storage`]: location strings to object stores, credentials from `AWS_*`, the work area;
//!   [`storage::fs`], the one seam for local filesystem calls.
//! - [`table`]: discovery, partition values ([`table::value`]), the Parquet file reader.
//! - [`selection`]: the selection flags, evaluated over discovered partitions.
//! - [`plan`]: the frozen plan of a run.
//! - [`transform`]: the SQL over one partition, and the checks of its output.
//! - [`stage`]: encoding new files, proving them, staging them; [`stage::sliced`], a file
//!   encoded and proven a row group at a time.
//! - [`commit`]: the commit protocol: its states ([`commit::RunState`]), the journal
//!   that records them ([`commit::journal`]), the swap, backups, recovery, undo.
//! - [`lock`]: the table lock and per-partition leases (flock on local disk, lease objects
//!   on object stores).
//! - [`run`]: starting a run and its per-partition pipeline (`execute`), workers of frozen
//!   runs (`worker`), resume, rollback, and what the journal says of runs (`history`).
//! - [`checksum`]: the checksum spec as code (`docs/CHECKSUM.md` in words).
//! - [`snapshot`]: per-partition counts and checksums; snapshot files.
//! - [`diff`]: comparing two snapshots (pure).
//! - [`verify`]: standalone checks of a table.
//! - [`report`]: one self-contained HTML page of a snapshot, diff, verify or run, with a
//!   partition calendar.
//! - [`bench`]: synthetic tables and throughput reports.
//! - [`demo`]: the built-in example lake.
//!
//! The library never prints; the binary renders what these return.

//! ## The library's API
//!
//! What a program embedding `backfill` calls: [`storage::Location`], [`table::discover`]
//! and [`table::Table::select`], [`plan`], [`run`] (run, resume, rollback, history),
//! [`snapshot`], [`diff`], [`verify`], [`checksum`], and [`Error`]. The modules hidden from
//! these docs (`commit`, `stage`, `transform`, `lock`, `bench`, `demo`, and the file reader
//! in `table`) are the pipeline's internals: public so the binary and the tests can reach
//! them, not promised to stay as they are.

#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod bench;
pub mod checksum;
#[doc(hidden)]
pub mod commit;
#[doc(hidden)]
pub mod demo;
pub mod diff;
mod error;
#[doc(hidden)]
pub mod lock;
pub mod plan;
pub mod report;
pub mod run;
pub mod selection;
pub mod snapshot;
#[doc(hidden)]
pub mod stage;
pub mod storage;
pub mod table;
#[doc(hidden)]
pub mod transform;
pub mod verify;

pub use commit::journal;
pub use error::{Error, Result};
