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
        &["--where \"region =\" is not a SQL predicate"],
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

/// A one-file partition of one INT32 column, described by `message`, storing `values`.
fn int32_file(table: &std::path::Path, partition: &str, message: &str, values: &[i32]) {
    use std::sync::Arc;

    use parquet::data_type::Int32Type;
    use parquet::file::writer::SerializedFileWriter;

    let schema = parquet::schema::parser::parse_message_type(message).unwrap();
    let dir = table.join(partition);
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
    let mut w = SerializedFileWriter::new(file, Arc::new(schema), Default::default()).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    let defs = vec![1; values.len()];
    c.typed::<Int32Type>()
        .write_batch(values, Some(&defs), None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

/// A file whose `INT(8)` column stores 1 and 300 (a writer's bug): the Arrow reader
/// gives 300 as 44.
fn int8_holding_300(table: &std::path::Path, partition: &str) {
    let message = "message m { optional int32 x (INTEGER(8,true)); }";
    int32_file(table, partition, message, &[1, 300]);
}

#[test]
fn a_file_the_reader_would_convert_with_a_loss_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    int8_holding_300(&t, "p=1");
    let expect = [
        "p=1/part-0.parquet",
        "column x: row 1 of the file reads as 44 where the file stores 300",
    ];
    fails(&run_in(dir.path(), &["snapshot", "t"]), &expect);
    // verify reports it as a finding about the file.
    let out = run_in(dir.path(), &["verify", "t"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    for n in &expect[1..] {
        assert!(out.stdout.contains(n), "{n:?} not in {}", out.stdout);
    }
    let before = crate::support::file_hashes(&t);
    std::fs::write(dir.path().join("f.sql"), "SELECT * FROM source").unwrap();
    // run fails the partition and leaves it.
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", "f.sql", "--partition", "p=1"],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("p=1        failed"), "{}", out.stdout);
    for n in &expect {
        assert!(out.stdout.contains(n), "{n:?} not in {}", out.stdout);
    }
    assert_eq!(crate::support::file_hashes(&t), before);
    // Named as the preflight's sample, it is refused by name: the check asked for is not
    // skipped quietly.
    for cmd in ["plan", "run"] {
        let out = run_in(
            dir.path(),
            &[
                cmd,
                "t",
                "--sql",
                "f.sql",
                "--all",
                "--preflight-partition",
                "p=1",
                "--json",
            ],
        );
        fails(&out, &expect);
    }
    assert_eq!(crate::support::file_hashes(&t), before);
}

/// A file whose column is annotated UNKNOWN (always NULL, as writers store a NULL-typed
/// column) but stores 5 and 6 (a writer's bug): the Arrow reader gives NULLs.
fn null_column_holding_values(table: &std::path::Path, partition: &str) {
    let message = "message m { optional int32 n (UNKNOWN); }";
    int32_file(table, partition, message, &[5, 6]);
}

#[test]
fn a_null_column_that_stores_values_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    null_column_holding_values(&t, "p=1");
    fails(
        &run_in(dir.path(), &["snapshot", "t"]),
        &[
            "p=1/part-0.parquet",
            "column n: row 0 of the file reads as NULL where the file stores 5",
        ],
    );
}

#[test]
fn a_polars_int128_column_is_refused_by_name_not_a_crash() {
    // Polars writes Int128 as a bare FIXED_LEN_BYTE_ARRAY(16) and names a 128-bit integer
    // in the file's Arrow schema, a type the Arrow reader has no name for.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    crate::support::copy_dir(&crate::support::root().join("testdata/polars_int128"), &t);
    let expect = [
        "p=1/part-0.parquet",
        "column `big` a 128-bit integer",
        "Decimal(38, 0)",
    ];
    fails(&run_in(dir.path(), &["snapshot", "t"]), &expect);
    let out = run_in(dir.path(), &["verify", "t"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(expect[1]), "{}", out.stdout);
    // Alone, the file leaves nothing to plan the SQL over: the run says why.
    std::fs::write(
        dir.path().join("f.sql"),
        "SELECT * FROM source WHERE k <> 2",
    )
    .unwrap();
    let before = crate::support::file_hashes(&t);
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", "f.sql", "--partition", "p=1"],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    for n in &expect {
        assert!(out.stderr.contains(n), "{n:?} not in {}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Beside a readable partition, its own partition fails, naming it, and is left.
    let p2 = t.join("p=2");
    std::fs::create_dir_all(&p2).unwrap();
    std::fs::copy(
        crate::support::root().join("testdata/null_columns/p=1/part-0.parquet"),
        p2.join("part-0.parquet"),
    )
    .unwrap();
    let out = run_in(dir.path(), &["run", "t", "--sql", "f.sql", "--all"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("p=1        failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("p=2        rewritten"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(expect[1]), "{}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let after = crate::support::file_hashes(&t);
    for (f, h) in &before {
        assert_eq!(after.get(f), Some(h), "{f} changed");
    }
    // As a lookup table, refused before anything is read.
    let work = tempfile::tempdir().unwrap();
    let events = work.path().join("t");
    crate::support::copy_dir(
        &crate::support::root().join("testdata/duckdb_events"),
        &events,
    );
    std::fs::write(
        work.path().join("f.sql"),
        "SELECT e.* FROM source e JOIN big ON e.user_id = big.k",
    )
    .unwrap();
    let arg = format!("big={}", t.join("p=1/part-0.parquet").display());
    let before = crate::support::file_hashes(&events);
    let out = run_in(
        work.path(),
        &["run", "t", "--sql", "f.sql", "--all", "--table", &arg],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(expect[1]), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(crate::support::file_hashes(&events), before);
}

/// Every flag is checked before the table is read: each of these names the flag and what
/// to write instead, while TABLE (`nowhere`) does not even exist. Pinned as transcripts.
#[test]
fn bad_flags_are_refused_before_the_table_is_read() {
    let (dir, _) = small_table(1);
    std::fs::write(dir.path().join("delete.sql"), "DELETE FROM source").unwrap();
    std::fs::write(dir.path().join("two.sql"), "SELECT 1; SELECT 2").unwrap();
    std::fs::write(dir.path().join("ok.sql"), "SELECT * FROM source").unwrap();
    let cases: [(&str, &[&str]); 8] = [
        (
            "where_syntax",
            &["snapshot", "nowhere", "--where", "region ="],
        ),
        (
            "partition_shape",
            &["verify", "nowhere", "--partition", "2024-01-01"],
        ),
        (
            "partition_type",
            &["plan", "nowhere", "--partition-type", "day:float"],
        ),
        (
            "lookup_table",
            &[
                "run", "nowhere", "--sql", "ok.sql", "--all", "--table", "rates",
            ],
        ),
        (
            "lookup_table_missing",
            &[
                "plan",
                "nowhere",
                "--sql",
                "ok.sql",
                "--table",
                "rates=lake/rates",
            ],
        ),
        ("shard", &["run", "nowhere", "--run", "R", "--shard", "3/2"]),
        (
            "sql_not_a_query",
            &["run", "nowhere", "--sql", "delete.sql", "--all"],
        ),
        (
            "sql_two_statements",
            &["plan", "nowhere", "--sql", "two.sql"],
        ),
    ];
    for (name, args) in cases {
        let out = assert_cli!(format!("refused_{name}"), dir.path(), args);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("nowhere"), "{name}: {}", out.stderr);
    }
    // With good flags, the table is what is wrong.
    let out = assert_cli!(
        "refused_missing_table",
        dir.path(),
        &["snapshot", "nowhere", "--where", "region = 'eu'"]
    );
    assert_eq!(out.code, 2);
}
