"""Where work items run: in this process, in local worker processes, or on a Dask cluster.

Every engine runs the same pure function, `masking.rescan.worker.run_item(spec) -> dict`, and hands
the dicts back to the driver, which alone writes the store. Engines only move work; retries and
bookkeeping are the driver's (`masking.rescan.runner`).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any, Protocol

from masking.errors import ConfigError
from masking.rescan import worker

log = logging.getLogger(__name__)

Spec = dict[str, Any]


class Engine(Protocol):
    """Runs `worker.run_item` on specs; `wait` returns the handles that finished."""

    name: str
    slots: int  # how many items run at once

    def submit(self, spec: Spec) -> Any: ...

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]: ...

    def result(self, handle: Any) -> dict[str, Any]:
        """The worker's dict, or raises what the transport raised (crash, lost worker)."""
        ...

    def close(self, abandon: bool = False) -> None:
        """Release the workers; `abandon` (an interruption) drops in-flight items instead of waiting."""
        ...


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """onnxruntime threads per worker so that workers x threads <= cores (at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


class _Done:
    """A finished inline 'future'."""

    def __init__(self, value: dict[str, Any] | None, exc: BaseException | None) -> None:
        self.value = value
        self.exc = exc


class InlineEngine:
    """Runs items in this process, one at a time (`--workers 0`): for debugging and the benchmark."""

    name = "inline"

    def __init__(self, factory: str | None = None) -> None:
        self.slots = 1
        worker.set_budget(threads_per_worker(1), factory)

    def submit(self, spec: Spec) -> _Done:
        try:
            return _Done(worker.run_item(spec), None)
        except Exception as exc:
            return _Done(None, exc)

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]:
        return list(handles)

    def result(self, handle: _Done) -> dict[str, Any]:
        if handle.exc is not None:
            raise handle.exc
        assert handle.value is not None
        return handle.value

    def close(self, abandon: bool = False) -> None:
        return None


class LocalEngine:
    """`--workers N` local processes, each with one cached Auditor and ORT threads capped to cores / N.

    Processes are spawned (not forked): the driver holds an SQLite connection and threads, which a
    fork would copy in an undefined state.
    """

    name = "local"

    def __init__(self, workers: int, factory: str | None = None, threads: int | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1 for the local engine, got {workers}")
        self.slots = workers
        self._threads = threads or threads_per_worker(workers)
        self._factory = factory
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.configure_local,
            initargs=(self._threads, self._factory),
        )

    def submit(self, spec: Spec) -> cf.Future[dict[str, Any]]:
        try:
            return self._pool.submit(worker.run_item, spec)
        except cf.process.BrokenProcessPool:
            log.warning("a worker process died; starting a new pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(worker.run_item, spec)

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]:
        done, _ = cf.wait(handles, timeout=timeout_s, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: cf.Future[dict[str, Any]]) -> dict[str, Any]:
        return handle.result()

    def close(self, abandon: bool = False) -> None:
        if not abandon:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:  # abandon the items they are working on
            proc.terminate()
        for proc in processes:
            proc.join(timeout=5.0)
        log.info("stopped %d worker process(es)", len(processes))


class DaskEngine:
    """`--scheduler tcp://HOST:PORT`: items run on an existing Dask distributed cluster.

    Workers resolve model files through their own model cache (`masking models pull` on each
    machine, or a shared `$MASKING_MODEL_DIR`), read footage from the same paths as the driver
    (a shared file system) and return plain dicts; only the driver writes the store.
    """

    name = "dask"

    def __init__(self, address: str, factory: str | None = None, connect_timeout_s: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a declared extra
            raise ConfigError("--scheduler needs dask distributed: pip install 'masking[dask]'") from exc
        try:
            self._client = Client(address, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {address}: cannot connect to the Dask scheduler: {exc}") from exc
        self._factory = factory
        nthreads = self._client.nthreads()
        if not nthreads:
            self._client.close()
            raise ConfigError(f"--scheduler {address}: the cluster has no workers")
        self.slots = max(1, sum(nthreads.values()))
        self._client.run(worker.configure_dask, _dask_budgets(self._client, nthreads), factory)
        log.info("dask: %d worker(s), %d thread(s) at %s", len(nthreads), self.slots, address)

    def submit(self, spec: Spec) -> Any:
        return self._client.submit(worker.run_item_on_dask, spec, self._factory, pure=False, retries=0)

    def wait(self, handles: Sequence[Any], timeout_s: float) -> list[Any]:
        from distributed import wait as dwait

        try:
            with self._client.as_current():  # our client is not the process-wide default
                done, _ = dwait(list(handles), timeout=timeout_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return dict(handle.result())
        finally:
            handle.release()

    def close(self, abandon: bool = False) -> None:
        self._client.close()


def _dask_budgets(client: Any, nthreads: dict[str, int]) -> dict[str, int]:
    """ORT threads per Dask worker: its machine's cores / all worker threads on that machine."""
    cores: dict[str, int] = client.run(os.cpu_count)
    host_threads: dict[str, int] = {}
    for addr, n in nthreads.items():
        host = _host_of(addr)
        host_threads[host] = host_threads.get(host, 0) + n
    return {
        addr: max(1, (cores.get(addr) or 1) // max(1, host_threads[_host_of(addr)]))
        for addr in nthreads
    }


def _host_of(address: str) -> str:
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def make_engine(workers: int, scheduler: str | None, factory: str | None = None) -> Engine:
    """The engine for the CLI options: Dask when a scheduler is given, else local processes
    (`workers` >= 1) or inline (`workers` == 0)."""
    if scheduler:
        return DaskEngine(scheduler, factory)
    if workers == 0:
        return InlineEngine(factory)
    return LocalEngine(workers, factory)
