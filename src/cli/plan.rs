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
/// Lists the selected partitions in execution order with files, bytes and rows (read from
/// Parquet footers: no data is read), the totals and an estimated duration. With --sql the
/// transform is planned against the table's schema (not executed) and its output columns
/// are compared with the table's. Nothing is written.
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
    /// Freeze the plan into a run for workers (`run --run ID --partition P`); needs --sql
    #[arg(long, requires = "sql")]
    pub freeze: bool,
    /// With --freeze: act on every partition (required when no selection is given)
    #[arg(long, requires = "freeze")]
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
    let transform = match sql {
        Some(sql) => {
            let t = Transform::new(&sql, &args.tables).await?;
            let (schema, change, preflight) = run::check_sql(
                &table,
                &t,
                args.allow_schema_change,
                args.allow_nondeterministic,
            )
            .await?;
            Some(TransformCheck {
                ok: true,
                output_columns: schema
                    .fields()
                    .iter()
                    .map(|f| format!("{}:{}", f.name(), f.data_type()))
                    .collect(),
                schema_change: change,
                volatile: preflight.volatile,
            })
        }
        None => None,
    };
    // Rows of files the checksum cache holds are not read again (read-only: nothing new
    // is learnt from footers).
    let cache = backfill::snapshot::Cache::open(&table.location, None).await;
    let plan = plan::build(&table, &selection, order, jobs, "(plan)", Some(&cache)).await?;
    let report = PlanReport {
        plan,
        transform,
        jobs,
        named: args.table.clone(),
    };
    Ok(render::emit(&report, args.json))
}
