use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{diff, render, snapshot, verify, SelectionArgs};

/// Write a small example lake and walk through the commands on it
///
/// Writes the table `events` (7 days x 2 regions, Hive-partitioned Parquet) under DIR,
/// then runs snapshot, verify and diff on it, before and after another job damages it.
/// Nothing is downloaded.
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

    render::out(&format!(
        "\nnext: `backfill snapshot {table} --where \"region = 'eu'\" --json`, or `backfill --help`\n"
    ));
    Ok(ExitCode::SUCCESS)
}
