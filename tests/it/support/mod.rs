//! Helpers shared by the integration tests: running the binary, building small tables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray};

pub use backfill::demo::write_parquet;

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `backfill ARGS` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("the backfill binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A command line's whole outcome, as a snapshot holds it: the arguments, the exit code,
/// stdout and stderr.
pub fn transcript(args: &[&str], out: &Output) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect();
    format!(
        "$ backfill {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        shown.join(" "),
        out.code,
        out.stdout,
        out.stderr
    )
}

/// The one place that says what differs between runs of the same command and is masked
/// in CLI snapshots: run ids, times, the temp folder, and the checksum cache's size.
pub fn cli_settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\d{8}T\d{6}Z-[0-9a-f]{6}", "[RUN_ID]");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)",
        "[TIME]",
    );
    s.add_filter(r"entries, [\d.]+ (B|KiB|MiB) at", "entries, [SIZE] at");
    // Estimates are measured: their numbers and samples change from run to run.
    s.add_filter(
        r"estimate: [\d.]+ s for the (\w+) with (\d+) jobs \(.*\)\n",
        "estimate: [N] s for the $1 with $2 jobs ([MEASURED])\n",
    );
    s.add_filter(
        r"took [\d.]+ s and wrote ([^;]*); the plan estimated [\d.]+ s and [^\n]*",
        "took [N] s and wrote $1; the plan estimated [N] s and [SIZE]",
    );
    s.add_filter(r"checked in \d+ ms", "checked in [N] ms");
    // Scaled from however many partitions were timed.
    s.add_filter(r"writes [\d.]+ (B|KiB|MiB|GiB),", "writes [SIZE],");
    let escaped: String = dir
        .display()
        .to_string()
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect();
    s.add_filter(&escaped, "[DIR]");
    s
}

/// Runs `backfill ARGS` in DIR and compares its transcript (arguments, exit code, stdout,
/// stderr; [`cli_settings`] masks what differs between runs) with the snapshot, named
/// after the test or given. Gives the output for further checks.
macro_rules! assert_cli {
    ($dir:expr, $args:expr) => {{
        let args: &[&str] = $args;
        let dir: &std::path::Path = $dir;
        let out = $crate::support::run_in(dir, args);
        $crate::support::cli_settings(dir).bind(|| {
            insta::assert_snapshot!($crate::support::transcript(args, &out));
        });
        out
    }};
    ($name:expr, $dir:expr, $args:expr) => {{
        let args: &[&str] = $args;
        let dir: &std::path::Path = $dir;
        let out = $crate::support::run_in(dir, args);
        $crate::support::cli_settings(dir).bind(|| {
            insta::assert_snapshot!($name, $crate::support::transcript(args, &out));
        });
        out
    }};
}

/// Runs `backfill ARGS` from the repository root (for `testdata/` tables).
pub fn run(args: &[&str]) -> Output {
    run_in(&root(), args)
}

/// A batch `id int64, name utf8` from pairs.
pub fn rows(pairs: &[(i64, Option<&str>)]) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(
        pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
    ));
    let names: ArrayRef = Arc::new(StringArray::from(
        pairs.iter().map(|p| p.1).collect::<Vec<_>>(),
    ));
    RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
}

/// `mib` rows of `id` (0..) and `payload`, 1 MiB of incompressible bytes each: files that
/// are large whatever the codec.
pub fn large_rows(mib: usize) -> RecordBatch {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let payload: Vec<Vec<u8>> = (0..mib)
        .map(|_| {
            (0..1 << 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..mib as i64)) as ArrayRef,
        ),
        (
            "payload",
            Arc::new(BinaryArray::from_iter_values(payload.iter())) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// Writes `batch` as `table/<partition>/<file>`.
pub fn put(table: &Path, partition: &str, file: &str, batch: &RecordBatch) {
    write_parquet(
        &table.join(partition).join(file),
        std::slice::from_ref(batch),
    )
    .unwrap();
}

/// A temp dir holding table `t` with days 2024-01-01..=`days` x regions eu/us, 3 rows each.
pub fn small_table(days: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    for d in 1..=days {
        for (r, region) in ["eu", "us"].iter().enumerate() {
            let base = (d as i64) * 100 + r as i64 * 10;
            let batch = rows(&[(base, Some("a")), (base + 1, None), (base + 2, Some(""))]);
            put(
                &table,
                &format!("day=2024-01-{d:02}/region={region}"),
                "part-0.parquet",
                &batch,
            );
        }
    }
    (dir, table)
}

/// The JSON a command prints, which must succeed.
pub fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run_in(dir, args);
    assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `(partition, status)` of each partition of a run report.
pub fn partitions_of(v: &serde_json::Value) -> Vec<(String, String)> {
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// `(partition, status, rows_after, checksum_after, slices)` of each partition of a run.
pub fn outcome(report: &serde_json::Value) -> Vec<(String, String, u64, String, u64)> {
    report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["rows_after"].as_u64().unwrap(),
                p["checksum_after"].as_str().unwrap().to_string(),
                p.get("slices").and_then(|s| s.as_u64()).unwrap_or(0),
            )
        })
        .collect()
}

/// The snapshot JSON of a table, via the binary.
/// (Without the checksum cache: tables in `testdata/` are read in place, and the
/// repository gets no work area.)
pub fn snapshot_json(dir: &Path, table: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["snapshot", table, "--json", "--no-cache"];
    args.extend_from_slice(extra);
    let out = run_in(dir, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `"kind partition"` of each finding of a `verify --json` document.
pub fn finding_list(verify_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(verify_json).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["kind"].as_str().unwrap(),
                f["partition"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// `partition -> checksum` of a snapshot JSON document.
pub fn checksums(snapshot: &serde_json::Value) -> Vec<(String, String)> {
    snapshot["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["checksum"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub mod engines;
pub mod faulty;

/// Makes sure `cmd` runs (`cmd ARG` succeeds), installing Debian's `package` with apt-get
/// when it does not (as `.ci/run` does beforehand); `who` needs it, for the message.
pub fn ensure_command(cmd: &str, arg: &str, package: &str, who: &str) {
    let has = || {
        Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has() {
        return;
    }
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && has(),
        "{who} needs `{cmd}`: install it (apt-get install {package})"
    );
}

/// Headless Chromium: the page `file` as the browser leaves its DOM once it has loaded
/// and run its scripts, and a screenshot of it at `png` (`width` x `height`).
pub fn browse(file: &Path, png: &Path, width: u32, height: u32) -> String {
    static CHROMIUM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHROMIUM
        .get_or_init(|| ensure_command("chromium", "--version", "chromium", "the report tests"));
    let profile = tempfile::tempdir().unwrap();
    let run = |what: &str| {
        // No network: the page must need none, and Chromium's own calls out are refused.
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!("--window-size={width},{height}"),
                what,
                &format!("file://{}", file.display()),
            ])
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&format!("--screenshot={}", png.display()));
    run("--dump-dom")
}

/// Copies folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Hashes of every file under `dir` (relative path -> blake3 of the bytes).
pub fn file_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(
                    rel,
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The Parquet files in folder `dir`, in name order (none if it does not exist).
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

/// Writes a SQL file in `dir` and returns its name.
pub fn sql(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

/// Parquet bytes of a batch.
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    buf
}
pub mod proxy;
pub mod s3;

/// Runs `backfill ARGS` in `dir` with extra environment.
pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_backfill"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .output()
        .expect("the backfill binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
