"""Writes the small tables in testdata/ with other tools (see README.md here).

Run from the repository root:  python testdata/make_tables.py
Needs: duckdb, pyarrow, pyspark (with a Java runtime). Output is committed; rerun only
to change the tables, and update the expected values in tests/it/ with it.
"""
import datetime as dt
import decimal
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

# The shared rows: the same logical content for every writer.
ROWS = []
for d, day in enumerate(["2024-01-01", "2024-01-02", "2024-01-03"]):
    for r, region in enumerate(["eu", "us"]):
        for i in range(5 + d + r):
            rid = d * 100 + r * 10 + i
            ROWS.append(
                dict(
                    id=rid,
                    user_id=(rid * 37) % 11,
                    kind=["view", "click", "buy"][i % 3] if i != 4 else None,
                    amount=decimal.Decimal(rid * 125) / 100 if i % 2 == 0 else None,
                    score=[0.5, -0.0, float("nan"), 1e300, -2.25][i % 5],
                    ok=(i % 2 == 0),
                    created=dt.date(2023, 12, 1) + dt.timedelta(days=rid % 40),
                    event_date=day,
                    region=region,
                )
            )
# One row whose region is NULL, to show each writer's NULL partition folder.
ROWS.append(dict(id=999, user_id=1, kind="view", amount=None, score=1.0, ok=True,
                 created=dt.date(2024, 1, 1), event_date="2024-01-03", region=None))


def fresh(name):
    path = os.path.join(HERE, name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def duckdb_table():
    import duckdb

    path = fresh("duckdb_events")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (id BIGINT, user_id INTEGER, kind VARCHAR, amount DECIMAL(10,2), score DOUBLE,"
        " ok BOOLEAN, created DATE, event_date DATE, region VARCHAR)"
    )
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[r["id"], r["user_id"], r["kind"], r["amount"], r["score"], r["ok"], r["created"], r["event_date"], r["region"]] for r in ROWS],
    )
    con.execute(f"COPY t TO '{path}' (FORMAT PARQUET, PARTITION_BY (event_date, region))")


def pyarrow_table():
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("user_id", pa.int32()),
            ("kind", pa.string()),
            ("amount", pa.decimal128(10, 2)),
            ("score", pa.float64()),
            ("ok", pa.bool_()),
            ("created", pa.date32()),
            ("event_date", pa.date32()),
            ("region", pa.string()),
        ]
    )
    rows = [dict(r, event_date=dt.date.fromisoformat(r["event_date"])) for r in ROWS]
    table = pa.Table.from_pylist(rows, schema=schema)
    path = fresh("pyarrow_events")
    ds.write_dataset(
        table,
        path,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("event_date", pa.date32()), ("region", pa.string())]), flavor="hive"),
        # Small row groups and two files per partition: layout must not matter.
        max_rows_per_file=4,
        max_rows_per_group=2,
        existing_data_behavior="delete_matching",
    )


def pyarrow_types():
    """Every type family the checksum covers, with awkward partition values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = fresh("pyarrow_types")
    n = 4
    table = pa.table(
        {
            "i8": pa.array([1, -1, None, 127], pa.int8()),
            "u64": pa.array([0, 2**64 - 1, None, 7], pa.uint64()),
            "f32": pa.array([1.5, float("nan"), -0.0, None], pa.float32()),
            "dec38": pa.array([decimal.Decimal("1.000000000000000000001"), None, decimal.Decimal("-5"), decimal.Decimal("0")], pa.decimal128(38, 21)),
            "ts_ms_utc": pa.array([0, 1_700_000_000_000, None, -1], pa.timestamp("ms", tz="UTC")),
            "ts_ns": pa.array([0, 1, None, 2], pa.timestamp("ns")),
            "t_us": pa.array([0, 3_600_000_000, None, 1], pa.time64("us")),
            "large_s": pa.array(["", None, "x", "é"], pa.large_string()),
            "dict_s": pa.array(["a", "b", "a", None]).dictionary_encode(),
            "bin": pa.array([b"", b"\x00", None, b"ab"], pa.binary()),
            "fixed": pa.array([b"abcd", b"\x00\x00\x00\x00", None, b"zzzz"], pa.binary(4)),
            "list_i": pa.array([[1, 2], [], None, [None, 3]], pa.list_(pa.int32())),
            "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": None}, {"a": 2, "b": ""}],
                           pa.struct([("a", pa.int64()), ("b", pa.string())])),
            "mp": pa.array([[("k", 1)], [], None, [("a", None), ("b", 2)]], pa.map_(pa.string(), pa.int64())),
        }
    )
    assert table.num_rows == n
    # Partition values that need escaping, and a literal string that spells Hive's NULL marker.
    for folder in ["city=S%C3%A3o Paulo", "city=a%2Fb%3Ac", "city=__HIVE_DEFAULT_PARTITION__"]:
        os.makedirs(os.path.join(path, folder))
        pq.write_table(table, os.path.join(path, folder, "part-0.parquet"))


def spark_table():
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    schema = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("user_id", T.IntegerType()),
            T.StructField("kind", T.StringType()),
            T.StructField("amount", T.DecimalType(10, 2)),
            T.StructField("score", T.DoubleType()),
            T.StructField("ok", T.BooleanType()),
            T.StructField("created", T.DateType()),
            T.StructField("event_date", T.DateType()),
            T.StructField("region", T.StringType()),
        ]
    )
    rows = [
        (r["id"], r["user_id"], r["kind"], r["amount"], r["score"], r["ok"], r["created"], dt.date.fromisoformat(r["event_date"]), r["region"])
        for r in ROWS
    ]
    path = fresh("spark_events")
    df = spark.createDataFrame(rows, schema).repartition(2)
    df.write.partitionBy("event_date", "region").parquet(path)
    spark.stop()


if __name__ == "__main__":
    duckdb_table()
    pyarrow_table()
    pyarrow_types()
    spark_table()
