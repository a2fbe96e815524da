"""Reading ahead on a background thread: the next block of patterns is read and decompressed from its file
while the current one is being computed on.

Why a thread and not processes: h5py and numpy release the GIL while they read, decompress and convert, and
torch releases it while it computes, so one thread overlaps the two without copying blocks between
processes (measured: a 2-core machine ran FFTs at full speed while a thread read a 655 MB file).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Prefetcher:
    """Runs ``tasks`` (callables) one after another on a background thread, at most ``depth`` ahead of the
    consumer, and yields their results in order. An exception in a task is raised in the consumer; leaving
    the loop early (``close``) stops the thread after its current task."""

    _DONE = object()

    def __init__(self, tasks: Iterator[Callable[[], Any]], depth: int = 1) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(tasks,), name="pattern-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, tasks: Iterator[Callable[[], Any]]) -> None:
        try:
            for task in tasks:
                if self._stop.is_set() or not self._put((True, task())):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put((False, error))
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            ok, value = item
            if not ok:
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)
