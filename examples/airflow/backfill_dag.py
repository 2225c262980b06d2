"""One backfill over many Airflow workers (Airflow 3, dynamic task mapping).

`plan` freezes the run once (its id, partitions and their files, the SQL, the options);
`rewrite` is mapped over the partitions, one task each, retried by Airflow; `check`
finishes anything the workers left and proves the table (`verify --run RUN_ID`). Each mapped task runs

    backfill run TABLE --run RUN_ID --partition P

which is retry-safe: a partition done by an earlier try is reported and not transformed
again, a commit a killed try left half done is finished, exit 75 means busy (retry).

Settings come from the environment of the workers:
    BACKFILL_TABLE   the table (s3://bucket/prefix or a path all workers share)
    BACKFILL_SQL     the transform's SQL file
    BACKFILL_ARGS    the selection, e.g. "--from 2024-01-01 --to 2024-03-31" (default --all)
    BACKFILL_BIN     the backfill binary (default: backfill on PATH)
"""

import json
import os
import shlex
import subprocess
from datetime import timedelta

from airflow.sdk import dag, task

BIN = os.environ.get("BACKFILL_BIN", "backfill")


def backfill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True)


@dag(schedule=None, catchup=False, max_active_tasks=8, tags=["backfill"])
def backfill_fix():
    @task
    def plan() -> list[dict]:
        table = os.environ["BACKFILL_TABLE"]
        selection = shlex.split(os.environ.get("BACKFILL_ARGS", "--all"))
        out = backfill(
            "plan", table, "--sql", os.environ["BACKFILL_SQL"], *selection, "--freeze", "--json"
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        frozen = json.loads(out.stdout)
        return [
            {"table": table, "run_id": frozen["run_id"], "partition": p["partition"]}
            for p in frozen["partitions"]
        ]

    @task(retries=10, retry_delay=timedelta(seconds=2))
    def rewrite(item: dict) -> str:
        out = backfill(
            "run", item["table"], "--run", item["run_id"], "--partition", item["partition"], "--json"
        )
        if out.returncode == 75:
            raise RuntimeError(f"busy, retried: {out.stderr.strip()}")
        if out.returncode != 0:
            raise RuntimeError(out.stderr or out.stdout)
        return json.loads(out.stdout)["partitions"][0]["status"]

    @task
    def check(items: list[dict], statuses: list[str]) -> dict:
        table, run_id = items[0]["table"], items[0]["run_id"]
        # Whatever the workers left (none, when every task succeeded), then the proof:
        # every partition of the run holds what the run's journal recorded (rows and
        # checksum), none is pending or mid-commit, and the table has no other finding.
        # (`--wait`: a partition a killed try still holds is free once its lease expires.)
        for args in (
            ["resume", table, run_id, "--wait", "120"],
            ["verify", table, "--run", run_id],
        ):
            out = backfill(*args)
            if out.returncode != 0:
                raise RuntimeError(f"backfill {' '.join(args)}: {out.stdout}{out.stderr}")
        return {"run_id": run_id, "partitions": len(statuses), "statuses": sorted(set(statuses))}

    items = plan()
    statuses = rewrite.expand(item=items)
    check(items, statuses)


backfill_fix()
