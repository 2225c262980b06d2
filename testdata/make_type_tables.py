"""Writes the round-trip tables in testdata/ (`duckdb_types/`, `duckdb_intervals/`,
`pyarrow_alltypes/`, `pyarrow_int96_nanos/`, `spark_types/` with INT96 timestamps,
`spark_types_micros/`, `spark_types_legacy/`, `polars_types/`, `polars_int128/`, `null_columns/`, `fastparquet_summary/`,
`duckdb_decimals/`): every type each
engine writes to Parquet, NULLs in every column, extreme values. Each table has an int partition key `p` (1, 2), a row key `k` (unique) and a
string `s`; the round-trip tests rewrite them and read them back with `engine_read.py`.

Run from the repository root:  python testdata/make_type_tables.py
Needs: duckdb==2.0.1, pyarrow==26.0.1, pyspark==3.5.3 (with a Java 17 runtime),
polars==2.1.0; `fastparquet_summary/` (argument `fastparquet`): fastparquet==2026.9.0,
pandas.
"""
import datetime as dt
import decimal
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fresh(name):
    path = os.path.join(HERE, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def duckdb_types():
    import duckdb

    out = fresh("duckdb_types")
    con = duckdb.connect()
    con.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    con.execute(
        f"""
CREATE TABLE t AS SELECT * FROM (VALUES
 (1, 1, 'a', true, (-128)::TINYINT, 255::UTINYINT, (-32768)::SMALLINT, 65535::USMALLINT,
  (-2147483648)::INTEGER, 4294967295::UINTEGER, (-9223372036854775808)::BIGINT,
  18446744073709551615::UBIGINT,
  170141183460469231731687303715884105727::HUGEINT, 340282366920938463463374607431768211455::UHUGEINT,
  'NaN'::FLOAT, '-0.0'::DOUBLE, (-1.00)::DECIMAL(4,2), 123456789012345.678::DECIMAL(18,3),
  (-12345678901234567890123456.7890123456)::DECIMAL(38,10),
  DATE '0001-01-01', TIME '23:59:59.999999', TIMETZ '12:34:56+02',
  TIMESTAMP '9999-12-31 23:59:59.999999', TIMESTAMP_S '1970-01-01 00:00:01',
  TIMESTAMP_MS '2024-02-29 12:00:00.123', TIMESTAMP_NS '2262-04-11 23:47:16.854775',
  TIMESTAMPTZ '0001-01-01 00:00:00+00',
  INTERVAL '14 months 3 days 4 hours', uuid '00112233-4455-6677-8899-aabbccddeeff',
  '{{"a": [1, 2]}}'::JSON, 'happy'::mood, '\\x00\\xFF'::BLOB,
  [INTERVAL '1 month', NULL], {{'iv': INTERVAL '2 months 1 day', 'n': 1}},
  [1, 2, 3]::INTEGER[3], MAP {{'k': 1, 'z': NULL}}, [[1], [], NULL, [2, NULL]],
  42::VARIANT, 'POINT(1 2)'::GEOMETRY),
 (1, 2, 'b', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  'inf'::FLOAT, '-inf'::DOUBLE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, INTERVAL '2 months', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 3, NULL, false, 127::TINYINT, 0::UTINYINT, 32767::SMALLINT, 0::USMALLINT,
  2147483647::INTEGER, 0::UINTEGER, 9223372036854775807::BIGINT, 0::UBIGINT,
  (-170141183460469231731687303715884105727::HUGEINT - 1), 0::UHUGEINT,
  (-1.5)::FLOAT, 1e308::DOUBLE, 99.99::DECIMAL(4,2), (-0.001)::DECIMAL(18,3),
  0.0000000001::DECIMAL(38,10),
  DATE '9999-12-31', TIME '00:00:00', TIMETZ '00:00:00-05',
  TIMESTAMP '0001-01-01 00:00:00', TIMESTAMP_S '1900-01-01 00:00:00',
  TIMESTAMP_MS '1969-12-31 23:59:59.999', TIMESTAMP_NS '1677-09-21 00:12:43.145225123',
  TIMESTAMPTZ '9999-12-31 23:59:59.999999+00',
  INTERVAL '1 day 0.001 seconds', uuid 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '[]'::JSON, 'sad'::mood, ''::BLOB,
  [], {{'iv': NULL, 'n': NULL}}, [NULL, 2, 3]::INTEGER[3], MAP {{}}, [],
  {{'a': [1, 2], 'b': 'x'}}::VARIANT, 'LINESTRING(0 0, 3 4)'::GEOMETRY)
) t(p, k, s, bo, i8, u8, i16, u16, i32, u32, i64, u64, h, uh, f32, f64, dec4, dec18, dec38,
    d, t, ttz, ts, ts_s, ts_ms, ts_ns, tstz, iv, u, j, e, b, liv, siv, arr, m, ll, v, g)
"""
    )
    # INTERVAL has a table of its own (`duckdb_intervals`, below).
    con.execute(
        f"COPY (SELECT * EXCLUDE (iv, liv, siv) FROM t) TO '{out}' (FORMAT parquet, PARTITION_BY (p))"
    )


def duckdb_intervals():
    import duckdb

    out = fresh("duckdb_intervals")
    con = duckdb.connect()
    # Months that a days-and-milliseconds reading would drop, the largest value of each
    # field (DuckDB refuses to write negative intervals to Parquet: the format's fields
    # are unsigned), NULLs at every level.
    con.execute(
        f"""
COPY (SELECT * FROM (VALUES
 (1, 1, 'a', INTERVAL '14 months 3 days 4 hours', [INTERVAL '1 month', NULL],
  {{'iv': INTERVAL '2 months 1 day', 'n': 1}}),
 (1, 2, 'b', INTERVAL '2 months', NULL, NULL),
 (1, 4, NULL, NULL, [NULL], {{'iv': NULL, 'n': NULL}}),
 (2, 3, NULL, INTERVAL '1 day 0.001 seconds', [], {{'iv': NULL, 'n': NULL}}),
 (2, 5, 'e', to_months(2147483647) + to_days(2147483647) + to_milliseconds(4294967295),
  [INTERVAL '0 seconds'], {{'iv': to_months(12), 'n': 0}})
) t(p, k, s, iv, liv, siv)) TO '{out}' (FORMAT parquet, PARTITION_BY (p))
"""
    )


def duckdb_decimals():
    """DuckDB stores every DECIMAL of precision 19 to 38 in 16 bytes, where 9 to 15 hold
    precision 19 to 35: wider than the precision needs, at the top level and nested."""
    import duckdb

    out = fresh("duckdb_decimals")
    con = duckdb.connect()
    con.execute(
        f"""
COPY (SELECT * FROM (VALUES
 (1, 1, 'a', 9999999999999999999::DECIMAL(19,0), (-123456789012345678.91)::DECIMAL(20,2),
  (-1234567890123456789012.123456)::DECIMAL(28,6), 99999999999999999999999999999999999::DECIMAL(35,0),
  (-12345678901234567890123456.7890123456)::DECIMAL(38,10), 1.5::DECIMAL(9,2),
  {{'d': (-1234567890123456789012.345)::DECIMAL(25,3)}}, [1.0000::DECIMAL(22,4), NULL]),
 (1, 2, 'b', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (1, 3, NULL, (-9999999999999999999)::DECIMAL(19,0), 0.01::DECIMAL(20,2), 0::DECIMAL(28,6),
  (-99999999999999999999999999999999999)::DECIMAL(35,0), 0.0000000001::DECIMAL(38,10), (-9999999.99)::DECIMAL(9,2),
  {{'d': NULL}}, []),
 (2, 4, 'd', 1::DECIMAL(19,0), (-0.01)::DECIMAL(20,2), 0.000001::DECIMAL(28,6), (-1)::DECIMAL(35,0),
  NULL, 0::DECIMAL(9,2), {{'d': 0.001::DECIMAL(25,3)}}, [(-99999999999999999.9999)::DECIMAL(22,4)])
) t(p, k, s, d19, d20, d28, d35, d38, d9, sd, ld)) TO '{out}' (FORMAT parquet, PARTITION_BY (p))
"""
    )


def pyarrow_alltypes():
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = fresh("pyarrow_alltypes")
    D = decimal.Decimal
    cols = {
        "k": pa.array([1, 2, 3], pa.int64()),
        "s": pa.array(["a", "b", None]),
        "i8": pa.array([-128, None, 127], pa.int8()),
        "u64": pa.array([2**64 - 1, None, 0], pa.uint64()),
        "f16": pa.array([None, None, None], pa.float16()),
        "f32": pa.array([float("nan"), -0.0, None], pa.float32()),
        "d32": pa.array([dt.date(1, 1, 1), None, dt.date(9999, 12, 31)], pa.date32()),
        "d64": pa.array([dt.date(1970, 1, 2), None, dt.date(2024, 2, 29)], pa.date64()),
        "t32": pa.array([dt.time(23, 59, 59), None, dt.time(0)], pa.time32("s")),
        "t64": pa.array([dt.time(1, 2, 3, 4), None, dt.time(0)], pa.time64("us")),
        "ts_s_tz": pa.array([0, None, 86400], pa.timestamp("s", tz="America/New_York")),
        "ts_ms_tz": pa.array([-1, None, 1], pa.timestamp("ms", tz="+05:30")),
        "ts_us": pa.array([-62135596800000000, None, 253402300799999999], pa.timestamp("us")),
        "ts_ns_utc": pa.array([-2**63 + 1, None, 2**63 - 1], pa.timestamp("ns", tz="UTC")),
        "dec9": pa.array([D("-1.00"), None, D("9999999.99")], pa.decimal128(9, 2)),
        "dec20": pa.array([D("-1.00"), None, D("1.23")], pa.decimal128(20, 2)),
        "dec256_20": pa.array([D("-1.00"), None, D("1.23")], pa.decimal256(20, 2)),
        "dec256_60": pa.array([D("-1" + "0" * 58), None, D("0.5")], pa.decimal256(60, 1)),
        "str_large": pa.array(["x" * 3, None, ""], pa.large_string()),
        "str_dict": pa.array(["p", "q", None]).dictionary_encode(),
        "bin": pa.array([b"\x00", None, b""], pa.binary()),
        "bin_fixed": pa.array([b"abcd", None, b"\xff" * 4], pa.binary(4)),
        "lst": pa.array([[1, None], None, []], pa.list_(pa.int32())),
        "lst_large": pa.array([["a"], [], None], pa.large_list(pa.string())),
        "lst_fixed": pa.array([[1, 2], None, [None, 3]], pa.list_(pa.int16(), 2)),
        "nested": pa.array([[[1], []], None, [None]], pa.list_(pa.list_(pa.int64()))),
        "st": pa.array(
            [{"a": 1, "b": "x"}, None, {"a": None, "b": None}],
            pa.struct([("a", pa.int32()), ("b", pa.string())]),
        ),
        "mp": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
        "dur": pa.array([1, None, -1], pa.duration("ms")),
        "ts_tokyo": pa.array([1700000000000000, None, 0], pa.timestamp("us", tz="Asia/Tokyo")),
    }
    part = [1, 1, 2]
    table = pa.table(cols)
    for p in (1, 2):
        rows = [i for i, v in enumerate(part) if v == p]
        sub = table.take(pa.array(rows))
        folder = os.path.join(out, f"p={p}")
        os.makedirs(folder)
        pq.write_table(sub, os.path.join(folder, "part-0.parquet"))


def pyarrow_int96_nanos():
    """INT96 holding nanoseconds, as Impala writes them: refused, never truncated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = fresh("pyarrow_int96_nanos")
    ts = pa.array([1_700_000_000_123_456_789, None, 1_700_000_000_000_001_000], pa.timestamp("ns"))
    table = pa.table({"k": pa.array([1, 2, 3], pa.int64()), "ts": ts, "s": ["a", "b", None]})
    for p, rows in ((1, [0, 1]), (2, [2])):
        folder = os.path.join(out, f"p={p}")
        os.makedirs(folder)
        pq.write_table(
            table.take(pa.array(rows)),
            os.path.join(folder, "part-0.parquet"),
            use_deprecated_int96_timestamps=True,
            store_schema=False,
        )


def spark_types(name, timestamps, legacy=False):
    """`timestamps`: Spark's `outputTimestampType` (its default is INT96); `legacy`: Spark's
    `writeLegacyFormat`, as Hive-compatible tables are written (decimals as fixed-length
    bytes, lists as `bag`/`array` groups, maps as `key_value`)."""
    from pyspark.sql import SparkSession

    out = fresh(name)
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        # Ancient dates as they are (proleptic Gregorian), as Spark 3 reads them back.
        .config("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED")
        .config("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED")
        .config("spark.sql.parquet.outputTimestampType", timestamps)
        .config("spark.sql.parquet.writeLegacyFormat", "true" if legacy else "false")
        .getOrCreate()
    )
    spark.sql(
        """
        SELECT * FROM VALUES
          (1, 1, 'a', TIMESTAMP '0001-01-01 00:00:00', TIMESTAMP_NTZ '9999-12-31 23:59:59.999999',
           DATE '0001-01-01', CAST('NaN' AS DOUBLE), CAST('-0.0' AS FLOAT),
           CAST(-1.00 AS DECIMAL(20,2)), CAST(1.5 AS DECIMAL(38,18)), CAST(7 AS DECIMAL(5,0)),
           INTERVAL '1-2' YEAR TO MONTH, INTERVAL '3 04:05:06.789' DAY TO SECOND,
           array(TIMESTAMP '2024-01-01 00:00:00', NULL), named_struct('t', TIMESTAMP '1900-01-01 00:00:00', 'n', 1),
           map('k', 1L), X'00FF', CAST(-1 AS TINYINT), CAST(-1 AS SMALLINT)),
          (1, 2, 'b', NULL, NULL, NULL, CAST('Infinity' AS DOUBLE), NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (2, 3, NULL, TIMESTAMP '2262-04-12 00:00:00.123456', TIMESTAMP_NTZ '1677-09-21 00:00:00',
           DATE '9999-12-31', CAST(1e308 AS DOUBLE), CAST(1.5 AS FLOAT),
           CAST(99.99 AS DECIMAL(20,2)), CAST(-0.000000000000000001 AS DECIMAL(38,18)), CAST(-7 AS DECIMAL(5,0)),
           INTERVAL '-0-1' YEAR TO MONTH, INTERVAL '-0 00:00:01' DAY TO SECOND,
           array(), named_struct('t', NULL, 'n', NULL), map(), X'', CAST(127 AS TINYINT), CAST(0 AS SMALLINT))
        AS t(p, k, s, ts, ts_ntz, d, f64, f32, dec20, dec38, dec5, ym, dts, lts, sts, m, b, i8, i16)
        """
    ).coalesce(1).write.partitionBy("p").parquet(out)
    spark.stop()


def spark4_variant():
    """Spark 4's VARIANT (run with pyspark 4: `spark4_variant` is not in the default set)."""
    from pyspark.sql import SparkSession

    out = fresh("spark4_variant")
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sql(
        """
        SELECT * FROM VALUES
         (1, 1, 'a', parse_json('{"a": [1, 2], "b": "x"}')),
         (1, 2, 'b', parse_json('42')),
         (2, 3, NULL, parse_json('null')),
         (2, 4, 'd', CAST(NULL AS VARIANT)),
         (1, 5, 'e', parse_json('{"n": {"deep": [true, 1.5, "s"]}}'))
         AS t(p, k, s, v)
        """
    ).select("k", "s", "v", "p").write.partitionBy("p").parquet(out)
    spark.stop()


def polars_types():
    """Every type Polars writes (Int128 apart: `polars_int128/`), NULLs in every column."""
    import polars as pl

    out = fresh("polars_types")
    D = decimal.Decimal
    df = pl.DataFrame(
        {
            "k": pl.Series([1, 2, 3], dtype=pl.Int64),
            "s": ["a", "b", None],
            "i8": pl.Series([-128, None, 127], dtype=pl.Int8),
            "i16": pl.Series([-32768, None, 32767], dtype=pl.Int16),
            "u8": pl.Series([255, None, 0], dtype=pl.UInt8),
            "u32": pl.Series([4294967295, None, 0], dtype=pl.UInt32),
            "u64": pl.Series([2**64 - 1, None, 0], dtype=pl.UInt64),
            "f32": pl.Series([float("nan"), -0.0, None], dtype=pl.Float32),
            "f64": [1e300, None, -2.25],
            "dec": pl.Series([D("-1.00"), None, D("9999999999.99")], dtype=pl.Decimal(12, 2)),
            "dec38": pl.Series(
                [D("-1234567890123456789012345678901234.5678"), None, D("0.0001")],
                dtype=pl.Decimal(38, 4),
            ),
            "cat": pl.Series(["x", None, "y"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", "hi", None], dtype=pl.Enum(["lo", "hi"])),
            "bin": [b"\x00\xff", None, b""],
            "b": [True, None, False],
            "d": [dt.date(1, 1, 1), None, dt.date(9999, 12, 31)],
            "tm": [dt.time(23, 59, 59, 999999), None, dt.time(0)],
            "ts_ms": pl.Series([dt.datetime(1900, 1, 1), None, dt.datetime(2024, 2, 29, 12)], dtype=pl.Datetime("ms")),
            "ts_us_utc": pl.Series([dt.datetime(1970, 1, 1), None, dt.datetime(2262, 4, 12)], dtype=pl.Datetime("us", "UTC")),
            "ts_ns_paris": pl.Series([dt.datetime(2024, 3, 31, 1, 30), None, dt.datetime(1970, 1, 1)], dtype=pl.Datetime("ns", "Europe/Paris")),
            "dur": pl.Series([dt.timedelta(milliseconds=-1500), None, dt.timedelta(days=3)], dtype=pl.Duration("ms")),
            "lst": [[1, None], None, []],
            "lst_s": [["a", None], [], None],
            "arr": pl.Series([[1, 2], None, [None, 3]], dtype=pl.Array(pl.Int32, 2)),
            "st": [{"a": 1, "b": "x"}, None, {"a": None, "b": None}],
            "nested": [[[1], []], None, [None]],
            "n": pl.Series([None, None, None], dtype=pl.Null),
        }
    )
    for p, rows in ((1, [0, 1]), (2, [2])):
        folder = os.path.join(out, f"p={p}")
        os.makedirs(folder)
        df[rows].write_parquet(os.path.join(folder, "part-0.parquet"))

    # Polars writes Int128 as a bare 16-byte FIXED_LEN_BYTE_ARRAY with an Arrow schema
    # naming a 128-bit integer, which neither arrow-rs nor pyarrow reads: refused.
    out = fresh("polars_int128")
    folder = os.path.join(out, "p=1")
    os.makedirs(folder)
    pl.DataFrame(
        {"k": [1, 2], "big": pl.Series([-(2**100), 2**127 - 1], dtype=pl.Int128)}
    ).write_parquet(os.path.join(folder, "part-0.parquet"))


def null_columns():
    """A NULL-typed column (Parquet INT32 with the UNKNOWN annotation) as pyarrow, DuckDB
    and Polars write it: the same rows in p=1, p=2 and p=3."""
    import duckdb
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = fresh("null_columns")
    for p in (1, 2, 3):
        os.makedirs(os.path.join(out, f"p={p}"))
    pq.write_table(
        pa.table({"k": pa.array([1, 2], pa.int64()), "n": pa.array([None, None], pa.null())}),
        os.path.join(out, "p=1", "part-0.parquet"),
    )
    duckdb.sql(
        "COPY (SELECT * FROM (VALUES (1::BIGINT, NULL), (2, NULL)) t(k, n)) "
        f"TO '{os.path.join(out, 'p=2', 'part-0.parquet')}' (FORMAT parquet)"
    )
    pl.DataFrame({"k": [1, 2], "n": pl.Series([None, None], dtype=pl.Null)}).write_parquet(
        os.path.join(out, "p=3", "part-0.parquet")
    )


def fastparquet_summary():
    """A table as fastparquet writes one (`file_scheme="hive"`): `_metadata` and
    `_common_metadata` beside the partitions, listing every file's row groups; pandas
    types (categorical, nullable integers, NaN, naive and zoned datetimes); two row groups
    per file."""
    import fastparquet
    import numpy as np
    import pandas as pd

    out = fresh("fastparquet_summary")
    n = 6
    df = pd.DataFrame(
        {
            "p": [1, 1, 1, 2, 2, 2],
            "k": np.arange(n, dtype="int64"),
            "s": ["a", "é", None, "", "d", "x" * 40],
            "f": [1.5, -0.0, np.nan, 4.0, float("inf"), -2.25],
            "ts": pd.to_datetime(
                ["2024-01-01 10:00", "1900-01-01", None, "2262-04-11", "1970-01-01", "2024-02-29 23:59:59.999999"],
                format="ISO8601",
            ),
            "tz": pd.to_datetime(["2024-01-01 10:00"] * n).tz_localize("Europe/Paris"),
            "cat": pd.Categorical(["x", "y", None, "y", "x", "z"]),
            "ni": pd.array([1, None, -3, 2**31 - 1, -(2**31), 0], dtype="Int32"),
            "u8": np.array([0, 1, 2, 253, 254, 255], dtype="uint8"),
            "b": pd.array([True, False, None, True, None, False], dtype="boolean"),
        }
    )
    fastparquet.write(out, df, partition_on=["p"], file_scheme="hive", row_group_offsets=[0, 2])


if __name__ == "__main__":
    which = sys.argv[1:] or ["duckdb", "pyarrow", "spark", "polars"]
    if "duckdb" in which:
        duckdb_types()
    if "duckdb" in which or "duckdb_intervals" in which:
        duckdb_intervals()
    if "duckdb" in which or "duckdb_decimals" in which:
        duckdb_decimals()
    if "pyarrow" in which:
        pyarrow_alltypes()
        pyarrow_int96_nanos()
    if "spark" in which:
        spark_types("spark_types", "INT96")
        spark_types("spark_types_micros", "TIMESTAMP_MICROS")
    if "spark_legacy" in which:
        spark_types("spark_types_legacy", "INT96", legacy=True)
    if "spark4_variant" in which:
        spark4_variant()
    if "polars" in which:
        polars_types()
        null_columns()
    if "fastparquet" in which:
        fastparquet_summary()
