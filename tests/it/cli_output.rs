//! The command line as users see it: `--help` and the human and JSON outputs.

use crate::support::{cli_settings, root, run_in, small_table, transcript};

#[test]
fn help_texts() {
    // Every command the binary lists, so a new one gets its snapshot.
    let top = crate::support::run(&["--help"]);
    let commands: Vec<String> = top
        .stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 10, "{}", top.stdout);
    for cmd in std::iter::once("").chain(commands.iter().map(String::as_str)) {
        let args: Vec<&str> = if cmd.is_empty() {
            vec!["--help"]
        } else {
            vec![cmd, "--help"]
        };
        let name = if cmd.is_empty() {
            "help".to_string()
        } else {
            format!("help_{cmd}")
        };
        let out = assert_cli!(name, &root(), &args);
        assert_eq!(out.code, 0, "{cmd}");
    }
}

#[test]
fn snapshot_human_and_json() {
    let (dir, _) = small_table(2);
    let out = assert_cli!(
        dir.path(),
        &["snapshot", "t", "--columns", "--where", "region = 'eu'"]
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let args = [
        "snapshot",
        "t",
        "--json",
        "--partition",
        "day=2024-01-01/region=us",
    ];
    let mut out = run_in(dir.path(), &args);
    let mut v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // Sizes depend on the Parquet writer's version and the cache entries on inode numbers.
    v["partitions"][0]["bytes"] = 0.into();
    v["totals"]["bytes"] = 0.into();
    v["cache"]["bytes"] = 0.into();
    out.stdout = serde_json::to_string_pretty(&v).unwrap() + "\n";
    cli_settings(dir.path()).bind(|| {
        insta::assert_snapshot!("snapshot_json", transcript(&args, &out));
    });
}

#[test]
fn the_demo_runs_start_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cli!(dir.path(), &["demo", "lake"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir
        .path()
        .join("lake/events/event_date=2024-01-07/region=us/part-0.parquet")
        .is_file());
    assert!(dir.path().join("lake/before.json").is_file());
    let report = std::fs::read_to_string(dir.path().join("lake/report.html")).unwrap();
    assert_eq!(report.matches("<rect class=\"c\"").count(), 14);
}

#[test]
fn bench_generates_measures_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "bench",
            "--rows",
            "3000",
            "--partitions",
            "4",
            "--columns",
            "5",
            "--skew",
            "1",
            "--jobs",
            "2",
            "--dir",
            "scratch",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let b: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(b["partitions"], 4);
    assert_eq!(b["rows"], 3000);
    let (phases, seconds): (Vec<&str>, Vec<f64>) = b["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phase"].as_str().unwrap(), p["seconds"].as_f64().unwrap()))
        .unzip();
    assert_eq!(
        phases,
        ["read", "transform", "checksum", "encode", "write", "commit"]
    );
    // The checksums' share is that of the computing phases (the first four).
    let share = b["checksum_share"].as_f64().unwrap();
    assert!(seconds[2] > 0.0 && share > 0.0 && share < 1.0, "{b}");
    let want = seconds[2] / seconds[..4].iter().sum::<f64>();
    assert!((share - want).abs() < 1e-9, "{share} vs {want}");
    // Skewed: the first partition holds the most rows.
    let snap = crate::support::snapshot_json(&dir.path().join("scratch"), "t", &[]);
    let rows: Vec<u64> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows.iter().sum::<u64>(), 3000);
    assert!(rows[0] > rows[3], "{rows:?}");
    assert_eq!(
        snap["partitions"][0]["schema"],
        "c0:int64, c1:float64, c2:string, c3:date, c4:decimal(15,2), id:int64"
    );

    // An existing table is copied, never rewritten in place.
    let (tdir, table) = crate::support::small_table(2);
    let before = crate::support::file_hashes(&table);
    let out = run_in(tdir.path(), &["bench", "t", "--dir", "scratch"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("bench on scratch/t: 4 partitions, 12 rows"),
        "{}",
        out.stdout
    );
    assert_eq!(crate::support::file_hashes(&table), before);
}
