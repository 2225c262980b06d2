use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use backfill::plan::{self, OnEmpty, Order};
use backfill::run;
use backfill::storage::Location;
use backfill::transform::Transform;

use super::{discover_selected, render, SelectionArgs};

/// Show which partitions a backfill would rewrite, in order, and what it would cost
///
/// Lists the selected partitions in execution order with files, bytes and rows (from
/// Parquet footers, or the checksum cache), the totals, and an estimate of the time and
/// cost measured on one sample partition (the median by bytes, or --preflight-partition).
/// With --sql the transform is planned against the table's schema, then run twice on the
/// sample, the second time on its rows in the reverse order: a transform whose output
/// depends on the order rows are read in is refused (like volatile functions) unless
/// --allow-nondeterministic. The sample is then taken through the rest of a run's pipeline
/// (checksums, encoding, the proof) and timed; without --sql it is read and checksummed,
/// for the time a snapshot would take. Nothing is written.
///
/// With --freeze (and --sql), the plan becomes a run for workers: its id, partitions and
/// their files, the SQL and options are written to the run's journal, and each worker
/// (an orchestrator's mapped task, on any machine) runs
/// `backfill run TABLE --run ID --partition P`. `backfill resume TABLE ID` finishes
/// whatever the workers left; `backfill rollback TABLE ID` undoes all of it.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// The transform to check against the table's schema (planned, not executed)
    #[arg(long, value_name = "FILE")]
    pub sql: Option<std::path::PathBuf>,
    /// Execution order
    #[arg(long, value_name = "ORDER", value_enum, default_value_t = Order::OldestFirst)]
    pub order: Order,
    /// Partitions a run would rewrite at once (for the estimate)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Partitions larger than this are rewritten a slice at a time (see `run --help`): the
    /// estimate's sample and a frozen run follow it
    #[arg(long, value_name = "MIB", default_value_t = backfill::plan::SLICE_ABOVE_MIB)]
    pub slice_above: u64,
    /// Register another table for joins, as NAME=TABLE (repeatable)
    #[arg(long = "table", value_name = "NAME=TABLE", value_parser = super::lookup_table)]
    pub tables: Vec<(String, String)>,
    /// Accept output columns or types that differ from the table's
    #[arg(long)]
    pub allow_schema_change: bool,
    /// Go on although the SQL calls volatile functions (random(), uuid()...), which give
    /// other rows on every run: refused by default, recorded in the journal when allowed
    #[arg(long)]
    pub allow_nondeterministic: bool,
    /// The partition the preflight runs the transform on and times (default: the median by
    /// bytes of the selected partitions)
    #[arg(long, value_name = "K=V[/K2=V2]")]
    pub preflight_partition: Option<String>,
    /// Price per GB read or written, for the estimate's cost (your storage's or egress rate)
    #[arg(long, value_name = "PRICE", help_heading = "Cost")]
    pub price_per_gb: Option<f64>,
    /// Price per 1,000 object-store requests, for the estimate's cost
    #[arg(long, value_name = "PRICE", help_heading = "Cost")]
    pub price_per_1k_requests: Option<f64>,
    /// Freeze the plan into a run for workers (`run --run ID --partition P`); needs --sql
    #[arg(long, requires = "sql")]
    pub freeze: bool,
    /// Every partition (required with --freeze when no selection is given; without
    /// --freeze, the plan of a run that would be given --all)
    #[arg(long)]
    pub all: bool,
    /// With --freeze: when the transform returns no rows, fail, delete or keep
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnEmpty::Fail)]
    pub on_empty: OnEmpty,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct TransformCheck {
    ok: bool,
    output_columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_change: Option<String>,
    /// Volatile functions the SQL calls (only with --allow-nondeterministic).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volatile: Vec<String>,
    /// The transform run twice on a sample partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<run::SampleCheck>,
}

/// What `plan` reports: the plan, what the SQL check found, and for a frozen plan what
/// workers run next.
#[derive(Serialize)]
struct PlanReport {
    #[serde(flatten)]
    plan: plan::Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform: Option<TransformCheck>,
    #[serde(skip)]
    jobs: usize,
    /// The table as the user named it, for the commands a frozen plan's workers run.
    #[serde(skip)]
    named: String,
}

impl render::Report for PlanReport {
    fn human(&self) -> String {
        let mut text = render::plan(&self.plan, self.jobs);
        if let Some(t) = &self.transform {
            if let Some(s) = &t.sample {
                text.push_str(&render::sample_check(s));
            }
            text.push_str(&match &t.schema_change {
                None => "transform: ok; its output columns equal the table's\n".to_string(),
                Some(c) => format!("transform: ok; schema change (allowed): {c}\n"),
            });
            if !t.volatile.is_empty() {
                text.push_str(&format!(
                    "transform: calls volatile functions (allowed): {}; every run gives other rows\n",
                    t.volatile.join(", ")
                ));
            }
        }
        if self.plan.frozen {
            text.push_str(&format!(
                "frozen as run {id}: each worker runs `backfill run {t} --run {id} --partition P`; `backfill resume {t} {id}` finishes what they leave\n",
                id = self.plan.run_id,
                t = self.named
            ));
        }
        text
    }
}

pub async fn run(args: PlanArgs) -> Result<ExitCode> {
    let selection = args.selection.selection()?;
    let sql = args.sql.as_deref().map(super::read_sql).transpose()?;
    let loc = Location::open(&args.table)?;
    let table = discover_selected(&loc, &args.selection, &selection).await?;
    let jobs = args.jobs.unwrap_or_else(backfill::snapshot::default_jobs);
    let order = args.order;
    if args.freeze {
        let sql = sql.expect("clap requires --sql");
        let req = backfill::run::RunRequest {
            sql,
            selection,
            all: args.all,
            jobs,
            order,
            on_empty: args.on_empty,
            allow_schema_change: args.allow_schema_change,
            allow_nondeterministic: args.allow_nondeterministic,
            tables: args.tables.clone(),
            lease: backfill::lock::LeaseTimes::from_env(),
            progress: None,
            preflight_partition: args.preflight_partition.clone(),
            slice_above_mib: args.slice_above,
        };
        let plan = run::freeze(&table, req)
            .await
            .with_context(|| format!("freezing a run on {}", table.location))?;
        let report = PlanReport {
            plan,
            transform: None,
            jobs,
            named: args.table.clone(),
        };
        return Ok(render::emit(&report, args.json));
    }
    let checked = match sql {
        Some(sql) => {
            let t = Transform::new(&sql, &args.tables).await?;
            let (schema, change, preflight) = run::check_sql(
                &table,
                &t,
                args.allow_schema_change,
                args.allow_nondeterministic,
            )
            .await?;
            let check = TransformCheck {
                ok: true,
                output_columns: schema
                    .fields()
                    .iter()
                    .map(|f| format!("{}:{}", f.name(), f.data_type()))
                    .collect(),
                schema_change: change,
                volatile: preflight.volatile,
                sample: None,
            };
            Some((t, check))
        }
        None => None,
    };
    // Rows of files the checksum cache holds are not read again (read-only: nothing new
    // is learnt from footers).
    let cache = backfill::snapshot::Cache::open(&table.location, None).await;
    let mut plan = plan::build(&table, &selection, order, jobs, "(plan)", Some(&cache)).await?;
    // What a run of this plan would refuse, the plan refuses.
    run::refuse_summary_files(&table, &plan)?;
    let candidates: Vec<plan::PlannedPartition> =
        run::sample_partitions(&plan, args.preflight_partition.as_deref())?
            .into_iter()
            .cloned()
            .collect();
    let refs: Vec<&plan::PlannedPartition> = candidates.iter().collect();
    let prices = plan::Prices {
        per_gb: args.price_per_gb,
        per_1k_requests: args.price_per_1k_requests,
    };
    let mut transform = None;
    match checked {
        Some((t, mut check)) => {
            let settings = run::SampleSettings {
                allow_schema_change: args.allow_schema_change,
                on_empty: args.on_empty,
                slice_above_mib: args.slice_above,
            };
            let given = args.preflight_partition.is_some();
            let sample =
                run::first_sample(&table.location, &plan.keys, &refs, &t, &settings, given)
                    .await
                    .context("running the transform on a sample partition")?;
            if let Some(mut sample) = sample {
                run::refuse_order_dependent(&sample.check, args.allow_nondeterministic)?;
                run::time_more(
                    &mut sample,
                    &table.location,
                    &plan.keys,
                    &plan,
                    &t,
                    &settings,
                    true,
                )
                .await;
                let measured = sample.measured();
                let estimate =
                    plan::estimate(&plan, &measured, jobs, table.location.is_local(), prices);
                plan.estimated_seconds = estimate.seconds;
                plan.estimate = Some(estimate);
                check.sample = Some(sample.check);
            }
            transform = Some(check);
        }
        None => {
            for p in refs.iter().take(3) {
                // A partition that does not read is the next one's turn.
                if let Ok(measured) = run::sample_read(&table.location, &plan.keys, p).await {
                    let estimate =
                        plan::estimate(&plan, &measured, jobs, table.location.is_local(), prices);
                    plan.estimated_seconds = estimate.seconds;
                    plan.estimate = Some(estimate);
                    break;
                }
            }
        }
    }
    let report = PlanReport {
        plan,
        transform,
        jobs,
        named: args.table.clone(),
    };
    Ok(render::emit(&report, args.json))
}
