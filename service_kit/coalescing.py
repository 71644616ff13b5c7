"""Group commit: concurrent small units of work under one key are processed as one, each caller getting its own answer.

Ingest groups a partner's small submissions (ADR 0406); the gateway groups concurrent transfers' ledger postings per
region and their state changes (ADR 0619, 0620). Each key has a few processing slots; while they are busy, arrivals
wait in one open group, and the first of them processes the whole group when a slot frees (the others wait for its
answer). Under low load a unit is processed at once, alone; under load groups grow by themselves, with no timer
adding latency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class _Group(Generic[Item, Answer]):
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.size = 0
        self.answers: list[Answer] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class Coalescer(Generic[Item, Answer]):
    """`submit(key, item, size)` returns `process([items of its group])[its position]`; groups never mix keys and
    never exceed `max_size`. An exception of `process` is raised to every member of the group."""

    def __init__(
        self, process: Callable[[Sequence[Item]], list[Answer]], slots_per_key: int = 2, max_size: int = 5000
    ) -> None:
        self._process = process
        self._slots_per_key = slots_per_key
        self._max_size = max_size
        self._lock = threading.Lock()
        self._open: dict[str, _Group[Item, Answer]] = {}
        self._slots: dict[str, threading.Semaphore] = {}

    def submit(self, key: str, item: Item, size: int) -> Answer:
        with self._lock:
            group = self._open.get(key)
            if group is None or group.size + size > self._max_size:
                group = self._open[key] = _Group()
            position = len(group.items)
            group.items.append(item)
            group.size += size
            slots = self._slots.setdefault(key, threading.Semaphore(self._slots_per_key))
        if position == 0:
            self._lead(key, group, slots)
        else:
            group.done.wait()
        if group.error is not None:
            raise group.error
        return group.answers[position]

    def _lead(self, key: str, group: _Group[Item, Answer], slots: threading.Semaphore) -> None:
        with slots:  # while every slot of this key is busy, later arrivals join `group`
            with self._lock:
                if self._open.get(key) is group:
                    del self._open[key]  # closed: from here on arrivals start the next group
            try:
                group.answers = self._process(group.items)
            except BaseException as error:  # handed to every member, the leader included
                group.error = error
            finally:
                group.done.set()
