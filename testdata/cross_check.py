"""Random tables, written by pyarrow, Polars and DuckDB, checked from outside.

    python testdata/cross_check.py [--binary target/release/backfill] [--seeds 0:100]
                                   [--writer mix|pyarrow|polars|duckdb] [--work DIR]

For each seed: a table of three partitions with random columns (every Arrow type family,
nested up to two levels, NULLs, extreme values) written by a random writer with random
settings (row groups, dictionaries, page versions, codecs, with and without an Arrow
schema). Then:

1. `backfill snapshot` must give the checksums of `checksum_reference.py` (the spec's
   independent implementation);
2. four runs, each on a copy: `SELECT * FROM source` (nothing to write), a fix that
   deletes every third row (every column encoded again), the same a slice at a time
   (`--slice-above 0`), and one that changes `id` only (the other columns copied). Each partition is then read back by pyarrow and compared,
   value for value (NaN equal to NaN, -0.0 apart from 0.0), with the source as pyarrow
   reads it, filtered or changed as the fix says; types must be the same.

Prints one line per seed: `ok`, `SKIP` (the writer refused the table), or what differed.
Where pyarrow cannot read a table (DuckDB 2.0.1 writes fixed-size arrays holding NULL
arrays that pyarrow 26 refuses), the reference cannot either: the runs are then checked as
DuckDB reads the tables, value by value in its own text. Needs pyarrow, polars, duckdb and blake3. Not a test: a tool to
look for what the fixtures in testdata/ do not hold.
"""
import argparse
import decimal
import json
import math
import os
import random
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checksum_reference as ref  # noqa: E402


def random_type(r, depth=0):
    flat = [
        pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
        pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.string(),
        pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view(),
        pa.binary(3), pa.date32(), pa.date64(), pa.timestamp("s"), pa.timestamp("ms"),
        pa.timestamp("us"), pa.timestamp("ns"), pa.timestamp("us", tz="UTC"),
        pa.timestamp("ms", tz="Europe/Paris"), pa.time32("s"), pa.time32("ms"), pa.time64("us"),
        pa.time64("ns"), pa.duration("s"), pa.duration("ms"), pa.duration("us"),
        pa.duration("ns"), pa.decimal128(r.randint(1, 38), 0), pa.decimal128(18, 4),
        pa.decimal128(9, 2), pa.decimal256(40, 5), pa.decimal256(r.randint(1, 76), 0),
        pa.dictionary(pa.int32(), pa.string()), pa.null(),
    ]
    if depth < 2 and r.random() < 0.25:
        kind = r.choice(["list", "large_list", "fixed_list", "struct", "map"])
        if kind == "list":
            return pa.list_(random_type(r, depth + 1))
        if kind == "large_list":
            return pa.large_list(random_type(r, depth + 1))
        if kind == "fixed_list":
            return pa.list_(random_type(r, depth + 1), 2)
        if kind == "struct":
            return pa.struct([("a", random_type(r, depth + 1)), ("b", random_type(r, depth + 1))])
        return pa.map_(r.choice([pa.string(), pa.int32()]), random_type(r, depth + 1))
    return r.choice(flat)


def random_value(r, t):
    if pa.types.is_null(t) or r.random() < 0.15:
        return None
    if pa.types.is_boolean(t):
        return r.random() < 0.5
    if pa.types.is_integer(t):
        bits, signed = t.bit_width, pa.types.is_signed_integer(t)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        return r.choice([lo, hi, 0, r.randint(lo, hi)])
    if pa.types.is_floating(t):
        return r.choice([0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, r.uniform(-1e4, 1e4)])
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return r.choice(["", "NULL", "é", "a" * r.randint(0, 80), "x\x00y"])
    if pa.types.is_dictionary(t):
        return r.choice(["a", "b", "", "long " * 5])
    if pa.types.is_fixed_size_binary(t):
        return bytes(r.randrange(256) for _ in range(t.byte_width))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return bytes(r.randrange(256) for _ in range(r.randint(0, 20)))
    if pa.types.is_date32(t):
        return r.randint(-800000, 2900000)
    if pa.types.is_date64(t):
        return r.randint(-800000, 2900000) * 86_400_000
    if pa.types.is_timestamp(t):
        span = {"s": 10**11, "ms": 10**14, "us": 10**16, "ns": 9 * 10**18}[t.unit]
        return r.randint(-span, span)
    if pa.types.is_time32(t):
        return r.randint(0, 86399 if t.unit == "s" else 86_399_999)
    if pa.types.is_time64(t):
        return r.randint(0, 86_399_999_999 if t.unit == "us" else 86_399_999_999_999)
    if pa.types.is_duration(t):
        return r.randint(-(10**15), 10**15)
    if pa.types.is_decimal(t):
        digits = r.randint(1, t.precision)
        return decimal.Decimal(r.randint(-(10**digits - 1), 10**digits - 1)).scaleb(-t.scale)
    if pa.types.is_fixed_size_list(t):
        return [random_value(r, t.value_type) for _ in range(t.list_size)]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [random_value(r, t.value_type) for _ in range(r.randint(0, 3))]
    if pa.types.is_struct(t):
        return {f.name: random_value(r, f.type) for f in t}
    if pa.types.is_map(t):
        entries, keys = [], set()
        for _ in range(r.randint(0, 3)):
            k = random_value(r, t.key_type)
            if k is not None and k not in keys:
                keys.add(k)
                entries.append((k, random_value(r, t.item_type)))
        return entries
    raise ValueError(t)


def random_column(r, t, n):
    values = [random_value(r, t) for _ in range(n)]
    if pa.types.is_float16(t):
        import numpy as np

        return pa.array(
            np.array([0 if v is None else v for v in values], dtype=np.float16),
            mask=np.array([v is None for v in values]),
        )
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return pa.array(values, pa.int32()).cast(t)
    if pa.types.is_temporal(t):
        return pa.array(values, pa.int64()).cast(t)
    return pa.array(values, t)


def write(r, table, folder, writer):
    """`table` into `folder` by `writer`; an error message if the writer refuses it."""
    os.makedirs(folder)
    out = os.path.join(folder, "part.parquet")
    try:
        if writer == "polars":
            import polars as pl

            pl.from_arrow(table).write_parquet(
                out, compression=r.choice(["snappy", "zstd", "uncompressed"]),
                row_group_size=r.choice([3, 1000]),
            )
        elif writer == "duckdb":
            import duckdb

            con = duckdb.connect()
            con.register("tab", table)
            con.execute(f"COPY tab TO '{out}' (FORMAT PARQUET, ROW_GROUP_SIZE {r.choice([3, 2048])})")
        else:
            opts = dict(
                row_group_size=r.choice([3, 7, 1000]),
                use_dictionary=r.random() < 0.5,
                data_page_version=r.choice(["1.0", "2.0"]),
                compression=r.choice(["snappy", "zstd", "none", "gzip", "lz4", "brotli"]),
                store_schema=r.random() < 0.7,
                write_statistics=r.random() < 0.8,
                use_compliant_nested_type=r.random() < 0.8,
            )
            if r.random() < 0.2:
                opts.update(coerce_timestamps=r.choice(["ms", "us"]), allow_truncated_timestamps=True)
            if table.num_rows > 4 and r.random() < 0.4:
                half = table.num_rows // 2
                pq.write_table(table.slice(0, half), os.path.join(folder, "a.parquet"), **opts)
                pq.write_table(table.slice(half), os.path.join(folder, "b.parquet"), **opts)
            else:
                pq.write_table(table, out, **opts)
    except BaseException as e:  # Polars panics are BaseExceptions
        return f"{writer}: {str(e)[:100]}"
    return None


def make(seed, root, writers):
    r = random.Random(seed)
    types = [random_type(r) for _ in range(r.randint(1, 7))]
    for k in range(3):
        n = r.randint(1, 40)
        columns = {"id": pa.array(range(k * 1000, k * 1000 + n), pa.int64())}
        for i, t in enumerate(types):
            columns[f"c{i}"] = random_column(r, t, n)
        refused = write(r, pa.table(columns), os.path.join(root, f"p={k}"), r.choice(writers))
        if refused:
            return types, refused
    return types, None


def partitions(root):
    return sorted(p for p in os.listdir(root) if p.startswith("p="))


def read(folder):
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def reference(root):
    out = {}
    for p in partitions(root):
        folder = os.path.join(root, p)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
        out[p], _ = ref.checksums([ref.read_partition_file(os.path.join(folder, f)) for f in files])
    return out


def comparable(v):
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else (v, math.copysign(1, v))
    if isinstance(v, (list, tuple)):
        return [comparable(x) for x in v]
    if isinstance(v, dict):
        return {k: comparable(x) for k, x in v.items()}
    return v


def values(table, column):
    # Temporal values as the integers they hold: Python's datetime covers fewer years.
    return comparable(ref.raw(table[column].combine_chunks()))


def check(seed, binary, work, writers):
    w = os.path.join(work, str(seed))
    shutil.rmtree(w, ignore_errors=True)
    t = os.path.join(w, "t")
    types, refused = make(seed, t, writers)
    shown = [str(x) for x in types]
    if refused:
        return f"SKIP {refused}"
    try:
        want = reference(t)
    except Exception as e:
        # pyarrow cannot read it (nor the reference): the runs are checked as DuckDB reads
        # the tables instead.
        want, unread = None, str(e)[:80]
    snap = subprocess.run([binary, "snapshot", t, "--json", "--no-cache"], capture_output=True, text=True)
    if snap.returncode != 0:
        return f"SNAPSHOT FAILED {snap.stderr.strip()[:300]} {shown}"
    got = {p["partition"]: p["checksum"] for p in json.loads(snap.stdout)["partitions"]}
    if want is not None and got != want:
        return f"CHECKSUMS DIFFER backfill {got} reference {want} {shown}"
    others = ", ".join(f"c{i}" for i in range(len(types)))
    # (name, SQL, extra arguments): `--slice-above 0` encodes a slice at a time.
    fixes = [
        ("same", "SELECT * FROM source", []),
        ("delete", "SELECT * FROM source WHERE id % 3 <> 0", []),
        ("sliced", "SELECT * FROM source WHERE id % 3 <> 0", ["--slice-above", "0"]),
        ("id", f"SELECT id + 1000000 AS id, {others} FROM source", []),
    ]
    problems = []
    for name, sql, extra in fixes:
        copy = os.path.join(w, name)
        shutil.copytree(t, copy)
        with open(os.path.join(w, f"{name}.sql"), "w") as f:
            f.write(sql)
        run = subprocess.run(
            [binary, "run", copy, "--sql", os.path.join(w, f"{name}.sql"), "--all", "--json",
             "--jobs", "2", "--on-empty", "delete", *extra],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            errors = [p.get("error") for p in json.loads(run.stdout or "{}").get("partitions", [])]
            problems.append(f"{name}: RUN FAILED {run.stderr.strip()[:200]} {[e for e in errors if e]}")
            continue
        if want is None:
            problems += as_duckdb_reads(name, t, copy)
            continue
        for p in partitions(t):
            old = read(os.path.join(t, p))
            keep = [name not in ("delete", "sliced") or i % 3 != 0 for i in old["id"].to_pylist()]
            if not os.path.isdir(os.path.join(copy, p)):
                if any(keep):
                    problems.append(f"{name} {p}: the partition is gone")
                continue
            new = read(os.path.join(copy, p))
            if new.schema != old.schema:
                problems.append(f"{name} {p}: types {old.schema} became {new.schema}")
                continue
            for c in old.column_names:
                before = [v for v, k in zip(values(old, c), keep) if k]
                if c == "id" and name == "id":
                    before = [v + 1000000 for v in before]
                if values(new, c) != before:
                    problems.append(f"{name} {p}: column {c} reads back other values")
        if name == "same" and reference(copy) != want:
            problems.append("same: the reference's checksums changed")
    if problems:
        return "; ".join(problems) + f" {shown}"
    return f"ok {shown}" if want is not None else f"ok (as DuckDB reads it; pyarrow: {unread}) {shown}"


def as_duckdb_reads(name, t, copy):
    """Where the rows of `copy` differ from those of `t` after fix `name`, as DuckDB reads
    both (its text of every value)."""
    import duckdb

    con = duckdb.connect()
    problems = []
    for p in partitions(t):
        where = "WHERE id % 3 <> 0" if name in ("delete", "sliced") else ""
        shift = "+ 1000000" if name == "id" else ""
        query = "SELECT * REPLACE (id {shift} AS id) FROM read_parquet('{folder}/*.parquet') {where} ORDER BY id"
        old = repr(con.execute(query.format(shift=shift, folder=os.path.join(t, p), where=where)).fetchall())
        if not os.path.isdir(os.path.join(copy, p)):
            if old != "[]":
                problems.append(f"{name} {p}: the partition is gone")
            continue
        new = repr(con.execute(query.format(shift="", folder=os.path.join(copy, p), where="")).fetchall())
        if new != old:
            problems.append(f"{name} {p}: DuckDB reads other rows back")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/backfill")
    ap.add_argument("--seeds", default="0:100")
    ap.add_argument("--writer", default="mix", choices=["mix", "pyarrow", "polars", "duckdb"])
    ap.add_argument("--work", default="/tmp/backfill-cross-check")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.seeds.split(":"))
    writers = ["pyarrow", "polars", "duckdb"] if a.writer == "mix" else [a.writer]
    for seed in range(lo, hi):
        print(seed, check(seed, os.path.abspath(a.binary), a.work, writers), flush=True)


if __name__ == "__main__":
    sys.exit(main())
