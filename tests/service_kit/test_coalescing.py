"""Group commit of small submissions: while a partner's processing slots are busy, arrivals form one group."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from service_kit.coalescing import Coalescer


class Recorder:
    """process(): records each group; the first call blocks until `release` is set, keeping its slot busy."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        if len(self.groups) == 1:
            self.entered.set()
            assert self.release.wait(timeout=10)
        if "boom" in items:
            raise RuntimeError("the group failed")
        return [item.upper() for item in items]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)  # polling the coalescer's state: the members are threads started by the test


def _occupy_the_slot(
    pool: ThreadPoolExecutor, coalescer: Coalescer[str, str], recorder: Recorder, item: str = "a"
) -> Future[str]:
    """Submits `item` for metro and returns once its group is being processed (held there by the recorder)."""
    first = pool.submit(coalescer.submit, "metro", item, 1)
    assert recorder.entered.wait(timeout=10)
    return first


def test_arrivals_while_the_slot_is_busy_are_processed_as_one_group_each_getting_its_own_answer() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(recorder, slots_per_key=1)
    with ThreadPoolExecutor(8) as pool:
        first = _occupy_the_slot(pool, coalescer, recorder)
        later = [pool.submit(coalescer.submit, "metro", item, 1) for item in "bcde"]
        _wait_for(lambda: len(coalescer._open["metro"].items) == 4)
        recorder.release.set()
        assert first.result(timeout=10) == "A"
        assert [f.result(timeout=10) for f in later] == ["B", "C", "D", "E"]
    assert recorder.groups == [["a"], ["b", "c", "d", "e"]]


def test_partners_are_never_grouped_together_and_groups_respect_the_size_limit() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(recorder, slots_per_key=1, max_size=3)
    with ThreadPoolExecutor(8) as pool:
        first = _occupy_the_slot(pool, coalescer, recorder, "m0")
        bikes = pool.submit(coalescer.submit, "bikes", "b0", 1)  # its own key: its own slot, at once
        assert bikes.result(timeout=10) == "B0"
        # Each weighs 2, so no two fit in a group of 3, whenever they arrive.
        later = [pool.submit(coalescer.submit, "metro", f"m{n}", 2) for n in range(1, 4)]
        recorder.release.set()
        assert first.result(timeout=10) == "M0"
        assert sorted(f.result(timeout=10) for f in later) == ["M1", "M2", "M3"]
    assert all(len(group) == 1 for group in recorder.groups)
    assert sorted(item for group in recorder.groups for item in group) == ["b0", "m0", "m1", "m2", "m3"]


def test_a_failing_group_raises_to_every_member() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, str] = Coalescer(recorder, slots_per_key=1)
    with ThreadPoolExecutor(4) as pool:
        first = _occupy_the_slot(pool, coalescer, recorder)
        doomed = [pool.submit(coalescer.submit, "metro", item, 1) for item in ("boom", "x")]
        _wait_for(lambda: len(coalescer._open["metro"].items) == 2)
        recorder.release.set()
        assert first.result(timeout=10) == "A"
        for future in doomed:
            with pytest.raises(RuntimeError, match="the group failed"):
                future.result(timeout=10)
    assert recorder.groups[1] == ["boom", "x"]
