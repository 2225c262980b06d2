//! The one error type of the library.

use std::path::PathBuf;

/// Everything the library can fail with. Variants carry the table, partition or path
/// they are about, and their messages say what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table location could not be parsed or opened.
    #[error("cannot open table {location}: {reason}")]
    Location { location: String, reason: String },

    /// Nothing exists at the table location.
    #[error("table {location} not found: {reason}")]
    TableNotFound { location: String, reason: String },

    /// The folder layout breaks the Hive rules (depths or key order differ).
    #[error("table layout is not Hive-partitioned at {path}: {reason}")]
    Layout { path: String, reason: String },

    /// A partition value or flag could not be understood.
    #[error("{0}")]
    Usage(String),

    /// The selection matched no partition.
    #[error("selection matches no partition: {0}")]
    EmptySelection(String),

    /// A Parquet file could not be read.
    #[error("cannot read {path} (partition {partition}): {reason}; check the file or remove it from the table")]
    Unreadable {
        partition: String,
        path: String,
        reason: String,
    },

    /// The files of one partition do not share one schema.
    #[error("partition {partition} mixes schemas: {first} has [{first_schema}] but {second} has [{second_schema}]; rewrite the odd file so the partition has one schema")]
    MixedSchema {
        partition: String,
        first: String,
        first_schema: String,
        second: String,
        second_schema: String,
    },

    /// A column type the checksum spec does not cover.
    #[error("column {column} has type {data_type}, which checksum v1 does not cover")]
    UnsupportedType { column: String, data_type: String },

    /// A snapshot file could not be read or written.
    #[error("snapshot {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },

    /// Storage failed underneath.
    #[error("storage error at {path}: {error}{hint}")]
    Storage {
        path: String,
        #[source]
        error: object_store::Error,
        hint: &'static str,
    },

    /// A query in DataFusion failed.
    #[error("{context}: {error}")]
    Query {
        context: String,
        #[source]
        error: datafusion::error::DataFusionError,
    },

    /// Local I/O failed.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    /// Another run holds the table's lock.
    #[error("table {table} is being changed by run {run_id} ({holder}); wait for it to finish, or if it crashed, `backfill resume {table} {run_id}` once its lock expires")]
    Locked {
        table: String,
        run_id: String,
        holder: String,
    },

    /// A partition holds another run's unfinished commit (or rollback): reading it would
    /// mix that run's old and new files.
    #[error("partition {partition} holds an unfinished {step} of run {run_id}, so its files are not one version of the data; nothing was read or written. Run `backfill resume {table} {run_id}` to finish it (or `backfill rollback {table} {run_id}` to undo it), then run again")]
    Unfinished {
        table: String,
        partition: String,
        run_id: String,
        step: &'static str,
    },

    /// This run lost its lease or a newer run wrote to its journal: stop writing.
    #[error("run {run_id} lost its lock on the table ({reason}); nothing more was written; read `backfill runs` before resuming")]
    LockLost { run_id: String, reason: String },

    /// A commit step failed and its outcome is not known: read the journal first.
    #[error("commit of partition {partition} in run {run_id} did not finish ({reason}); the journal knows the state: run `backfill resume` (or `rollback`) for run {run_id}")]
    OutcomeUnknown {
        run_id: String,
        partition: String,
        reason: String,
    },

    /// No run of that id in the table's journal.
    #[error("no run {run_id} in the journal of {table}; `backfill runs {table}` lists them")]
    NoRun { table: String, run_id: String },

    /// No run of the table is interrupted or has failed partitions.
    #[error("no interrupted run in the journal of {table}; `backfill runs {table}` lists them")]
    NothingToResume { table: String },

    /// The run is over: rolled back or released. `next` says what to do instead.
    #[error("run {run_id} was {how}; {next}")]
    RunClosed {
        run_id: String,
        how: &'static str,
        next: &'static str,
    },

    /// The run is not finished, and the step needs it to be.
    #[error(
        "run {run_id} is not finished{detail}; resume or roll it back before releasing its backups"
    )]
    RunNotFinished { run_id: String, detail: String },

    /// A journal (or one of its records) cannot be read as this backfill writes them.
    #[error("journal {path}: {reason}; the run cannot be resumed safely")]
    JournalDamaged { path: String, reason: String },

    /// The transform calls volatile functions and the run was not told to accept that.
    #[error("the transform calls {functions}, which give other values on every call: a resumed run would mix two versions of the fix, and a rerun would never find a partition unchanged; make it deterministic (hash a column instead of random(), for instance), or pass --allow-nondeterministic")]
    Nondeterministic { functions: String },

    /// A partition is no longer what the plan froze: another job changed it.
    #[error(
        "partition {partition} changed since the plan was made ({reason}); it was left as it is"
    )]
    PartitionChanged { partition: String, reason: String },

    /// The transform's output for a partition cannot be written in its place.
    #[error("partition {partition}: {reason}; it was left as it was")]
    OutputRejected { partition: String, reason: String },

    /// A staged file does not prove to hold what was written: it is never committed.
    #[error("{what}; the partition was left as it was")]
    ProofFailed { what: String },

    /// Encoding or decoding Parquet failed.
    #[error("{context}: {error}")]
    Parquet {
        context: String,
        #[source]
        error: parquet::errors::ParquetError,
    },

    /// An Arrow computation (a cast, a batch) failed.
    #[error("{context}: {error}")]
    Arrow {
        context: String,
        #[source]
        error: arrow::error::ArrowError,
    },

    /// A table lock that does not read as one (a partial write by something else).
    #[error("lock {path} is not readable ({reason}); delete it if no run is active")]
    LockDamaged { path: String, reason: String },

    /// The storage lacks something the commit protocol needs.
    #[error("{store} {lacks}; nothing was written to the table; {next}")]
    Unsupported {
        store: String,
        lacks: String,
        next: &'static str,
    },

    /// A bug of this tool (a task that panicked, a state that cannot be): nothing about
    /// the input.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same command again later may succeed with nothing changed:
    /// another run holds the table, or this one lost its lock to another.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Locked { .. } | Error::LockLost { .. })
    }

    /// A local filesystem call on `path` failed.
    pub(crate) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn storage(path: impl std::fmt::Display, error: object_store::Error) -> Self {
        let text = format!("{error:?}");
        let hint = if text.contains("NoSuchBucket") {
            "; the bucket does not exist: check the bucket name in the location"
        } else if [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "403 Forbidden",
        ]
        .iter()
        .any(|s| text.contains(s))
        {
            "; access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)"
        } else if [
            "error sending request",
            "Connection refused",
            "dns error",
            "timed out",
        ]
        .iter()
        .any(|s| text.contains(s))
        {
            "; the server cannot be reached: check AWS_ENDPOINT_URL (and AWS_ALLOW_HTTP for http://) and the network"
        } else {
            ""
        };
        Error::Storage {
            path: path.to_string(),
            error,
            hint,
        }
    }
}
