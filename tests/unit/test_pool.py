"""libaci.sources.oci_import.Pool: the small thread pool of the fetch (no concurrent.futures)."""

from __future__ import annotations

import threading
import time

import pytest

from libaci.sources.oci_import import Pool


def test_a_job_submitted_after_the_workers_went_idle_still_runs() -> None:
    with Pool(2) as pool:
        assert pool.submit(lambda: 1).result() == 1
        time.sleep(0.05)  # the worker found nothing more to do and ended
        assert pool.submit(lambda: 2).result() == 2


def test_results_in_order_and_at_most_workers_at_once() -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i * i

    with Pool(3) as pool:
        jobs = [pool.submit(job, i) for i in range(10)]
        assert [j.result() for j in jobs] == [i * i for i in range(10)]
    assert peak == 3


def test_errors_are_raised_by_result_and_cancel_skips_the_rest() -> None:
    started: list[int] = []
    gate = threading.Event()

    def job(i: int) -> None:
        started.append(i)
        if i == 0:
            gate.wait(5)
            raise ValueError("boom")

    with Pool(1) as pool:
        jobs = [pool.submit(job, i) for i in range(3)]
        pool.cancel(RuntimeError("stop"))
        gate.set()
        with pytest.raises(ValueError, match="boom"):
            jobs[0].result()
        for j in jobs[1:]:
            with pytest.raises(RuntimeError, match="stop"):
                j.result()
    assert started == [0]
