"""A bounded frame queue that either blocks (files: back-pressure) or drops the oldest (live)."""

from __future__ import annotations

import collections
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """Raised by `get` on a closed, empty queue."""


class BoundedQueue(Generic[T]):
    """FIFO with a size limit.

    `put(item, drop_oldest=False)` blocks while the queue is full; with `drop_oldest=True` it
    instead removes and returns the oldest item so the caller can count it. `put_force` never
    blocks and never drops (end-of-stream markers).
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T, drop_oldest: bool = False) -> T | None:
        """Append; return the item dropped to make room (only with `drop_oldest`), else None."""
        with self._cond:
            dropped: T | None = None
            if drop_oldest:
                if len(self._items) >= self.maxsize:
                    dropped = self._items.popleft()
            else:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._cond.wait()
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def put_wait(self, item: T, timeout: float) -> bool:
        """Append, waiting at most `timeout` seconds for room; False (nothing added) on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self._items) >= self.maxsize and not self._closed:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def put_force(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T:
        """Pop the oldest item; `TimeoutError` after `timeout` seconds; `Closed` when closed and empty."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed()
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError()
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_many(self, limit: int, timeout: float | None = None) -> list[T]:
        """Block for one item (see `get`), then take up to `limit` in total without waiting."""
        first = self.get(timeout)
        out = [first]
        with self._cond:
            while self._items and len(out) < limit:
                out.append(self._items.popleft())
            self._cond.notify_all()
        return out

    def close(self) -> None:
        """Wake every waiter; `get` raises `Closed` once the queue is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
