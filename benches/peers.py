"""Peer comparison: the same partition rewrite with backfill, Polars and DuckDB.

    python benches/peers.py [--sf 1] [--runs 3] [--cases one-month,one-day,...]
                            [--backfill target/release/backfill] [--work DIR]

Needs: pip install tpchgen-cli polars duckdb. This is a benchmark, not a test.

Tables: TPC-H lineitem from tpchgen-cli, Hive-partitioned by DuckDB by ship month (84
partitions) and by ship day (2,526), snappy; and a wide table of 24 string columns in 40
partitions of skewed sizes (the largest about 12 times the median), made by DuckDB.

Cases (each fix done by all three tools; backfill with everything it does: checksums
before and after, the proof of the new files, the staged and durable commit, the journal):

    one-month   upper(l_comment), lineitem by month: 15 of 16 columns pass through
    one-day     the same by day
    delete      drop the rows shipped by RAIL, by month: every column re-encoded
    several     recompute a decimal, a date, a string and an int column, by month
    wide        upper() of one column of the wide table

Snapshots: `backfill snapshot --no-cache` against DuckDB's `count(*), sum(hash(every
column)) GROUP BY` partition, by month, by day and on the wide table.

Every measurement is the median of --runs tries, alternated between the tools, in this
one invocation; ratios are against the faster peer of each case.
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
WIDE_COLS = [f"s{i:02d}" for i in range(24)]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def make_table(work, sf, by):
    """lineitem by ship month or day (kept between invocations)."""
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


def make_wide(work):
    """24 string columns, 1.5 M rows in 40 partitions of skewed sizes."""
    import duckdb

    table = os.path.join(work, "wide")
    if not os.path.exists(table):
        con = duckdb.connect()
        con.execute("SET threads=2")
        cols = ", ".join(
            f"md5(({i} * 1000003 + i)::VARCHAR)[:{8 + (i * 5) % 25}] AS s{i:02d}" for i in range(24)
        )
        # Partition k gets a share falling off like 1/(k+1): skewed, a long tail.
        con.execute(
            f"COPY (SELECT i AS id, {cols}, "
            f"least(39, floor(40 * pow(hash(i) % 1000000 / 1000000.0, 2.2)))::INT AS p "
            f"FROM range(1500000) t(i)) TO '{table}' "
            f"(FORMAT PARQUET, PARTITION_BY (p), COMPRESSION snappy)"
        )
    return table


def lineitem_select(replace):
    return ", ".join(f"{replace[c]} AS {c}" if c in replace else c for c in COLS)


# Each case: the table it runs on, its partition key, and the fix for each tool.
def cases(work, sf):
    import polars as pl

    several = {
        "l_extendedprice": "CAST(l_extendedprice * 1.1 AS DECIMAL(15,2))",
        "l_commitdate": "l_commitdate + 1",
        "l_shipinstruct": "lower(l_shipinstruct)",
        "l_linenumber": "CAST(l_linenumber + 1 AS INT)",
    }
    several_df = dict(several, l_commitdate="l_commitdate + INTERVAL '1 day'")
    wide_select = ", ".join(["id"] + [f"upper({c}) AS {c}" if c == "s00" else c for c in WIDE_COLS])
    return {
        "one-month": dict(
            table=lambda: make_table(work, sf, "month"), key="ship_month",
            backfill=f"SELECT {lineitem_select({'l_comment': 'upper(l_comment)'})} FROM source",
            duckdb=f"SELECT {lineitem_select({'l_comment': 'upper(l_comment)'})} FROM {{src}}",
            polars=lambda lf: lf.with_columns(pl.col("l_comment").str.to_uppercase()),
        ),
        "one-day": dict(
            table=lambda: make_table(work, sf, "day"), key="ship_day",
            backfill=f"SELECT {lineitem_select({'l_comment': 'upper(l_comment)'})} FROM source",
            duckdb=f"SELECT {lineitem_select({'l_comment': 'upper(l_comment)'})} FROM {{src}}",
            polars=lambda lf: lf.with_columns(pl.col("l_comment").str.to_uppercase()),
        ),
        "delete": dict(
            table=lambda: make_table(work, sf, "month"), key="ship_month",
            backfill=f"SELECT {', '.join(COLS)} FROM source WHERE l_shipmode <> 'RAIL'",
            duckdb=f"SELECT {', '.join(COLS)} FROM {{src}} WHERE l_shipmode <> 'RAIL'",
            polars=lambda lf: lf.filter(pl.col("l_shipmode") != "RAIL"),
        ),
        "several": dict(
            table=lambda: make_table(work, sf, "month"), key="ship_month",
            backfill=f"SELECT {lineitem_select(several_df)} FROM source",
            duckdb=f"SELECT {lineitem_select(several)} FROM {{src}}",
            polars=lambda lf: lf.with_columns(
                (pl.col("l_extendedprice") * pl.lit(1.1)).cast(pl.Decimal(15, 2)),
                pl.col("l_commitdate") + pl.duration(days=1),
                pl.col("l_shipinstruct").str.to_lowercase(),
                (pl.col("l_linenumber") + 1).cast(pl.Int32),
            ),
        ),
        "wide": dict(
            table=lambda: make_wide(work), key="p",
            backfill=f"SELECT {wide_select} FROM source",
            duckdb=f"SELECT {wide_select} FROM {{src}}",
            polars=lambda lf: lf.with_columns(pl.col("s00").str.to_uppercase()),
        ),
    }


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# Every try writes into a new folder and nothing is deleted until the end: on ext4 without
# a journal, files created within a minute of deleting thousands of others are slow to
# allocate, which would penalise whichever tool runs right after a clean-up.
SCRATCH = []


def scratch(work, name):
    d = os.path.join(work, "scratch", f"{name}-{len(SCRATCH)}")
    SCRATCH.append(d)
    return d


def run_backfill(binary, case, work):
    sql = os.path.join(work, "fix.sql")
    with open(sql, "w") as f:
        f.write(case["backfill"] + "\n")
    copy = os.path.join(scratch(work, "copy"), "t")
    shutil.copytree(case["table"](), copy)
    return timed(lambda: sh([binary, "run", copy, "--sql", sql, "--all", "--jobs", "2", "--json"],
                            stdout=subprocess.DEVNULL))


def run_polars(case, work):
    import polars as pl

    out = scratch(work, "polars_out")
    table = case["table"]()

    def go():
        lf = pl.scan_parquet(os.path.join(table, "**/*.parquet"), hive_partitioning=True)
        lf = case["polars"](lf)
        lf.sink_parquet(pl.PartitionBy(out, key=case["key"], include_key=False),
                        compression="snappy", mkdir=True)

    return timed(go)


def run_duckdb(case, work):
    import duckdb

    out = scratch(work, "duck_out")
    os.makedirs(out)
    table = case["table"]()

    def go():
        con = duckdb.connect()
        con.execute("SET threads=2")
        for part in sorted(os.listdir(table)):
            if "=" not in part:
                continue
            os.makedirs(os.path.join(out, part), exist_ok=True)
            query = case["duckdb"].format(src=f"'{table}/{part}/*.parquet'")
            con.execute(
                f"COPY ({query}) TO '{out}/{part}/data_0.parquet' (FORMAT PARQUET, COMPRESSION snappy)"
            )

    return timed(go)


def snapshot_backfill(binary, table):
    # Cold: every file read, as the peers do (the checksum cache is measured by
    # benches/incremental.py).
    return timed(lambda: sh([binary, "snapshot", table, "--json", "--jobs", "2", "--no-cache"],
                            stdout=subprocess.DEVNULL))


def snapshot_duckdb(table, key, cols):
    import duckdb

    def go():
        con = duckdb.connect()
        con.execute("SET threads=2")
        con.execute(
            f"SELECT {key}, count(*), sum(hash({', '.join(cols)})) FROM "
            f"read_parquet('{table}/*/*.parquet', hive_partitioning=true) GROUP BY {key}"
        ).fetchall()

    return timed(go)


def medians(fns, runs):
    """Each function `runs` times, alternated; their medians."""
    got = {k: [] for k in fns}
    for i in range(runs):
        order = list(fns) if i % 2 == 0 else list(reversed(fns))
        for k in order:
            got[k].append(fns[k]())
    return {k: statistics.median(v) for k, v in got.items()}, got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="one-month,one-day,delete,several,wide")
    ap.add_argument("--snapshots", default="month,day,wide")
    ap.add_argument("--backfill", default="target/release/backfill")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "backfill-peers"))
    ap.add_argument("--check", action="store_true", help="only check that the tools start")
    a = ap.parse_args()
    if a.check:
        import duckdb, polars  # noqa: F401

        print("peers: duckdb and polars import; backfill at", a.backfill, os.path.exists(a.backfill))
        return
    os.makedirs(a.work, exist_ok=True)
    shutil.rmtree(os.path.join(a.work, "scratch"), ignore_errors=True)
    all_cases = cases(a.work, a.sf)
    print(f"lineitem SF{a.sf}; median of {a.runs} alternated tries; wall seconds")
    print(f"{'case':10s} {'backfill':>9s} {'polars':>9s} {'duckdb':>9s}  run / best peer (target <= 0.85)")
    for name in [c for c in a.cases.split(",") if c]:
        case = all_cases[name]
        case["table"]()
        med, every = medians({
            "backfill": lambda: run_backfill(a.backfill, case, a.work),
            "polars": lambda: run_polars(case, a.work),
            "duckdb": lambda: run_duckdb(case, a.work),
        }, a.runs)
        best = min(med["polars"], med["duckdb"])
        print(f"{name:10s} {med['backfill']:9.2f} {med['polars']:9.2f} {med['duckdb']:9.2f}  {med['backfill'] / best:5.2f}"
              f"   tries: {', '.join(f'{k} ' + '/'.join(f'{x:.2f}' for x in v) for k, v in every.items())}")
    print(f"{'snapshot':10s} {'backfill':>9s} {'duckdb':>9s}  snapshot / duckdb (target <= 1.0)")
    for name in [s for s in a.snapshots.split(",") if s]:
        if name == "wide":
            table, key, cols = make_wide(a.work), "p", ["id"] + WIDE_COLS
        else:
            table, key, cols = make_table(a.work, a.sf, name), f"ship_{name}", COLS
        med, every = medians({
            "backfill": lambda: snapshot_backfill(a.backfill, table),
            "duckdb": lambda: snapshot_duckdb(table, key, cols),
        }, a.runs)
        print(f"{name:10s} {med['backfill']:9.2f} {med['duckdb']:9.2f}  {med['backfill'] / med['duckdb']:5.2f}"
              f"   tries: {', '.join(f'{k} ' + '/'.join(f'{x:.2f}' for x in v) for k, v in every.items())}")
    shutil.rmtree(os.path.join(a.work, "scratch"), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
