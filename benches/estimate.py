"""How close `plan`'s estimate comes: the estimate against the run's own `wall_ms`.

    python benches/estimate.py --backfill target/release/backfill --table DIR --sql FILE \\
        [--tries 5] [--work DIR] [-- SELECTION...]

Each try copies TABLE to a new folder, runs `plan --sql FILE --json` and then `run --sql FILE
--json` on the copy (with the selection after `--`, or `--all`), and prints the estimate
against the run's `wall_ms`. Tables: those of benches/peers.py (lineitem by month, by day),
or the demo's (`backfill demo D`, then `backfill rollback D/events RUN` to undo its fix).
This is a benchmark, not a test.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backfill", default="target/release/backfill")
    ap.add_argument("--table")
    ap.add_argument("--sql")
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "backfill-estimate"))
    ap.add_argument("selection", nargs="*", default=["--all"])
    a = ap.parse_args()
    if not a.table or not a.sql:
        ap.error("--table and --sql are needed")
    ratios, tries = [], []
    for i in range(a.tries):
        # A new folder each try, deleted at the end: on ext4 without a journal, files
        # created right after thousands were deleted are slow to allocate.
        copy = os.path.join(a.work, f"try-{os.getpid()}-{i}", "t")
        shutil.copytree(a.table, copy)
        planned = [s for s in a.selection if s != "--all"]
        plan = json.loads(subprocess.run(
            [a.backfill, "plan", copy, "--sql", a.sql, "--json", "--jobs", "2"] + planned,
            check=True, capture_output=True, text=True).stdout)
        run = json.loads(subprocess.run(
            [a.backfill, "run", copy, "--sql", a.sql, "--json", "--jobs", "2"] + a.selection,
            capture_output=True, text=True).stdout)
        est, wall = plan["estimate"]["seconds"], run["wall_ms"] / 1000
        ratios.append(est / wall)
        tries.append(f"{est:.3f}/{wall:.3f}")
    print(f"{a.table}: estimate/actual s per try: {', '.join(tries)}")
    print(f"  ratios {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}")
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
