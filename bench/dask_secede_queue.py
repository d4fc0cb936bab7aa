"""Why a fleet run waited for ever on its chunks when each worker held a ``municipality`` resource.

Usage (from the repository root; a few seconds each):

    .venv/bin/python bench/dask_secede_queue.py                 # the four cases below
    .venv/bin/python bench/dask_secede_queue.py --municipalities 6 --chunks 3 --saturation 1.1

The national-sized fleet's second attempt (64ae6fb, docs/benchmarks.md) gave each Dask worker
one ``municipality`` resource that every municipality's task took, and let a run send its
chunks of pupils to the cluster through ``distributed.worker_client`` (``ews.compute``). The
third municipality then waited for ever on its chunks, the worker idle. This reproduces it
with plain ``distributed``, no Prefect and no data: one worker of one thread offering the
resource, ``M`` tasks that take it, secede (``worker_client``) and wait on ``C`` chunk tasks.

The cause is the scheduler's queueing of root-ish tasks (``distributed.scheduler.worker-saturation``,
default 1.1). A group of more than twice the cluster's threads of tasks without dependencies
(the chunks) is root-ish and is sent to a worker only while it has a free slot:
``ceil(1.1 x threads)`` minus the tasks *processing* on it that are not seceded. The
municipalities' tasks waiting on the worker for the resource count as processing, so the
worker never has a slot, and the chunks stay queued while the seceded run waits on them. With
two chunks (not root-ish on one thread) or with ``worker-saturation: inf`` (no queueing) every
run finishes. dask/distributed#7223 (fixed) was the same family: a secede that did not open
the queue.
"""

from __future__ import annotations

import argparse
import time

import dask
from distributed import Client, LocalCluster, worker_client


def chunk(value: int) -> int:
    time.sleep(0.05)
    return value


def municipality(index: int, chunks: int) -> int:
    with worker_client() as client:  # secedes this thread while it waits, as ews.compute does
        futures = client.map(chunk, [index * 100 + i for i in range(chunks)], pure=False)
        return sum(client.gather(futures))


def case(saturation: str, municipalities: int, chunks: int, timeout: float) -> str:
    """Run one case; how many municipalities finished before the timeout."""
    value = saturation if saturation == "inf" else float(saturation)  # "inf" is how dask spells it
    with dask.config.set({"distributed.scheduler.worker-saturation": value}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={"municipality": 1},
                         dashboard_address=None) as cluster, Client(cluster) as client:
        futures = [client.submit(municipality, m, chunks, resources={"municipality": 1}, pure=False)
                   for m in range(municipalities)]
        deadline, done = time.monotonic() + timeout, 0
        for future in futures:
            try:
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            done += 1
    verdict = "all finished" if done == municipalities else f"HUNG ({done} finished in {timeout:.0f} s)"
    return f"| {saturation} | {municipalities} | {chunks} | {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--municipalities", type=int)
    parser.add_argument("--chunks", type=int)
    parser.add_argument("--saturation", default="1.1", help="worker-saturation: a number or inf")
    parser.add_argument("--timeout", type=float, default=15.0)
    args = parser.parse_args()
    cases = ([(args.saturation, args.municipalities, args.chunks)] if args.municipalities else
             [("1.1", 3, 3), ("1.1", 6, 2), ("inf", 6, 3), ("1.1", 1, 3)])
    print("| worker-saturation | municipalities (one resource slot) | chunks each | result |")
    print("|---|---:|---:|---|")
    for saturation, municipalities, chunks in cases:
        print(case(saturation, municipalities, chunks, args.timeout), flush=True)


if __name__ == "__main__":
    main()
