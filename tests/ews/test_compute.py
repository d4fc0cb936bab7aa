"""Chunks of pupils: in order, the same results inline, in a local pool and on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client, LocalCluster

from ews.compute import chunk_bounds, dask_worker_address, map_chunks


def _row_sums(offset: float, values: np.ndarray) -> np.ndarray:
    return values.sum(axis=1) + offset


def test_chunk_bounds_cover_every_row_once_in_order():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(8, 4) == [(0, 4), (4, 8)]
    assert chunk_bounds(3, 10) == [(0, 3)]
    assert chunk_bounds(0, 5) == [(0, 0)]
    with pytest.raises(ValueError, match="at least 1"):
        chunk_bounds(5, 0)


def test_one_chunk_is_computed_here_and_several_come_back_in_row_order():
    values = np.arange(30, dtype=float).reshape(15, 2)
    whole = map_chunks(_row_sums, 0.5, values, chunk_rows=100, local_workers=1)
    assert (whole.chunks, whole.backend) == (1, "inline")
    split = map_chunks(_row_sums, 0.5, values, chunk_rows=4, local_workers=1)
    assert split.chunks == 4 and [len(r) for r in split.results] == [4, 4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(split.results), whole.results[0])


def test_the_chunk_size_comes_from_the_setting(monkeypatch):
    monkeypatch.setenv("EWS_COMPUTE_CHUNK_PUPILS", "100")
    values = np.ones((250, 2))
    assert map_chunks(_row_sums, 0.0, values, local_workers=1).chunks == 3


@pytest.fixture(scope="module")
def dask_client():
    """A Dask cluster of one worker thread in this process (cheap; the fleet's test mode)."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def _inside_a_task(values: np.ndarray) -> tuple[str | None, str, int, np.ndarray]:
    mapped = map_chunks(_row_sums, 0.5, values, chunk_rows=4, local_workers=1)
    return dask_worker_address(), mapped.backend, mapped.chunks, np.concatenate(mapped.results)


def test_inside_a_dask_task_the_chunks_stay_in_the_task_unless_asked_to_go_to_the_cluster(dask_client,
                                                                                           monkeypatch):
    values = np.arange(30, dtype=float).reshape(15, 2)
    assert dask_worker_address() is None
    # by default (a fleet): one after another in the task's own thread, which never secedes
    address, backend, chunks, result = dask_client.submit(_inside_a_task, values, pure=False).result(timeout=120)
    assert address is not None and (backend, chunks) == ("inline", 4)
    np.testing.assert_array_equal(result, _row_sums(0.5, values))
    # EWS_COMPUTE_ON_DASK: the task secedes while it waits, so its own (only) worker thread
    # computes the chunks (the worker is a thread of this process: it sees the setting)
    monkeypatch.setenv("EWS_COMPUTE_ON_DASK", "1")
    address, backend, chunks, result = dask_client.submit(_inside_a_task, values, pure=False).result(timeout=120)
    assert address is not None and (backend, chunks) == ("dask", 4)
    np.testing.assert_array_equal(result, _row_sums(0.5, values))


def _inside_a_task_kept_off_the_cluster(values: np.ndarray) -> tuple[str | None, str, int, np.ndarray]:
    mapped = map_chunks(_row_sums, 0.5, values, chunk_rows=4, local_workers=2, on_dask=False)
    return dask_worker_address(), mapped.backend, mapped.chunks, np.concatenate(mapped.results)


def test_chunks_that_hold_names_stay_in_the_task_that_made_them(dask_client):
    """``on_dask=False`` (the UU working lists: names): inside a Dask task the chunks are
    computed by that task, one after another, not sent to the cluster or to a local pool."""
    values = np.arange(30, dtype=float).reshape(15, 2)
    address, backend, chunks, result = dask_client.submit(_inside_a_task_kept_off_the_cluster, values,
                                                          pure=False).result(timeout=120)
    assert address is not None and (backend, chunks) == ("inline", 4)
    np.testing.assert_array_equal(result, _row_sums(0.5, values))


def _a_municipality(values: np.ndarray) -> str:
    return map_chunks(_row_sums, 0.5, values, chunk_rows=4, local_workers=1).backend


def test_chunks_on_the_cluster_run_while_municipalities_wait_for_the_worker(monkeypatch):
    """Three municipalities queued on one worker of one thread that offers one ``municipality``
    resource, each sending three chunks to the cluster (``EWS_COMPUTE_ON_DASK``).

    With the chunks as plain tasks the scheduler held them back (root-ish queueing): the
    municipalities waiting on the worker for its resource counted as occupying it, so the
    seceded run waited on its chunks for ever (bench/dask_secede_queue.py; the national fleet's
    second attempt). Asked for on the run's worker, loosely, they are never held back.
    """
    monkeypatch.setenv("EWS_COMPUTE_ON_DASK", "1")
    # three chunks: with four, the chunks' five scattered inputs (separate task groups) already
    # made them not root-ish, which is why the national fleet's first two runs (4 and 2 chunks)
    # went through and the third (3 chunks) hung
    values = np.arange(24, dtype=float).reshape(12, 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      resources={"municipality": 1}) as cluster, Client(cluster) as client:
        futures = [client.submit(_a_municipality, values, resources={"municipality": 1}, pure=False)
                   for _ in range(3)]
        assert [future.result(timeout=30) for future in futures] == ["dask"] * 3
