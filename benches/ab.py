"""Two builds of backfill on the same command, alternated: is B slower than A?

    python benches/ab.py --a OLD_BINARY --b NEW_BINARY --table DIR [--pairs 6] [--what run|snapshot]
        [--sql FILE]

`run`: `run COPY --sql upper(l_comment) --all --jobs 2` (or the SQL in FILE) on a fresh copy of
TABLE (lineitem from benches/peers.py) per try; `snapshot`: `snapshot TABLE --jobs 2 --no-cache`. Prints
each build's median and the ratio B/A. This is a benchmark, not a test.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from peers import COLS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--what", choices=["run", "snapshot"], default="run")
    ap.add_argument("--sql", help="the SQL file `run` applies (default: upper(l_comment))")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "backfill-ab"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    sql = a.sql or os.path.join(a.work, "upper.sql")
    if not a.sql:
        with open(sql, "w") as f:
            select = ", ".join("upper(l_comment) AS l_comment" if c == "l_comment" else c for c in COLS)
            f.write(f"SELECT {select} FROM source\n")
    times = {a.a: [], a.b: []}
    for i in range(a.pairs):
        for binary in ([a.a, a.b] if i % 2 == 0 else [a.b, a.a]):
            if a.what == "run":
                copy = os.path.join(a.work, f"try-{i}-{len(times[binary])}-{os.path.basename(binary)}", "t")
                shutil.copytree(a.table, copy)
                cmd = [binary, "run", copy, "--sql", sql, "--all", "--jobs", "2", "--json"]
            else:
                cmd = [binary, "snapshot", a.table, "--jobs", "2", "--json", "--no-cache"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[binary].append(time.perf_counter() - t)
    for b in (a.a, a.b):
        v = times[b]
        print(f"{b}: median {statistics.median(v):.3f} s ({', '.join(f'{x:.2f}' for x in v)})")
    print(f"ratio B/A (medians) {statistics.median(times[a.b]) / statistics.median(times[a.a]):.3f}")
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
