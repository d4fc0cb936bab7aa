"""Heavy pure computations split into chunks of pupils (issue 16 part 3).

Scoring (``model.predict_proba``) and explanations (SHAP) compute each pupil's row on its own,
so the rows can be cut into chunks, computed apart and stacked back in order with the same
values as one computation over all rows. :func:`map_chunks` does that:

* inside a Dask worker (a municipality's run in ``ews fleet run``), one after another in the
  run's own thread, by default. With ``EWS_COMPUTE_ON_DASK`` they go to the same Dask cluster
  through ``distributed.worker_client``, which secedes the run's thread from the worker's pool
  while it waits, so that a worker of one thread can run the chunks too. The fleet hands the
  cluster no more municipalities than it has worker threads, so the freed slot never goes to
  another municipality (``pipelines.fleet``), and the chunks are asked for on the run's worker,
  which keeps the scheduler from holding them back (docs/fleet.md). Off by default: in a fleet
  every worker already runs a municipality of its own;
* anywhere else (``ews run``), to a local pool of processes (``spawn``: the flow runs threads,
  and forking a threaded process can hang), or in this process when one process is asked for
  or there is one chunk.

The chunk functions are pure: they get the fitted model and a block of feature rows and return
numbers. Only the run's own process writes the results to its staged warehouse (one writer per
warehouse); no chunk task opens DuckDB.

Settings (environment, ``ews.settings.Settings``): ``EWS_COMPUTE_CHUNK_PUPILS`` (pupils a
chunk, default 10,000: a Herning-sized run is one chunk and computes as before),
``EWS_COMPUTE_WORKERS`` (processes of the local pool, default 0: the machine's cores) and
``EWS_COMPUTE_ON_DASK`` (default off, above).
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

Result = TypeVar("Result")
#: Where the chunks were computed: in this process, a local process pool, or the Dask cluster.
Backend = Literal["inline", "local_pool", "dask"]


@dataclass(frozen=True)
class ChunkMap:
    """Results of :func:`map_chunks`, in the order of the rows.

    Attributes:
        results: One result per chunk, first rows first.
        chunks: Number of chunks.
        backend: Where they were computed (``inline``, ``local_pool`` or ``dask``).
        workers: Processes of the local pool, or Dask workers of the cluster; 1 inline.
    """

    results: list[Any]
    chunks: int
    backend: Backend
    workers: int

    def describe(self) -> dict[str, Any]:
        """What a manifest records: ``chunks``, ``backend``, ``workers``."""
        return {"chunks": self.chunks, "backend": self.backend, "workers": self.workers}


def compute_chunk_pupils() -> int:
    """Pupils a chunk, from ``EWS_COMPUTE_CHUNK_PUPILS`` (default 10,000)."""
    from ews.settings import Settings

    return Settings().compute_chunk_pupils


def compute_on_dask() -> bool:
    """Whether a run inside a fleet sends its chunks to the cluster (``EWS_COMPUTE_ON_DASK``)."""
    from ews.settings import Settings

    return Settings().compute_on_dask


def compute_workers() -> int:
    """Processes of the local pool, from ``EWS_COMPUTE_WORKERS`` (0, the default: every core)."""
    from ews.settings import Settings

    configured = Settings().compute_workers
    return configured if configured > 0 else (os.cpu_count() or 1)


def chunk_bounds(rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Start and end row of each chunk: ``ceil(rows / chunk_rows)`` chunks of at most ``chunk_rows``.

    Args:
        rows: Rows in all.
        chunk_rows: Largest chunk (at least 1).

    Returns:
        ``[(start, end), ...]`` covering ``range(rows)`` in order; one empty chunk when ``rows`` is 0.

    Raises:
        ValueError: When ``chunk_rows`` is below 1.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if rows == 0:
        return [(0, 0)]
    return [(start, min(start + chunk_rows, rows)) for start in range(0, rows, chunk_rows)]


def dask_worker_address() -> str | None:
    """The address of the Dask worker running this code, or None outside a Dask task."""
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - distributed is a dependency (prefect-dask)
        return None
    try:
        return get_worker().address
    except ValueError:
        return None


def map_chunks(
    function: Callable[[Any, np.ndarray], Result],
    shared: Any,
    values: np.ndarray,
    *,
    chunk_rows: int | None = None,
    local_workers: int | None = None,
    label: str = "ews-chunk",
    on_dask: bool = True,
) -> ChunkMap:
    """Apply ``function(shared, chunk)`` to consecutive chunks of rows of ``values``.

    Args:
        function: A module-level (picklable) pure function of the shared object (e.g. a fitted
            model) and a block of rows; it must not touch the warehouse.
        shared: Sent once to each process or worker that computes chunks.
        values: The rows (first axis), e.g. the design matrix of the scored pupils.
        chunk_rows: Rows a chunk; default ``EWS_COMPUTE_CHUNK_PUPILS``.
        local_workers: Processes of the local pool outside Dask; default ``EWS_COMPUTE_WORKERS``.
            1 computes the chunks one after another in this process.
        label: Prefix of the Dask task keys (shown on Dask's dashboard).
        on_dask: Whether chunks may go to the Dask cluster when this runs inside a Dask task
            and ``EWS_COMPUTE_ON_DASK`` is on. False for chunks that hold personal data
            (names): inside a fleet they are then always computed in this process, one after
            another, never on a worker shared with other municipalities or spilled to its disk.

    Returns:
        The results in row order, with where they were computed.
    """
    size = chunk_rows if chunk_rows is not None else compute_chunk_pupils()
    chunks = [values[start:end] for start, end in chunk_bounds(len(values), size)]
    if len(chunks) == 1:
        return ChunkMap([function(shared, chunks[0])], 1, "inline", 1)
    if dask_worker_address() is not None:
        if not (on_dask and compute_on_dask()):
            return ChunkMap([function(shared, chunk) for chunk in chunks], len(chunks), "inline", 1)
        return _map_on_dask(function, shared, chunks, label)
    workers = min(local_workers if local_workers is not None else compute_workers(), len(chunks))
    if workers <= 1:
        return ChunkMap([function(shared, chunk) for chunk in chunks], len(chunks), "inline", 1)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = list(pool.map(function, [shared] * len(chunks), chunks))
    return ChunkMap(results, len(chunks), "local_pool", workers)


def _map_on_dask(function: Callable[[Any, np.ndarray], Result], shared: Any, chunks: list[np.ndarray],
                 label: str) -> ChunkMap:
    """Compute the chunks as tasks of the cluster this worker belongs to, and gather them in order.

    ``worker_client`` secedes this thread from the worker's thread pool while it waits (and
    rejoins after), so the chunks can run on this worker too; Dask's work stealing moves some to
    idle workers.
    """
    from distributed import get_worker, worker_client

    run = uuid.uuid4().hex[:12]
    here = [get_worker().address]
    with worker_client() as client:
        # the data stay on this worker (whose thread is free while it waits): the chunks start
        # here, and idle workers steal some; scattered round-robin, chunks could wait behind
        # another municipality's run on a busy worker
        [shared_future] = client.scatter([shared], workers=here, hash=False)  # a list: never split the object
        chunk_futures = client.scatter(chunks, workers=here, hash=False)
        # asked for on this worker, loosely (others may take them): tasks with a worker wish are
        # never "root-ish", which the scheduler would hold back while this worker has no free
        # slot; tasks waiting on the worker (municipalities held for a resource) count as
        # occupying it, so the chunks of a seceded run waited for ever (bench/dask_secede_queue.py)
        futures = client.map(function, [shared_future] * len(chunks), chunk_futures,
                             key=[f"{label}-{run}-{i}" for i in range(len(chunks))], pure=False,
                             workers=here, allow_other_workers=True)
        results = client.gather(futures)
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {})) or 1
        client.cancel([*futures, *chunk_futures, shared_future])
    return ChunkMap(list(results), len(chunks), "dask", workers)
