"""An import-osm job against a direct import on one store: the queue's cost for a file import (docs/jobs.md).

    python -m gridpatrol.scripts.bench.import_job STORE_URL [EXTRACT]

Imports EXTRACT (default: Nanjing's 玄武区, $GRIDPATROL_DATA/nanjing/xuanwu.osm) directly, then again as a job
(the upload stored with the job, run by ``job_queue.run_until_empty``), and prints both times. Use a scratch store.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    from gridpatrol.layers import job_queue
    from gridpatrol.layers import jobs as jl
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.store import open_store

    url = argv[0]
    osm = Path(argv[1]) if len(argv) > 1 else Path(os.environ.get("GRIDPATROL_DATA", "data"), "nanjing", "xuanwu.osm")
    store = open_store(url)
    t0 = time.perf_counter()
    import_osm(store, osm)
    t1 = time.perf_counter()
    print(f"direct import_osm: {t1 - t0:.2f} s")
    jid = job_queue.submit(store, "import-osm", {}, created_by="cli:bench", upload=jl.Upload(osm.name, osm.read_bytes()))
    t2 = time.perf_counter()
    job_queue.run_until_empty(store, heartbeat_s=1.0)
    t3 = time.perf_counter()
    j = jl.get(store, jid)
    run = (j["finished_at"] - j["started_at"]).total_seconds()
    print(f"job: {j['state']}; queued in {t2 - t1:.2f} s, worker {t3 - t2:.2f} s, of which the job ran {run:.2f} s")
    store.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
