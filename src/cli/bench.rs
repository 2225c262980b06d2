use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use backfill::bench::{self, SyntheticSpec};
use backfill::run;
use backfill::snapshot::{self, ScanOptions};
use backfill::storage::Location;

use super::render;

/// Measure snapshot and rewrite throughput on a generated table or a copy of yours
///
/// Without TABLE, writes a synthetic table (--rows, --partitions, --columns, --skew,
/// --nulls) into --dir; with TABLE (a local folder), copies it into --dir first: the bench
/// never touches the original. Then takes a snapshot and runs a rewrite (--sql, or a
/// default that changes every row) with --jobs, and reports rows/s and MB/s per phase
/// (read, transform, checksum, encode, write, commit), p50/p95 time per partition, the
/// checksums' share of the computing phases, and peak memory.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A local table to measure (copied first; default: a generated one)
    pub table: Option<String>,
    /// Rows of the generated table
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Partitions of the generated table (one per day)
    #[arg(long, default_value_t = 30)]
    pub partitions: usize,
    /// Data columns of the generated table, besides `id`
    #[arg(long, default_value_t = 8)]
    pub columns: usize,
    /// Partition size skew: 0 equal, 1 Zipf-like
    #[arg(long, default_value_t = 0.0)]
    pub skew: f64,
    /// Fraction of NULL values in the generated columns
    #[arg(long, default_value_t = 0.05)]
    pub nulls: f64,
    /// The transform to run (default: upper() of the first string column)
    #[arg(long, value_name = "FILE")]
    pub sql: Option<std::path::PathBuf>,
    /// Partitions rewritten at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Scratch folder for the table (replaced)
    #[arg(long, value_name = "DIR", default_value = "backfill-bench")]
    pub dir: std::path::PathBuf,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let (path, generated) = match &args.table {
        Some(t) => {
            let src = std::path::Path::new(t);
            if t.contains("://") || !src.is_dir() {
                anyhow::bail!("bench copies a local table folder; {t} is not one (copy an S3 table locally first)");
            }
            (bench::copy_table(src, &args.dir)?, None)
        }
        None => {
            let spec = SyntheticSpec {
                rows: args.rows,
                partitions: args.partitions,
                columns: args.columns,
                skew: args.skew,
                nulls: args.nulls,
            };
            (bench::generate(&args.dir, &spec)?, Some(spec))
        }
    };
    let jobs = args.jobs.unwrap_or_else(snapshot::default_jobs);
    let loc = Location::open(path.to_str().context("scratch path is not UTF-8")?)?;
    let table = backfill::table::discover(&loc, &Default::default()).await?;
    let bytes = table.bytes();
    super::heap::size_for(table.largest_partition());

    let t = Instant::now();
    let snap = snapshot::snapshot(
        &table,
        &ScanOptions {
            jobs,
            ..Default::default()
        },
    )
    .await?;
    let snapshot_s = t.elapsed().as_secs_f64();

    let sql = match &args.sql {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading --sql {}", p.display()))?
        }
        None => bench::default_sql_of(&table).await?,
    };
    let req = bench::rewrite_request(sql, jobs);
    let report = run::run(&table, req).await.context("running the rewrite")?;
    let bench = bench::report(
        &path.display().to_string(),
        generated,
        bytes,
        jobs,
        (snapshot_s, snap.totals.rows),
        &report,
    );
    Ok(render::emit(&bench, args.json))
}
