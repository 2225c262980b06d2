"""Checking again, cheaply: `snapshot` with the checksum cache against a cold one.

    python benches/incremental.py [--sf 1] [--by day] [--runs 3] [--backfill target/release/backfill]
                                  [--s3 MOTO_SERVER [--s3-runs 1]]

Data: TPC-H lineitem Hive-partitioned by ship day (2,526 partitions) as benches/peers.py
makes it (needs tpchgen-cli and duckdb). Measured, alternated, median of --runs, each in
one invocation:

- cold: `snapshot --no-cache` (every file read);
- filling: `snapshot` with an empty cache (every file read, and the cache written);
- again: `snapshot` with nothing changed;
- after a run: `snapshot` after `run --partition` of 3 days (their new files).

With --s3 MOTO_SERVER the table is uploaded to a moto server started on 127.0.0.1 and the
same is measured there, with the requests each command made (from the server's log).
This is a benchmark, not a test.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from peers import make_table  # noqa: E402


def timed(cmd, env=None):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(binary, table, work, runs, env=None, requests=None, cache_root=None):
    snap = [binary, "snapshot", table, "--json", "--jobs", "2"]
    tries = []

    def fresh_cache():
        # An empty cache of its own for each try, on the table's kind of storage.
        tries.append(len(tries))
        if cache_root:
            return ["--cache-dir", f"{cache_root}/cache-{len(tries)}"]
        return ["--cache-dir", tempfile.mkdtemp(dir=work, prefix="cache-")]

    rows = {"cold": [], "filling": [], "again": []}
    counts = {}
    for _ in range(runs):
        for name in ["cold", "filling", "again"]:
            before = requests() if requests else 0
            if name == "cold":
                rows[name].append(timed(snap + ["--no-cache"], env))
            elif name == "filling":
                extra = fresh_cache()
                rows[name].append(timed(snap + extra, env))
            else:
                rows[name].append(timed(snap + extra, env))
            if requests:
                counts[name] = requests() - before
    return rows, counts, extra


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sf", type=int, default=1)
    ap.add_argument("--by", choices=["month", "day"], default="day")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backfill", default="target/release/backfill")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "backfill-peers"))
    ap.add_argument("--s3", metavar="MOTO_SERVER", help="also measure on a moto server")
    ap.add_argument("--s3-runs", type=int, default=1, help="tries on S3 (moto is slow)")
    ap.add_argument("--s3-partitions", type=int, default=300,
                    help="partitions uploaded to moto (it is slow per object)")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--check", action="store_true", help="only check that the script starts")
    args = ap.parse_args()
    if args.check:
        return
    os.makedirs(args.work, exist_ok=True)
    source = make_table(args.work, args.sf, args.by)
    table = os.path.join(args.work, f"incremental_{args.by}")
    # The table and its work area (journals, the checksum cache) start afresh.
    for d in [table, os.path.join(args.work, ".backfill", f"incremental_{args.by}")]:
        if os.path.exists(d):
            shutil.rmtree(d)
    shutil.copytree(source, table)
    binary = os.path.abspath(args.backfill)

    def report(where, rows, counts):
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"{where}: cold {med['cold']:.3f} s, filling {med['filling']:.3f} s "
              f"({med['filling'] / med['cold']:.3f}x cold), again {med['again']:.3f} s "
              f"({med['again'] / med['cold']:.3f}x cold)")
        print(f"  every try: {rows}")
        if counts:
            print(f"  requests: {counts}")

    # The local tries' caches, removed at the end (they are made next to the table).
    caches = os.path.join(args.work, "incremental-caches")
    shutil.rmtree(caches, ignore_errors=True)
    os.makedirs(caches)
    try:
        if not args.skip_local:
            local(binary, table, args, report, caches)
        if args.s3:
            s3(binary, table, args, report)
    finally:
        shutil.rmtree(caches, ignore_errors=True)


def local(binary, table, args, report, caches):
    rows, counts, cache = measure(binary, table, caches, args.runs)
    report("local", rows, counts)
    # After a run of 3 days: the run records its new files in the cache it writes (the
    # table's work area), so measure with the default cache.
    subprocess.run([binary, "snapshot", table], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    days = sorted(os.listdir(table))[100:103]
    with open(os.path.join(args.work, "upper.sql"), "w") as f:
        f.write("SELECT * REPLACE (upper(l_comment) AS l_comment) FROM source")
    sql = os.path.join(args.work, "upper.sql")
    cmd = [binary, "run", table, "--sql", sql]
    for d in days:
        cmd += ["--partition", d]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The first snapshot after the run reads nothing (the run recorded its files), and
    # neither do the next ones: each try is the same, alternated with a cold one.
    afters, colds = [], []
    for _ in range(args.runs):
        afters.append(timed([binary, "snapshot", table, "--json", "--jobs", "2"]))
        colds.append(timed([binary, "snapshot", table, "--json", "--jobs", "2", "--no-cache"]))
    after, cold = statistics.median(afters), statistics.median(colds)
    print(f"local: after `run` of {len(days)} days: {after:.3f} s ({after / cold:.3f}x a cold {cold:.2f} s)")
    print(f"  every try: after {afters}, cold {colds}")


def s3(binary, table, args, report):
    if True:
        port = free_port()
        log = open(os.path.join(args.work, "moto.log"), "w")
        server = subprocess.Popen([args.s3, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                       AWS_ALLOW_HTTP="true")
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # Upload with boto3 from the moto environment (moto depends on it); S3 on
            # moto is slow per object, so only the first --s3-partitions partitions.
            parts = sorted(d for d in os.listdir(table) if "=" in d)[: args.s3_partitions]
            upload = (
                "import boto3, os, sys\n"
                "s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',"
                " aws_access_key_id='test', aws_secret_access_key='test')\n"
                "s3.create_bucket(Bucket='lake')\n"
                "for p in sys.argv[3:]:\n"
                "    for f in os.listdir(os.path.join(sys.argv[2], p)):\n"
                "        s3.upload_file(os.path.join(sys.argv[2], p, f), 'lake', f't/{p}/{f}')\n"
            )
            python = os.path.join(os.path.dirname(args.s3), "python")
            subprocess.run([python, "-c", upload, f"http://127.0.0.1:{port}", table, *parts],
                           check=True)

            def requests():
                log.flush()
                with open(log.name) as fh:
                    return sum(1 for line in fh if '" 20' in line or '" 30' in line or '" 40' in line)

            rows, counts, _ = measure(binary, "s3://lake/t", args.work, args.s3_runs, env, requests,
                                      cache_root="s3://lake/caches")
            report("s3 (moto)", rows, counts)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
