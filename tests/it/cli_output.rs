//! The command line as users see it: `--help` and the human and JSON outputs.

use crate::support::{run, run_in, small_table};

#[test]
fn help_texts() {
    for cmd in [
        "", "snapshot", "diff", "verify", "demo", "plan", "run", "resume", "rollback", "runs",
        "bench",
    ] {
        let args: Vec<&str> = if cmd.is_empty() {
            vec!["--help"]
        } else {
            vec![cmd, "--help"]
        };
        let out = run(&args);
        assert_eq!(out.code, 0, "{cmd}");
        let name = if cmd.is_empty() {
            "help".to_string()
        } else {
            format!("help_{cmd}")
        };
        insta::assert_snapshot!(name, out.stdout);
    }
}

#[test]
fn snapshot_human_and_json() {
    let (dir, _) = small_table(2);
    let out = run_in(
        dir.path(),
        &["snapshot", "t", "--columns", "--where", "region = 'eu'"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);

    let out = run_in(
        dir.path(),
        &[
            "snapshot",
            "t",
            "--json",
            "--partition",
            "day=2024-01-01/region=us",
        ],
    );
    let mut v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["taken_at"] = "TIME".into();
    v["partitions"][0]["bytes"] = 0.into();
    v["totals"]["bytes"] = 0.into();
    insta::assert_snapshot!("snapshot_json", serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn the_demo_runs_start_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["demo", "lake"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::with_settings!({filters => vec![
        (r"\d{8}T\d{6}Z-[0-9a-f]{6}", "[RUN_ID]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", "[TIME]"),
    ]}, {
        insta::assert_snapshot!(out.stdout);
    });
    assert!(dir
        .path()
        .join("lake/events/event_date=2024-01-07/region=us/part-0.parquet")
        .is_file());
    assert!(dir.path().join("lake/before.json").is_file());
}
