use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{diff, plan, render, run as run_cmd, runs, snapshot, verify, SelectionArgs};

/// Write a small example lake and walk through the commands on it
///
/// Writes the table `events` (7 days x 2 regions, Hive-partitioned Parquet) under DIR,
/// then runs snapshot, verify and diff on it, before and after another job damages it,
/// and repairs it with a real backfill (plan, run, diff, runs). Nothing is downloaded.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the example (replaced if it exists)
    #[arg(default_value = "backfill-demo")]
    pub dir: PathBuf,
}

fn step(text: &str) {
    render::out(&format!("\n$ {text}\n"));
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let table_path = backfill::demo::write_example(dir)?;
    let table = table_path.display().to_string();
    let before = dir.join("before.json");
    render::out(&format!(
        "wrote the example table {table}: event_date 2024-01-01..2024-01-07 x region eu/us, 14 partitions\n"
    ));

    step(&format!(
        "backfill snapshot {table} --columns --out {}",
        before.display()
    ));
    snapshot::run(snapshot::SnapshotArgs {
        table: table.clone(),
        selection: SelectionArgs::default(),
        columns: true,
        json: false,
        out: Some(before.clone()),
        jobs: None,
        checksum_version: backfill::checksum::VERSION,
    })
    .await?;

    step(&format!("backfill verify {table} --expect-every day"));
    verify::run(verify::VerifyArgs {
        table: table.clone(),
        selection: SelectionArgs::default(),
        expect_every: Some("day".into()),
        against: None,
        json: false,
        jobs: None,
    })
    .await?;

    let (dup, lost) = backfill::demo::damage(&table_path)?;
    render::out(&format!(
        "\nanother job now misbehaves: it appends 40 duplicate rows to {dup} and loses {lost}\n"
    ));

    step(&format!("backfill diff {} {table}", before.display()));
    diff::run(diff::DiffArgs {
        before: before.display().to_string(),
        after: table.clone(),
        selection: SelectionArgs::default(),
        json: false,
    })
    .await?;

    step(&format!(
        "backfill verify {table} --from 2024-01-03 --to 2024-01-05 --against {}",
        before.display()
    ));
    verify::run(verify::VerifyArgs {
        table: table.clone(),
        selection: SelectionArgs {
            from: Some("2024-01-03".into()),
            to: Some("2024-01-05".into()),
            ..SelectionArgs::default()
        },
        expect_every: None,
        against: Some(before.clone()),
        json: false,
        jobs: None,
    })
    .await?;

    let fix = dir.join("fix.sql");
    std::fs::write(
        &fix,
        "-- Drop duplicated events and write event types in upper case.\n\
         SELECT DISTINCT event_id, user_id, upper(event_type) AS event_type, amount, created_at\n\
         FROM source\n",
    )
    .with_context(|| format!("writing {}", fix.display()))?;
    render::out(&format!(
        "\nthe fix: {} removes duplicates and upper-cases event_type; backfill 2024-01-02..2024-01-04\n",
        fix.display()
    ));
    let selection = SelectionArgs {
        from: Some("2024-01-02".into()),
        to: Some("2024-01-04".into()),
        ..SelectionArgs::default()
    };

    step(&format!(
        "backfill plan {table} --from 2024-01-02 --to 2024-01-04 --sql {} --jobs 2",
        fix.display()
    ));
    plan::run(plan::PlanArgs {
        table: table.clone(),
        selection: selection.clone(),
        sql: Some(fix.clone()),
        order: "oldest-first".into(),
        jobs: Some(2),
        tables: vec![],
        allow_schema_change: false,
        freeze: false,
        all: false,
        on_empty: "fail".into(),
        json: false,
    })
    .await?;

    step(&format!(
        "backfill run {table} --sql {} --from 2024-01-02 --to 2024-01-04",
        fix.display()
    ));
    run_cmd::run(run_cmd::RunArgs {
        table: table.clone(),
        sql: Some(fix.clone()),
        run: None,
        shard: None,
        wait: 0,
        selection,
        all: false,
        jobs: Some(2),
        order: "oldest-first".into(),
        on_empty: "fail".into(),
        allow_schema_change: false,
        tables: vec![],
        json: false,
    })
    .await?;

    step(&format!("backfill diff {} {table}", before.display()));
    diff::run(diff::DiffArgs {
        before: before.display().to_string(),
        after: table.clone(),
        selection: SelectionArgs::default(),
        json: false,
    })
    .await?;

    step(&format!("backfill runs {table}"));
    runs::run(runs::RunsArgs {
        table: table.clone(),
        release: None,
        json: false,
    })
    .await?;

    render::out(&format!(
        "\nnext: `backfill rollback {table} RUN_ID` puts the old partitions back; `backfill --help` for the rest\n"
    ));
    Ok(ExitCode::SUCCESS)
}
