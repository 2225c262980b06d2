//! The one error type of the library.

use std::path::PathBuf;

/// Everything the library can fail with. Variants carry the table, partition or path
/// they are about, and their messages say what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table location could not be parsed or opened.
    #[error("cannot open table {location}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why, in words.
        reason: String,
    },

    /// Nothing exists at the table location.
    #[error("table {location} not found: {reason}")]
    TableNotFound {
        /// The location as given.
        location: String,
        /// Why, in words.
        reason: String,
    },

    /// The folder layout breaks the Hive rules (depths or key order differ).
    #[error("table layout is not Hive-partitioned at {path}: {reason}")]
    Layout {
        /// The file, object or folder it is about.
        path: String,
        /// Why, in words.
        reason: String,
    },

    /// A partition value or flag could not be understood.
    #[error("{0}")]
    Usage(String),

    /// The selection matched no partition.
    #[error("selection matches no partition: {0}")]
    EmptySelection(String),

    /// A Parquet file could not be read.
    #[error("cannot read {path} (partition {partition}): {reason}; check the file or remove it from the table")]
    Unreadable {
        /// The partition it is about.
        partition: String,
        /// The file, object or folder it is about.
        path: String,
        /// Why, in words.
        reason: String,
    },

    /// The files of one partition do not share one schema.
    #[error("partition {partition} mixes schemas: {first} has [{first_schema}] but {second} has [{second_schema}]; rewrite the odd file so the partition has one schema")]
    MixedSchema {
        /// The partition it is about.
        partition: String,
        /// One file.
        first: String,
        /// Its schema.
        first_schema: String,
        /// A file whose schema differs.
        second: String,
        /// Its schema.
        second_schema: String,
    },

    /// A column type the checksum spec does not cover.
    #[error("column {column} has type {data_type}, which checksum v1 does not cover")]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its type.
        data_type: String,
    },

    /// A snapshot file could not be read or written.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The file, object or folder it is about.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },

    /// Storage failed underneath.
    #[error("storage error at {path}: {error}{hint}")]
    Storage {
        /// The file, object or folder it is about.
        path: String,
        /// The underlying error.
        #[source]
        error: object_store::Error,
        /// What to check, for errors whose cause is known (may be empty).
        hint: &'static str,
    },

    /// The transform's SQL failed in DataFusion (planned against the table, or run on a
    /// partition): the user's SQL is what to fix.
    #[error(
        "the transform SQL failed: {error}; it runs over the table `source` (the partition's rows)"
    )]
    Transform {
        /// The underlying error.
        #[source]
        error: datafusion::error::DataFusionError,
    },

    /// A query in DataFusion failed.
    #[error("{context}: {error}")]
    Query {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        error: datafusion::error::DataFusionError,
    },

    /// Local I/O failed.
    #[error("{path}: {error}")]
    Io {
        /// The file, object or folder it is about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },

    /// Another run holds the table's lock.
    #[error("table {table} is being changed by run {run_id} ({holder}); wait for it to finish, or if it crashed, `backfill resume {table} {run_id}` once its lock expires")]
    Locked {
        /// The table, as the user named it.
        table: String,
        /// The run it is about.
        run_id: String,
        /// Who holds the lock: run, process and host.
        holder: String,
    },

    /// A partition holds another run's unfinished commit (or rollback): reading it would
    /// mix that run's old and new files.
    #[error("partition {partition} holds an unfinished {step} of run {run_id}, so its files are not one version of the data; nothing was read or written. Run `backfill resume {table} {run_id}` to finish it (or `backfill rollback {table} {run_id}` to undo it), then run again")]
    Unfinished {
        /// The table, as the user named it.
        table: String,
        /// The partition it is about.
        partition: String,
        /// The run it is about.
        run_id: String,
        /// `commit`, `delete` or `rollback`.
        step: &'static str,
    },

    /// This run lost its lease or a newer run wrote to its journal: stop writing.
    #[error("run {run_id} lost its lock on the table ({reason}); nothing more was written; read `backfill runs` before resuming")]
    LockLost {
        /// The run it is about.
        run_id: String,
        /// Why, in words.
        reason: String,
    },

    /// A commit step failed and its outcome is not known: read the journal first.
    #[error("commit of partition {partition} in run {run_id} did not finish ({reason}); the journal knows the state: run `backfill resume` (or `rollback`) for run {run_id}")]
    OutcomeUnknown {
        /// The run it is about.
        run_id: String,
        /// The partition it is about.
        partition: String,
        /// Why, in words.
        reason: String,
    },

    /// No run of that id in the table's journal.
    #[error("no run {run_id} in the journal of {table}; `backfill runs {table}` lists them")]
    NoRun {
        /// The table, as the user named it.
        table: String,
        /// The run it is about.
        run_id: String,
    },

    /// No run of the table is interrupted or has failed partitions.
    #[error("no interrupted run in the journal of {table}; `backfill runs {table}` lists them")]
    NothingToResume {
        /// The table, as the user named it.
        table: String,
    },

    /// The run is over: rolled back or released. `next` says what to do instead.
    #[error("run {run_id} was {how}; {next}")]
    RunClosed {
        /// The run it is about.
        run_id: String,
        /// `rolled back` or `released`.
        how: &'static str,
        /// What to do instead.
        next: &'static str,
    },

    /// The run is not finished, and the step needs it to be.
    #[error(
        "run {run_id} is not finished{detail}; resume or roll it back before releasing its backups"
    )]
    RunNotFinished {
        /// The run it is about.
        run_id: String,
        /// Which partitions are not, in words.
        detail: String,
    },

    /// A journal (or one of its records) cannot be read as this backfill writes them.
    #[error("journal {path}: {reason}; the run cannot be resumed safely")]
    JournalDamaged {
        /// The file, object or folder it is about.
        path: String,
        /// Why, in words.
        reason: String,
    },

    /// The transform calls volatile functions and the run was not told to accept that.
    #[error("the transform calls {functions}, which give other values on every call: a resumed run would mix two versions of the fix, and a rerun would never find a partition unchanged; make it deterministic (hash a column instead of random(), for instance), or pass --allow-nondeterministic")]
    Nondeterministic {
        /// The volatile functions, each with where it is.
        functions: String,
    },

    /// The transform gave other rows for the same rows in another order (the preflight's
    /// sample): it is not a function of the partition's content.
    #[error("the transform is not deterministic: on partition {partition}, {detail}; rows come out of Parquet files in whatever order their writer left them, so a resumed run would mix two versions of the fix and a rerun would never find a partition unchanged. Make the order total (an ORDER BY over columns that tell every row apart, before a LIMIT or in a window), or pass --allow-nondeterministic")]
    OrderDependent {
        /// The sample partition.
        partition: String,
        /// How the two outputs differ.
        detail: String,
    },

    /// A partition is no longer what the plan froze: another job changed it.
    #[error(
        "partition {partition} changed since the plan was made ({reason}); it was left as it is"
    )]
    PartitionChanged {
        /// The partition it is about.
        partition: String,
        /// Why, in words.
        reason: String,
    },

    /// The transform's output for a partition cannot be written in its place.
    #[error("partition {partition}: {reason}; it was left as it was")]
    OutputRejected {
        /// The partition it is about.
        partition: String,
        /// Why, in words.
        reason: String,
    },

    /// A staged file does not prove to hold what was written: it is never committed.
    #[error("{what}; the partition was left as it was")]
    ProofFailed {
        /// What the proof found.
        what: String,
    },

    /// Encoding or decoding Parquet failed.
    #[error("{context}: {error}")]
    Parquet {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        error: parquet::errors::ParquetError,
    },

    /// An Arrow computation (a cast, a batch) failed.
    #[error("{context}: {error}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        error: arrow::error::ArrowError,
    },

    /// A table lock that does not read as one (a partial write by something else).
    #[error("lock {path} is not readable ({reason}); delete it if no run is active")]
    LockDamaged {
        /// The file, object or folder it is about.
        path: String,
        /// Why, in words.
        reason: String,
    },

    /// Parquet summary files describe files a run would replace.
    #[error("{table} holds Parquet summary files that list the row groups of the files this run would replace: {files}; after the run they would name files that no longer exist and rows that changed (fastparquet and dask read them: they would fail, or count the old rows). Nothing was written. Move them out of the table and run again (readers then list the files; backfill never reads them), and rebuild them afterwards with the tool that wrote them if you need them")]
    SummaryFiles {
        /// The table, as the user named it.
        table: String,
        /// The summary files, relative to the table, comma-separated.
        files: String,
    },

    /// The storage lacks something the commit protocol needs.
    #[error("{store} {lacks}; nothing was written to the table; {next}")]
    Unsupported {
        /// The store.
        store: String,
        /// What it lacks.
        lacks: String,
        /// What to do instead.
        next: &'static str,
    },

    /// A bug of this tool (a task that panicked, a state that cannot be): nothing about
    /// the input.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

/// The library's result type.
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
