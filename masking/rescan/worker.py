"""The worker side of a rescan: audit one item and return a plain dict.

`run_item(spec)` is a pure function of its spec (plus the files it names): it builds (once per
worker thread, then cached) the same `masking.audit.Auditor` that `masking audit` uses, audits the
image, clip or stream sample, and returns the `AuditResult.to_dict()` object with a JPEG thumbnail
of the evidence frame. Errors are returned, not raised, so the driver can record and retry them.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from masking.errors import ConfigError, MaskingError
from masking.rescan.items import segment_label

log = logging.getLogger(__name__)

_THREADS: int | None = None
_FACTORY: str | None = None
_LOCAL = threading.local()
_ORT_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_budget(threads: int, factory: str | None = None) -> None:
    """ORT threads for auditors built from now on in this process (no process-wide side effects)."""
    global _THREADS, _FACTORY
    _THREADS = max(1, int(threads))
    _FACTORY = factory


def configure(threads: int, factory: str | None = None) -> None:
    """Set this worker process's thread budget (and an optional Auditor factory, `module:function`).

    Called as the process-pool initializer: ORT intra-op threads and OpenMP/BLAS threads are capped
    to `threads`, and OpenCV to one thread, so N workers do not oversubscribe the cores.
    """
    set_budget(threads, factory)
    for var in _ORT_ENV:
        os.environ[var] = str(_THREADS)
    cv2.setNumThreads(1)


def configure_local(threads: int, factory: str | None = None) -> None:
    """Initializer of a local worker process: `configure`, and tie the worker to its driver.

    Ctrl-C reaches the whole process group; the driver alone decides what happens then (it stops its
    workers), so a worker ignores SIGINT. A worker whose driver is gone (SIGKILL, a crash) exits by
    itself: on Linux the kernel sends it SIGKILL (PR_SET_PDEATHSIG); elsewhere, and as a backstop, a
    watchdog thread notices within a second that its parent changed.
    """
    configure(threads, factory)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the driver died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog", daemon=True).start()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - the watchdog still covers it
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; relying on the watchdog")


def _watch_parent(parent: int, period_s: float = 1.0) -> None:
    while True:
        time.sleep(period_s)
        if os.getppid() != parent:
            os._exit(1)


def _load_factory(path: str) -> Callable[[dict[str, Any], int], Any]:
    mod, _, name = path.partition(":")
    if not mod or not name:
        raise ConfigError(f"auditor factory {path!r}: expected `module:function`")
    try:
        fn = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"auditor factory {path!r} cannot be imported: {exc}") from exc
    return fn  # type: ignore[no-any-return]


def default_auditor(settings: dict[str, Any], threads: int) -> Any:
    """The `masking audit` Auditor for these settings (models resolved through the model cache)."""
    from masking.audit import Auditor, AuditSettings

    return Auditor(AuditSettings.model_validate(settings), threads=threads)


def _auditor(settings: dict[str, Any], factory: str | None) -> Any:
    """One Auditor per worker thread and settings (an ORT session is built once, then reused)."""
    cache: dict[tuple[str, str | None], Any] = _LOCAL.__dict__.setdefault("auditors", {})
    key = (json.dumps(settings, sort_keys=True), factory)
    if key not in cache:
        threads = _THREADS or 1
        build = _load_factory(factory) if factory else default_auditor
        cache[key] = build(settings, threads)
        log.debug("worker %d: auditor ready (%d thread(s))", os.getpid(), threads)
    return cache[key]


def _privacy(show_unmasked: bool) -> Any:
    """One `PrivacyFilter` per worker thread (its face model is loaded once, then reused)."""
    from masking.report.pictures import PrivacyFilter

    cache: dict[bool, Any] = _LOCAL.__dict__.setdefault("privacy", {})
    if show_unmasked not in cache:
        cache[show_unmasked] = PrivacyFilter(show_unmasked=show_unmasked, threads=_THREADS or 1)
    return cache[show_unmasked]


def _thumbnail(result: Any, camera: Any, show_unmasked: bool = False) -> bytes | None:
    """The evidence frame as the report shows it (`masking.audit.report.audit_picture`: zones
    masked as recorded and faces blurred unless `show_unmasked`, downscaled to 320 px, annotated),
    as JPEG bytes."""
    from masking.audit.report import audit_picture

    picture = audit_picture(result, camera, _privacy(show_unmasked))
    return picture.jpeg if picture is not None else None


def run_item(spec: dict[str, Any]) -> dict[str, Any]:
    """Audit one item. `spec`: item_id, kind (image|video|stream), source, stream_seconds, segment
    ([start, end] seconds of a clip, or None for all of it), camera (zones Camera as a dict, or None), settings (AuditSettings as a dict), factory,
    show_unmasked (optional: thumbnail without masking zones and blurring faces).

    Returns {item_id, ok, result, thumbnail, duration_s, worker} or {item_id, ok: False, error, ...};
    `duration_s` is the audit's time (reading, sampling, detection, thumbnail), not model loading.
    """
    from masking.audit.auditor import sample_video
    from masking.config.zones import Camera

    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out: dict[str, Any] = {"item_id": spec["item_id"], "worker": worker}
    try:
        auditor = _auditor(spec["settings"], spec.get("factory") or _FACTORY)
        t0 = time.perf_counter()  # the item's time is the audit's, not the first call's model loading
        camera = Camera.model_validate(spec["camera"]) if spec.get("camera") else None
        kind, source = spec["kind"], spec["source"]
        settings = spec["settings"]
        fps, max_frames = float(settings.get("sample_fps", 1.0)), int(settings.get("max_frames", 60))
        if kind == "stream":
            frames = sample_video(source, fps, max_frames, 0.0, float(spec["stream_seconds"]))
            result = auditor.audit_frames(frames, camera, source)
        elif kind == "video" and spec.get("segment"):
            start, end = spec["segment"]
            frames = sample_video(source, fps, max_frames, float(start), None if end is None else float(end))
            result = auditor.audit_frames(frames, camera, segment_label(source, spec["segment"]))
        elif kind in ("image", "video"):
            result = auditor.audit_path(Path(source), camera)
        else:
            raise ConfigError(f"item {spec['item_id']}: unknown kind {kind!r}")
        out.update(ok=True, result=result.to_dict(),
                   thumbnail=_thumbnail(result, camera, bool(spec.get("show_unmasked"))))
    except MaskingError as exc:
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        log.error("item %s (%s): unexpected error\n%s", spec["item_id"], spec.get("source"), traceback.format_exc())
        out.update(ok=False, error=f"unexpected {type(exc).__name__}: {exc}")
    out["duration_s"] = time.perf_counter() - t0
    return out


def configure_dask(budgets: dict[str, int], factory: str | None = None, dask_worker: Any = None) -> None:
    """Run on every Dask worker by the driver (`Client.run`): its share of its machine's cores."""
    address = getattr(dask_worker, "address", None)
    configure(budgets.get(address, 1) if address else 1, factory)


def run_item_on_dask(spec: dict[str, Any], factory: str | None = None) -> dict[str, Any]:
    """`run_item` on a Dask worker: the thread budget is the machine's cores / the worker's threads."""
    if _THREADS is None:
        try:
            from distributed import get_worker

            nthreads = int(get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            nthreads = 1
        configure(max(1, (os.cpu_count() or 1) // max(1, nthreads)), factory)
    if factory and not spec.get("factory"):
        spec = {**spec, "factory": factory}
    return run_item(spec)
