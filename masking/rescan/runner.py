"""The rescan driver: plan items, skip finished ones, dispatch the rest, retry, record, combine.

The driver is the only writer of the store. Each item is claimed in the store right before it is
dispatched, retried up to `attempts` times when it fails, and recorded as `done` or `failed`; a
failure never stops the other items. When the loop ends (or is interrupted) the run's claims are
released, so running the same command again resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field

from masking.config.validation import StrictModel
from masking.digest import content_sha256
from masking.rescan.combine import combine_results, deciding_item
from masking.rescan.engines import Engine, make_engine
from masking.rescan.items import WorkItem, plan_items
from masking.rescan.manifest import Fleet, FleetCamera
from masking.rescan.store import ItemOutcome, Store
from masking.signals import exit_status

log = logging.getLogger(__name__)

RESULTS_SCHEMA_VERSION = 1
_WAIT_S = 0.5  # poll period for results, and for items another run is working on


class RescanOptions(StrictModel):
    """How a rescan runs (the audit itself is configured by `settings`)."""

    model_config = ConfigDict(frozen=False)

    settings: dict[str, Any] = Field(description="AuditSettings as a dict (the same as `masking audit`).")
    workers: int = Field(
        2, ge=0, le=512,
        description="Local worker processes (0 = audit in the driver process). Default 2: this machine "
        "class has few cores and each worker gets cores / workers ORT threads.",
    )
    scheduler: str | None = Field(None, description="Dask scheduler address (tcp://HOST:PORT); overrides workers.")
    attempts: int = Field(
        3, ge=1, le=20, description="Tries per item before it is recorded as failed (3: rides out a flaky "
        "NFS read or a lost worker, gives up quickly on a truly broken file)."
    )
    force: bool = Field(False, description="Redo items already done under the same key.")
    segment_seconds: float | None = Field(
        None, ge=5.0, le=86400.0,
        description="Split clips longer than 1.5x this into items of about this many seconds (default: "
        "one item per clip; set it for long recordings so a failure redoes minutes, not hours).",
    )
    max_items: int | None = Field(
        None, ge=1, description="Dispatch at most this many items in this run (a staged or trial run); "
        "the rest stays pending for the next run."
    )
    lease_s: float = Field(
        1800.0, ge=10.0, le=86400.0,
        description="How long a claim on an item holds before another run may take it over (a dead run on "
        "the same host is detected at once by its pid).",
    )
    factory: str | None = Field(
        None, description="`module:function(settings, threads) -> Auditor` building the auditor on workers; "
        "default masking.audit.Auditor. A seam for tests and custom detectors."
    )
    show_unmasked: bool = Field(
        False, description="Store thumbnails without masking the camera's zones or blurring faces "
        "(default: masked as recorded, faces blurred). Not part of an item's key: done items keep their "
        "thumbnails until --force."
    )


@dataclass
class Progress:
    """Counters handed to the progress callback after every finished item."""

    total: int  # items this run has to do (not counting skipped)
    done: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0  # already done (before the run, or by a concurrent run)

    @property
    def finished(self) -> int:
        return self.done + self.failed


@dataclass
class RescanResult:
    """What a rescan produced: per-camera objects (results.json), thumbnails, run counters."""

    run_id: int
    status: str  # finished | stopped | interrupted
    engine: str
    fleet: str
    settings: dict[str, Any]
    cameras: list[dict[str, Any]]
    thumbnails: dict[str, bytes] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    exit_status: int | None = None  # 130 / 143 when a signal interrupted the run

    @property
    def items_failed(self) -> int:
        return sum(int(c["items_failed"]) for c in self.cameras)

    @property
    def items_pending(self) -> int:
        return sum(int(c["items_pending"]) for c in self.cameras)

    def summary(self) -> dict[str, int]:
        """Cameras per verdict, and items."""
        out = {"cameras": len(self.cameras)}
        for v in ("violation", "review", "compliant", "failed", "pending"):
            out[v] = sum(1 for c in self.cameras if c["verdict"] == v)
        out["items"] = sum(int(c["items_total"]) for c in self.cameras)
        out["items_failed"] = self.items_failed
        out["items_pending"] = self.items_pending
        return out


def _spec(item: WorkItem, cam: FleetCamera, options: RescanOptions) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "camera_id": item.camera_id,
        "kind": item.kind,
        "source": item.source,
        "stream_seconds": item.stream_seconds,
        "segment": list(item.segment) if item.segment else None,
        "camera": cam.zones.model_dump(mode="json") if cam.zones is not None else None,
        "settings": options.settings,
        "factory": options.factory,
        "show_unmasked": options.show_unmasked,
    }


class _Driver:
    def __init__(self, fleet: Fleet, options: RescanOptions, store: Store, items: list[WorkItem],
                 run_id: int, progress: Callable[[Progress], None] | None) -> None:
        self.fleet, self.options, self.store, self.run_id = fleet, options, store, run_id
        self.by_id = {it.item_id: it for it in items}
        self.cams = {c.camera_id: c for c in fleet.cameras}
        self.progress_cb = progress
        self.tries: Counter[str] = Counter()
        self.errors: dict[str, list[str]] = {}
        self.dispatched = 0
        self.stopped = False

    def _tick(self, prog: Progress) -> None:
        if self.progress_cb is not None:
            self.progress_cb(prog)

    def _finish(self, prog: Progress, outcome: ItemOutcome) -> None:
        self.store.record(self.run_id, outcome)
        if outcome.ok:
            prog.done += 1
        else:
            prog.failed += 1
            log.warning("item failed after %d attempt(s): %s (%s): %s", outcome.attempts,
                        self.by_id[outcome.item_id].label, self.by_id[outcome.item_id].camera_id, outcome.error)
        self._tick(prog)

    def run(self, todo: list[str], prog: Progress) -> None:
        queue: deque[str] = deque(todo)
        waiting: list[str] = []
        in_flight: dict[Any, str] = {}
        engine: Engine | None = None
        abandon = True
        try:
            while queue or in_flight or waiting:
                if engine is None and queue:
                    engine = make_engine(self.options.workers, self.options.scheduler, self.options.factory)
                while queue and engine is not None and len(in_flight) < 2 * engine.slots:
                    if self.options.max_items is not None and self.dispatched >= self.options.max_items:
                        self.stopped = True
                        queue.clear()
                        waiting.clear()
                        break
                    iid = queue.popleft()
                    claim = self.store.claim(iid, self.run_id, self.options.lease_s)
                    if claim == "done":
                        prog.skipped += 1
                        prog.total -= 1
                        self._tick(prog)
                        continue
                    if claim == "busy":
                        waiting.append(iid)
                        continue
                    item = self.by_id[iid]
                    if item.error is not None:  # footage that could not be planned: nothing to dispatch
                        self._finish(prog, ItemOutcome(iid, ok=False, error=item.error, errors=(item.error,)))
                        continue
                    in_flight[engine.submit(_spec(item, self.cams[item.camera_id], self.options))] = iid
                    self.dispatched += 1
                if not in_flight:
                    if waiting:  # another live run holds these: wait for it, then look again
                        time.sleep(_WAIT_S)
                        queue.extend(waiting)
                        waiting.clear()
                    continue
                assert engine is not None
                for handle in engine.wait(list(in_flight), _WAIT_S):
                    self._collect(engine, handle, in_flight, prog)
            abandon = False
        finally:
            if engine is not None:  # interrupted: in-flight items are abandoned (their claims released)
                engine.close(abandon=abandon)

    def _collect(self, engine: Engine, handle: Any, in_flight: dict[Any, str], prog: Progress) -> None:
        iid = in_flight.pop(handle)
        try:
            res = engine.result(handle)
        except Exception as exc:
            res = {"item_id": iid, "ok": False, "error": f"worker lost: {type(exc).__name__}: {exc}"}
        self.tries[iid] += 1
        if res.get("ok"):
            self._finish(prog, ItemOutcome(
                iid, ok=True, result=res["result"], thumbnail=res.get("thumbnail"),
                duration_s=res.get("duration_s"), worker=res.get("worker"),
                errors=tuple(self.errors.get(iid, ())), attempts=self.tries[iid],
            ))
            return
        error = str(res.get("error") or "unknown error")
        self.errors.setdefault(iid, []).append(error)
        if self.tries[iid] < self.options.attempts:
            prog.retried += 1
            log.info("item %s: attempt %d failed (%s); retrying", self.by_id[iid].label, self.tries[iid], error)
            in_flight[engine.submit(_spec(self.by_id[iid], self.cams[self.by_id[iid].camera_id], self.options))] = iid
            return
        self._finish(prog, ItemOutcome(
            iid, ok=False, error=error, worker=res.get("worker"), errors=tuple(self.errors[iid]),
            attempts=self.tries[iid],
        ))


def _engine_name(options: RescanOptions) -> str:
    return "dask" if options.scheduler else ("inline" if options.workers == 0 else "local")


def run_rescan(
    fleet: Fleet,
    options: RescanOptions,
    store: Store,
    progress: Callable[[Progress], None] | None = None,
) -> RescanResult:
    """Rescan a fleet into `store`; return the per-camera results of the whole fleet (this run's
    items and those finished before)."""
    t0 = time.perf_counter()
    keyed = {**options.settings, "_factory": options.factory} if options.factory else options.settings
    items = plan_items(fleet, keyed, hasher=lambda p: store.cached_hash(p, content_sha256),
                       segment_seconds=options.segment_seconds)
    engine_name = _engine_name(options)
    run_id = store.start_run(engine_name, options.workers if not options.scheduler else 0, fleet.source, options.settings)
    todo, skipped = store.sync_items(items, options.force)
    prog = Progress(total=len(todo), skipped=skipped)
    log.info("rescan run %d: %d camera(s), %d item(s): %d to do, %d already done (%s engine)",
             run_id, len(fleet.cameras), len(items), len(todo), skipped, engine_name)
    driver = _Driver(fleet, options, store, items, run_id, progress)
    status = "interrupted"
    stop_status: int | None = None
    try:
        driver.run(todo, prog)
        status = "stopped" if driver.stopped else "finished"
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM under masking.signals.sigterm_as_interrupt
        stop_status = exit_status(exc)
        log.warning("rescan run %d interrupted (%s): %d item(s) done, %d failed; the rest stays pending",
                    run_id, exc, prog.done, prog.failed)
    finally:
        store.finish_run(run_id, status, {"planned": len(items), "skipped": prog.skipped,
                                          "done": prog.done, "failed": prog.failed})
    cameras, thumbs = collect_cameras(fleet, items, store, run_id)
    return RescanResult(
        run_id=run_id, status=status, engine=engine_name, fleet=fleet.source, settings=options.settings,
        cameras=cameras, thumbnails=thumbs,
        counts={"planned": len(items), "skipped": prog.skipped, "done": prog.done, "failed": prog.failed,
                "retried": prog.retried},
        elapsed_s=time.perf_counter() - t0, exit_status=stop_status,
    )


def collect_cameras(
    fleet: Fleet, items: list[WorkItem], store: Store, run_id: int
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Combine each camera's current items (as the store holds them) into its camera object."""
    rows = {r["item_id"]: r for r in store.items([it.item_id for it in items])}
    cameras: list[dict[str, Any]] = []
    thumbs: dict[str, bytes] = {}
    by_camera: dict[str, list[WorkItem]] = {}
    for it in items:
        by_camera.setdefault(it.camera_id, []).append(it)
    for cam in fleet.cameras:
        cam_items = []
        for it in by_camera.get(cam.camera_id, []):
            if it.item_id not in rows:
                continue
            r = rows[it.item_id]
            cam_items.append({
                "item_id": it.item_id, "source": it.label, "kind": it.kind, "status": r["status"],
                "attempts": r["attempts"], "error": r["error"],
                "duration_s": r["duration_s"], "thumbnail": r["thumbnail"],
                "result": json.loads(r["result_json"]) if r["result_json"] else None,
            })
        combined = combine_results(cam.camera_id, cam.site, cam_items)
        combined["zones_file"] = cam.zones_path
        decider = deciding_item(combined, cam_items)
        thumb = decider.get("thumbnail") if decider else None
        if thumb:
            thumbs[cam.camera_id] = bytes(thumb)
        store.save_camera(run_id, combined, cam.zones_path, cam.zones_key(), thumbs.get(cam.camera_id))
        cameras.append(combined)
    return cameras, thumbs
