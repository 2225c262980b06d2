"""Peer comparison: the same partition rewrite with backfill, Polars and DuckDB.

    python benches/peers.py [--sf 1] [--by month|day] [--runs 3] [--backfill target/release/backfill]

Needs: pip install tpchgen-cli polars duckdb. Data: TPC-H lineitem from tpchgen-cli,
Hive-partitioned by ship month (84 partitions) or ship day (2,526), snappy. The transform
is upper(l_comment) on every row. Prints wall seconds (median of --runs) and the ratios.
This is a benchmark, not a test.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COLS = [
    "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity", "l_extendedprice",
    "l_discount", "l_tax", "l_returnflag", "l_linestatus", "l_shipdate", "l_commitdate",
    "l_receiptdate", "l_shipinstruct", "l_shipmode", "l_comment",
]
SELECT = ", ".join("upper(l_comment) AS l_comment" if c == "l_comment" else c for c in COLS)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def make_table(work, sf, by):
    import duckdb

    src = os.path.join(work, "lineitem.parquet")
    if not os.path.exists(src):
        sh(["tpchgen-cli", "parquet", "-s", str(sf), "--tables=lineitem", f"--output-dir={work}"])
    table = os.path.join(work, f"by_{by}")
    if not os.path.exists(table):
        key = "date_trunc('month', l_shipdate)::DATE" if by == "month" else "l_shipdate"
        con = duckdb.connect()
        con.execute("SET threads=2")
        con.execute(
            f"COPY (SELECT *, {key} AS ship_{by} FROM '{src}') TO '{table}' "
            f"(FORMAT PARQUET, PARTITION_BY (ship_{by}), COMPRESSION snappy)"
        )
    return table


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# Every run writes into a new folder and nothing is deleted until the end: on ext4 without
# a journal, files created within a minute of deleting thousands of others are slow to
# allocate, which would penalise whichever tool runs right after a clean-up.
SCRATCH = []


def scratch(work, name):
    d = os.path.join(work, "scratch", f"{name}-{len(SCRATCH)}")
    SCRATCH.append(d)
    return d


def fresh_copy(table, work):
    dst = scratch(work, "copy")
    shutil.copytree(table, os.path.join(dst, "t"))
    return os.path.join(dst, "t")


def run_backfill(binary, table, work):
    sql = os.path.join(work, "upper.sql")
    with open(sql, "w") as f:
        f.write(f"SELECT {SELECT} FROM source\n")
    copy = fresh_copy(table, work)
    return timed(lambda: sh([binary, "run", copy, "--sql", sql, "--all", "--jobs", "2", "--json"], stdout=subprocess.DEVNULL))


def run_polars(table, work, by):
    import polars as pl

    out = scratch(work, "polars_out")

    def go():
        lf = pl.scan_parquet(os.path.join(table, "**/*.parquet"), hive_partitioning=True)
        lf = lf.with_columns(pl.col("l_comment").str.to_uppercase())
        lf.sink_parquet(pl.PartitionBy(out, key=f"ship_{by}", include_key=False), compression="snappy", mkdir=True)

    return timed(go)


def run_duckdb_loop(table, work, by):
    import duckdb

    out = scratch(work, "duck_out")
    os.makedirs(out)

    def go():
        con = duckdb.connect()
        con.execute("SET threads=2")
        for part in sorted(os.listdir(table)):
            os.makedirs(os.path.join(out, part), exist_ok=True)
            con.execute(
                f"COPY (SELECT {SELECT} FROM '{table}/{part}/*.parquet') TO '{out}/{part}/data_0.parquet' "
                "(FORMAT PARQUET, COMPRESSION snappy)"
            )

    return timed(go)


def snapshot_backfill(binary, table):
    # Cold: every file read, as the peers do (the checksum cache is measured by
    # benches/incremental.py).
    return timed(lambda: sh([binary, "snapshot", table, "--json", "--jobs", "2", "--no-cache"],
                            stdout=subprocess.DEVNULL))


def snapshot_duckdb(table, by):
    import duckdb

    def go():
        con = duckdb.connect()
        con.execute("SET threads=2")
        con.execute(
            f"SELECT ship_{by}, count(*), sum(hash({', '.join(COLS)})) FROM "
            f"read_parquet('{table}/*/*.parquet', hive_partitioning=true) GROUP BY ship_{by}"
        ).fetchall()

    return timed(go)


def median(f, runs):
    return statistics.median(f() for _ in range(runs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", type=int, default=1)
    ap.add_argument("--by", choices=["month", "day"], default="month")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backfill", default="target/release/backfill")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "backfill-peers"))
    ap.add_argument("--check", action="store_true", help="only check that the tools start")
    a = ap.parse_args()
    if a.check:
        import duckdb, polars  # noqa: F401

        print("peers: duckdb and polars import; backfill at", a.backfill, os.path.exists(a.backfill))
        return
    os.makedirs(a.work, exist_ok=True)
    table = make_table(a.work, a.sf, a.by)
    shutil.rmtree(os.path.join(a.work, "scratch"), ignore_errors=True)
    results = {
        "backfill run": median(lambda: run_backfill(a.backfill, table, a.work), a.runs),
        "polars sink_parquet(PartitionBy)": median(lambda: run_polars(table, a.work, a.by), a.runs),
        "duckdb COPY per partition": median(lambda: run_duckdb_loop(table, a.work, a.by), a.runs),
        "backfill snapshot": median(lambda: snapshot_backfill(a.backfill, table), a.runs),
        "duckdb checksum query": median(lambda: snapshot_duckdb(table, a.by), a.runs),
    }
    shutil.rmtree(os.path.join(a.work, "scratch"), ignore_errors=True)
    print(f"lineitem SF{a.sf} by {a.by}, median of {a.runs} runs, wall seconds")
    for k, v in results.items():
        print(f"  {k:40s} {v:7.2f}")
    print("ratios (target):")
    print(f"  backfill run / polars                     {results['backfill run'] / results['polars sink_parquet(PartitionBy)']:5.2f}  (<= 1.0)")
    print(f"  backfill run / duckdb per partition       {results['backfill run'] / results['duckdb COPY per partition']:5.2f}  (<= 0.6)")
    print(f"  backfill snapshot / duckdb checksum query {results['backfill snapshot'] / results['duckdb checksum query']:5.2f}  (<= 1.0)")


if __name__ == "__main__":
    sys.exit(main())
