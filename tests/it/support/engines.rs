//! The engines that wrote `testdata/`'s tables, to read rewritten tables back as their
//! writers do: DuckDB, pyarrow, PySpark, Polars and fastparquet (pinned), in a virtual environment.
//!
//! The Python is `BACKFILL_ENGINES_PYTHON` if set (`.ci/run` sets it), else one installed
//! on first use under the target folder. PySpark needs a Java runtime: without `java` on
//! the path, the Debian package `openjdk-17-jre-headless` is installed on first use (as
//! root), as `.ci/run` does.

use std::path::{Path, PathBuf};

pub const ENGINES: &[&str] = &[
    "duckdb==2.0.1",
    "pyarrow==26.0.1",
    "pyspark==3.5.3",
    "polars==2.1.0",
    "fastparquet==2026.9.0",
];

/// Spark 4, for the type Spark 3 does not have (VARIANT): its own environment.
pub const SPARK4: &[&str] = &["pyspark==4.0.1", "pyarrow==26.0.1"];

/// The Python of `engine`'s environment.
pub fn python(engine: &str) -> PathBuf {
    if engine == "spark4" {
        if let Some(p) = std::env::var_os("BACKFILL_SPARK4_PYTHON") {
            return PathBuf::from(p);
        }
        return super::s3::python_env::python_env("spark4-venv", SPARK4, "the Spark 4 tests")
            .join("bin/python");
    }
    if let Some(p) = std::env::var_os("BACKFILL_ENGINES_PYTHON") {
        return PathBuf::from(p);
    }
    super::s3::python_env::python_env("engines-venv-3", ENGINES, "the round-trip tests")
        .join("bin/python")
}

fn ensure_java() {
    static JAVA: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    JAVA.get_or_init(|| {
        super::ensure_command("java", "-version", "openjdk-17-jre-headless", "PySpark");
    });
}

/// What `engine` sees in the table at `dir` (`testdata/engine_read.py`'s JSON); `spark4`
/// is Spark 4's reader.
pub fn read(engine: &str, dir: &Path, exclude_k: Option<&str>) -> serde_json::Value {
    if engine.starts_with("spark") {
        ensure_java();
    }
    let mut cmd = std::process::Command::new(python(engine));
    cmd.arg(super::root().join("testdata/engine_read.py"))
        .arg(engine.trim_end_matches('4'))
        .arg(dir)
        .env("TZ", "UTC");
    if let Some(k) = exclude_k {
        cmd.args(["--exclude-k", k]);
    }
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "{engine} could not read {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
