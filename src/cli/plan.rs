use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use backfill::plan::{self, OnEmpty, Order};
use backfill::run;
use backfill::transform::Transform;

use super::{open_selected, parse_tables, render, SelectionArgs};

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
    #[arg(long = "table", value_name = "NAME=TABLE")]
    pub tables: Vec<String>,
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

#[derive(Serialize)]
struct PlanOutput {
    #[serde(flatten)]
    plan: plan::Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform: Option<TransformCheck>,
}

pub async fn run(args: PlanArgs) -> Result<ExitCode> {
    let (table, selected) = open_selected(&args.table, &args.selection).await?;
    let jobs = args.jobs.unwrap_or_else(backfill::snapshot::default_jobs);
    let order = args.order;
    if args.freeze {
        let path = args.sql.as_ref().expect("clap requires --sql");
        let sql = std::fs::read_to_string(path)
            .with_context(|| format!("reading --sql {}", path.display()))?;
        let req = backfill::run::RunRequest {
            sql,
            selection: args.selection.selection(),
            all: args.all,
            jobs,
            order,
            on_empty: args.on_empty,
            allow_schema_change: args.allow_schema_change,
            allow_nondeterministic: args.allow_nondeterministic,
            tables: parse_tables(&args.tables)?,
            lease: backfill::lock::LeaseTimes::from_env(),
            progress: None,
        };
        let plan = run::freeze(&table, &selected, req)
            .await
            .with_context(|| format!("freezing a run on {}", table.location))?;
        if args.json {
            render::json(&plan);
        } else {
            render::out(&render::plan(&plan, jobs));
            render::out(&format!(
                "frozen as run {id}: each worker runs `backfill run {t} --run {id} --partition P`; `backfill resume {t} {id}` finishes what they leave\n",
                id = plan.run_id,
                t = args.table
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let transform = match &args.sql {
        Some(path) => {
            let sql = std::fs::read_to_string(path)
                .with_context(|| format!("reading --sql {}", path.display()))?;
            let t = Transform::new(&sql, &parse_tables(&args.tables)?).await?;
            let (schema, change, preflight) = run::check_sql(
                &table,
                &selected,
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
    let plan = plan::build(
        &table,
        &selected,
        &args.selection.selection(),
        order,
        jobs,
        "(plan)",
    )
    .await?;
    let out = PlanOutput { plan, transform };
    if args.json {
        render::json(&out);
    } else {
        render::out(&render::plan(&out.plan, jobs));
        if let Some(t) = &out.transform {
            let text = match &t.schema_change {
                None => "transform: ok; its output columns equal the table's\n".to_string(),
                Some(c) => format!("transform: ok; schema change (allowed): {c}\n"),
            };
            render::out(&text);
            if !t.volatile.is_empty() {
                render::out(&format!(
                    "transform: calls volatile functions (allowed): {}; every run gives other rows\n",
                    t.volatile.join(", ")
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
