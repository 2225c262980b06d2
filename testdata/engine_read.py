"""Reads a Hive-partitioned table back with the engine that wrote it and prints what that
engine sees, as JSON: column types, rows (sorted by the row key `k`, then the partition key `p`, every value as the
engine's own text for it), and per column the Parquet descriptions of its leaves across
the table's files (physical type, logical type, converted type, repetition), plus the
file-level metadata keys.

    python testdata/engine_read.py duckdb|pyarrow|spark|polars|fastparquet TABLE_DIR [--exclude-k N]

The round-trip tests run it before and after a rewrite and compare (rows with
`k = N` dropped from the "before" side when the rewrite deleted them).
"""
import glob
import json
import os
import sys


def parquet_files(table):
    return sorted(
        f
        for f in glob.glob(os.path.join(table, "**", "*.parquet"), recursive=True)
        if not any(part.startswith((".", "_")) for part in os.path.relpath(f, table).split(os.sep))
    )


def parquet_descriptions(table):
    import pyarrow.parquet as pq

    leaves = {}
    keys = set()
    for f in parquet_files(table):
        meta = pq.ParquetFile(f).metadata
        keys.update(k.decode() for k in (meta.metadata or {}).keys())
        schema = meta.schema
        # The root's name ("required group field_id=-1 schema {"): fastparquet refuses to
        # combine files whose roots are named differently.
        leaves.setdefault("(root)", set()).add(str(schema).splitlines()[1].split()[-2])
        for i in range(len(schema)):
            c = schema.column(i)
            desc = "{}{} {} {} def={} rep={}".format(
                c.physical_type,
                f"({c.length})" if c.physical_type == "FIXED_LEN_BYTE_ARRAY" else "",
                c.logical_type,
                c.converted_type,
                c.max_definition_level,
                c.max_repetition_level,
            )
            leaves.setdefault(c.path, set()).add(desc)
    return {p: sorted(d) for p, d in sorted(leaves.items())}, sorted(keys)


def read_duckdb(table):
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{table}/**/*.parquet', hive_partitioning = true)"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    names = list(types)
    # Python's value and DuckDB's own text of it: Python shows an INTERVAL's months as
    # 30 days (and cannot hold the largest), the text does not.
    values = ", ".join(
        "NULL" if "INTERVAL" in types[n] else f'"{n}"' for n in names
    )
    texts = ", ".join(f'CAST("{n}" AS VARCHAR)' for n in names)
    cur = con.execute(f"SELECT {values}, {texts} FROM {src} ORDER BY k, p")
    rows = [
        {n: f"{r[i]!r} | {r[len(names) + i]}" for i, n in enumerate(names)}
        for r in cur.fetchall()
    ]
    return types, rows


def read_pyarrow(table):
    import pyarrow.dataset as ds

    t = ds.dataset(table, format="parquet", partitioning="hive").to_table()
    t = t.sort_by([("k", "ascending"), ("p", "ascending")])
    types = {f.name: str(f.type) for f in t.schema}

    def text(scalar):
        try:
            return repr(scalar.as_py())
        except ValueError:  # outside Python's datetime range: the stored integer
            return f"{scalar.type}:{scalar.value}"

    columns = {n: [text(v) for v in t.column(n)] for n in t.column_names}
    rows = [{n: columns[n][i] for n in t.column_names} for i in range(t.num_rows)]
    return types, rows


def read_polars(table):
    import polars as pl

    df = pl.read_parquet(os.path.join(table, "**", "*.parquet"), hive_partitioning=True).sort("k", "p")
    types = {n: str(t) for n, t in df.schema.items()}
    rows = [{n: repr(v) for n, v in r.items()} for r in df.rows(named=True)]
    return types, rows


def read_fastparquet(table):
    import fastparquet

    df = fastparquet.ParquetFile(table).to_pandas().sort_values(["k", "p"])
    types = {n: str(t) for n, t in df.dtypes.items()}
    rows = [{n: repr(v) for n, v in r.items()} for r in df.astype(object).to_dict("records")]
    return types, rows


def read_spark(table):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.parquet.int96RebaseModeInRead", "CORRECTED")
        .config("spark.sql.parquet.datetimeRebaseModeInRead", "CORRECTED")
        .getOrCreate()
    )
    df = spark.read.parquet(table).orderBy("k", "p")
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    # Spark's own text of each value (Python's datetime cannot hold year 1 in every zone).
    text = df.select([df[c].cast("string").alias(c) for c in df.columns])
    rows = [{n: repr(v) for n, v in r.asDict().items()} for r in text.collect()]
    spark.stop()
    return types, rows


def main():
    engine, table = sys.argv[1], sys.argv[2]
    exclude = None
    if "--exclude-k" in sys.argv:
        exclude = sys.argv[sys.argv.index("--exclude-k") + 1]
    types, rows = {
        "duckdb": read_duckdb,
        "pyarrow": read_pyarrow,
        "spark": read_spark,
        "polars": read_polars,
        "fastparquet": read_fastparquet,
    }[engine](table)
    if exclude is not None:
        # DuckDB's rows are "value | text", the others' the value alone.
        rows = [r for r in rows if r["k"].split(" | ")[0].strip("'") != exclude]
    leaves, keys = parquet_descriptions(table)
    json.dump({"types": types, "rows": rows, "parquet": leaves, "metadata_keys": keys}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
