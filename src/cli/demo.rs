use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser};

use super::{render, Cli};

/// Write a small example lake and walk through the commands on it
///
/// Writes the table `events` (7 days x 2 regions, Hive-partitioned Parquet) under DIR,
/// then runs snapshot, verify and diff on it, before and after another job damages it,
/// and repairs it with a real backfill (plan, run, diff, runs); the last diff is also an
/// HTML report (DIR/report.html). Nothing is downloaded.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the example (replaced if it exists)
    #[arg(default_value = "backfill-demo")]
    pub dir: PathBuf,
}

/// Prints a command as a user would type it, then runs exactly that command line.
async fn step(args: &[&str]) -> Result<()> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect();
    render::out(&format!("\n$ backfill {}\n", shown.join(" ")));
    let cli = Cli::try_parse_from(std::iter::once("backfill").chain(args.iter().copied()))
        .with_context(|| format!("the demo's command `backfill {}`", shown.join(" ")))?;
    // Boxed: the demo is itself a command of `super::run`.
    Box::pin(super::run(cli)).await?;
    Ok(())
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let table_path = backfill::demo::write_example(dir)?;
    let table = table_path.display().to_string();
    let t = table.as_str();
    let before = dir.join("before.json");
    let b = before.display().to_string();
    let b = b.as_str();
    render::out(&format!(
        "wrote the example table {table}: event_date 2024-01-01..2024-01-07 x region eu/us, 14 partitions\n"
    ));

    step(&["snapshot", t, "--columns", "--out", b]).await?;
    step(&["verify", t, "--expect-every", "day"]).await?;

    let (dup, lost) = backfill::demo::damage(&table_path)?;
    render::out(&format!(
        "\nanother job now misbehaves: it appends 40 duplicate rows to {dup} and loses {lost}\n"
    ));

    step(&["diff", b, t]).await?;
    step(&[
        "verify",
        t,
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-05",
        "--against",
        b,
    ])
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
    let f = fix.display().to_string();
    let f = f.as_str();
    let range = ["--from", "2024-01-02", "--to", "2024-01-04"];
    step(&[&["plan", t], &range[..], &["--sql", f, "--jobs", "2"]].concat()).await?;
    step(&[&["run", t, "--sql", f], &range[..], &["--jobs", "2"]].concat()).await?;
    let report = dir.join("report.html");
    let r = report.display().to_string();
    step(&["diff", b, t, "--html", &r]).await?;
    step(&["runs", t]).await?;

    render::out(&format!(
        "\nopen {r} in a browser for the diff's calendar of partitions\nnext: `backfill rollback {table} RUN_ID` puts the old partitions back; `backfill --help` for the rest\n"
    ));
    Ok(ExitCode::SUCCESS)
}
