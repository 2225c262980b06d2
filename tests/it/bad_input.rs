//! Bad input: exit 2, a message that names the thing and says what to do, never a panic.

use crate::support::{put, rows, run_in, small_table, Output};

fn fails(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for n in needles {
        assert!(out.stderr.contains(n), "missing {n:?} in: {}", out.stderr);
    }
}

#[test]
fn a_missing_table() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        &run_in(dir.path(), &["snapshot", "nowhere"]),
        &["table nowhere not found", "check the path"],
    );
    fails(
        &run_in(dir.path(), &["verify", "gopher://x"]),
        &["unknown scheme"],
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    fails(
        &run_in(dir.path(), &["snapshot", "empty"]),
        &["no Parquet files or key=value folders"],
    );
}

#[test]
fn a_truncated_file_names_its_partition() {
    let (dir, table) = small_table(2);
    let f = table.join("day=2024-01-02/region=us/part-0.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 10]).unwrap();
    fails(
        &run_in(dir.path(), &["snapshot", "t"]),
        &[
            "day=2024-01-02/region=us/part-0.parquet",
            "partition day=2024-01-02/region=us",
        ],
    );
    // Outside the selection the bad file is not read.
    assert_eq!(
        run_in(dir.path(), &["snapshot", "t", "--to", "2024-01-01"]).code,
        0
    );
}

#[test]
fn mixed_depths_name_the_offending_path() {
    let (dir, table) = small_table(1);
    put(
        &table,
        "day=2024-01-02",
        "part-0.parquet",
        &rows(&[(1, None)]),
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t"]),
        &["day=2024-01-02/part-0.parquet", "[day]", "[day, region]"],
    );
    let (dir, table) = small_table(1);
    put(
        &table,
        "region=eu/day=2024-01-02",
        "part-0.parquet",
        &rows(&[(1, None)]),
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t"]),
        &[
            "region=eu/day=2024-01-02/part-0.parquet",
            "same keys in the same order",
        ],
    );
}

#[test]
fn bad_selections() {
    let (dir, _) = small_table(2);
    fails(
        &run_in(dir.path(), &["snapshot", "t", "--where", "region ="]),
        &["--where", "[day, region]"],
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t", "--where", "colour = 'red'"]),
        &["colour"],
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t", "--partition", "colour=red"]),
        &["key \"colour\"", "[day, region]"],
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t", "--from", "last week"]),
        &["--from \"last week\" is not a date", "2024-01-03"],
    );
    fails(
        &run_in(dir.path(), &["snapshot", "t", "--from", "2024-02-01"]),
        &["selection matches no partition", "--from 2024-02-01"],
    );
    fails(
        &run_in(
            dir.path(),
            &["verify", "t", "--partition", "day=2030-01-01"],
        ),
        &["selection matches no partition"],
    );
    fails(
        &run_in(
            dir.path(),
            &["snapshot", "t", "--partition-type", "day:float"],
        ),
        &["unknown type \"float\""],
    );
    fails(
        &run_in(
            dir.path(),
            &["snapshot", "t", "--partition-type", "region:date"],
        ),
        &["\"eu\" of key region is not a date"],
    );
    fails(
        &run_in(
            dir.path(),
            &[
                "snapshot",
                "t",
                "--from",
                "2024-01-02",
                "--to",
                "2024-01-01",
            ],
        ),
        &["swap them"],
    );
}

#[test]
fn a_file_that_is_not_a_snapshot() {
    let (dir, _) = small_table(1);
    std::fs::write(dir.path().join("x.json"), "{\"hello\": 1}").unwrap();
    fails(
        &run_in(dir.path(), &["diff", "x.json", "t"]),
        &[
            "x.json",
            "not a backfill snapshot",
            "backfill snapshot TABLE --out FILE",
        ],
    );
    fails(
        &run_in(dir.path(), &["verify", "t", "--against", "x.json"]),
        &["not a backfill snapshot"],
    );
}
