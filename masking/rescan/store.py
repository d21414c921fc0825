"""The rescan result store: one SQLite file in WAL mode (schema below, versioned in `meta`).

Only the driver writes the store; workers return plain dicts. Several rescans may share one store at
once: every write is a short `BEGIN IMMEDIATE` transaction (SQLite serialises writers, WAL lets
readers run beside them) and an item is *claimed* by a run before it is dispatched, so two runs over
the same fleet split the work instead of doing it twice. A claim whose run died (same host, process
gone) or whose lease expired is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masking._atomic import create_private
from masking.errors import StoreError
from masking.rescan.items import WorkItem

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at    REAL NOT NULL,              -- unix seconds
    finished_at   REAL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    engine        TEXT NOT NULL,              -- local | dask | inline
    workers       INTEGER NOT NULL,
    fleet         TEXT NOT NULL,              -- manifest file or folder
    settings_json TEXT NOT NULL,              -- the audit settings
    status        TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'stopped')),
    items_planned INTEGER NOT NULL DEFAULT 0,
    items_skipped INTEGER NOT NULL DEFAULT 0, -- already done under the same key
    items_done    INTEGER NOT NULL DEFAULT 0, -- finished by this run
    items_failed  INTEGER NOT NULL DEFAULT 0  -- failed after all attempts in this run
);
CREATE TABLE IF NOT EXISTS cameras (
    camera_id     TEXT PRIMARY KEY,
    site          TEXT,
    zones_path    TEXT,
    zones_key     TEXT,
    verdict       TEXT,                       -- violation | review | compliant | failed
    category      TEXT,
    confidence    REAL,
    result_json   TEXT,                       -- the combined result (results.json camera object)
    thumbnail     BLOB,                       -- JPEG
    updated_at    REAL,
    run_id        INTEGER REFERENCES runs(run_id)
);
CREATE TABLE IF NOT EXISTS items (
    item_id        TEXT PRIMARY KEY,          -- hash(camera_id, source, config_key)
    camera_id      TEXT NOT NULL,
    source         TEXT NOT NULL,             -- absolute path or stream URL (+ #t=START,END for a segment)
    kind           TEXT NOT NULL,             -- image | video | stream | missing
    content_hash   TEXT,                      -- sha256 of the file (NULL for streams)
    config_key     TEXT NOT NULL,             -- hash of audit settings + zones + sampling
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,-- tries over all runs
    error          TEXT,                      -- last error
    errors_json    TEXT,                      -- every error of the last run, in order
    claimed_by     INTEGER,                   -- run holding the item while running
    claim_host     TEXT,
    claim_pid      INTEGER,
    claim_expires  REAL,
    started_at     REAL,
    finished_at    REAL,
    duration_s     REAL,                      -- worker-side seconds of the successful try
    worker         TEXT,                      -- host:pid of the worker
    run_id         INTEGER REFERENCES runs(run_id),
    verdict        TEXT,
    category       TEXT,
    confidence     REAL,
    frames_sampled INTEGER,
    result_json    TEXT,                      -- AuditResult.to_dict()
    thumbnail      BLOB,
    UNIQUE (camera_id, source, config_key)
);
CREATE INDEX IF NOT EXISTS items_camera ON items (camera_id);
CREATE TABLE IF NOT EXISTS evidence (
    item_id     TEXT NOT NULL REFERENCES items(item_id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    camera_id   TEXT NOT NULL,
    label       TEXT,
    category    TEXT,
    confidence  REAL,
    frame_index INTEGER,
    time_s      REAL,
    detail_json TEXT NOT NULL,                -- the Evidence object as in `masking audit --json`
    PRIMARY KEY (item_id, seq)
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256   TEXT NOT NULL
);
"""

_HOST = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ItemOutcome:
    """What the driver records when an item finishes (successfully or not)."""

    item_id: str
    ok: bool
    result: dict[str, Any] | None = None
    thumbnail: bytes | None = None
    duration_s: float | None = None
    worker: str | None = None
    error: str | None = None
    errors: tuple[str, ...] = ()
    attempts: int = 1


class Store:
    """The SQLite store of one or more rescans."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        # Two rescans creating the same store at once can get SQLITE_BUSY from the switch to WAL
        # mode, for which SQLite does not call its busy handler: retry the whole open until timeout.
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            try:
                self._open(timeout_s)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + delay > deadline:
                    raise StoreError(f"{self.path}: cannot open the rescan store: {exc}") from exc
                log.debug("%s: store busy while opening (%s); retrying", self.path, exc)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open the rescan store: {_sqlite_reason(exc)}") from exc
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create the rescan store: {exc.strerror or exc}") from exc

    def _open(self, timeout_s: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)  # 0600: the store holds thumbnails of camera views
        self._db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._refuse_foreign()
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the store to WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._init_schema()
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Tx:
        return _Tx(self._db, self.path)

    def _refuse_foreign(self) -> None:
        """A database holding tables but no masking `meta` schema version is not adopted (before the
        switch to WAL, which would change the file)."""
        tables = {str(r[0]) for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return
        ours = "meta" in tables and self._db.execute(
            "SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is not None
        if not ours:
            shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{self.path}: an SQLite database that is not a masking rescan store (tables: {shown}); "
                "it is left untouched: choose another --store file"
            )

    def _init_schema(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and not str(row[0]).isdigit():
                raise StoreError(
                    f"{self.path}: store schema version {str(row[0])[:40]!r} is not a number; the file is damaged "
                    "or not a masking rescan store: use a new --store file"
                )
            if row is not None and int(row[0]) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {row[0]}, this masking writes version "
                    f"{SCHEMA_VERSION}; use a new --store file"
                )
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("INSERT INTO meta VALUES ('created_at', ?)", (repr(time.time()),))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read rows (for reports, tests and inspection)."""
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    # ------------------------------------------------------------------ file hashes
    def cached_hash(self, path: Path, compute: Callable[[Path], str]) -> str:
        """sha256 of a file, cached by (path, size, mtime)."""
        st = path.stat()
        row = self._db.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path = ?", (str(path),)).fetchone()
        if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            return str(row["sha256"])
        digest = str(compute(path))
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                       (str(path), st.st_size, st.st_mtime_ns, digest))
        return digest

    # ------------------------------------------------------------------ runs
    def start_run(self, engine: str, workers: int, fleet: str, settings: dict[str, Any]) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (started_at, host, pid, engine, workers, fleet, settings_json, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (time.time(), _HOST, os.getpid(), engine, workers, fleet, json.dumps(settings, sort_keys=True)),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, items_planned = ?, items_skipped = ?, "
                "items_done = ?, items_failed = ? WHERE run_id = ?",
                (time.time(), status, counts.get("planned", 0), counts.get("skipped", 0),
                 counts.get("done", 0), counts.get("failed", 0), run_id),
            )
            # claims this run still holds (interrupted) go back to the pool
            db.execute(
                "UPDATE items SET status = 'pending', claimed_by = NULL, claim_host = NULL, claim_pid = NULL, "
                "claim_expires = NULL WHERE status = 'running' AND claimed_by = ?", (run_id,),
            )

    # ------------------------------------------------------------------ items
    def sync_items(self, items: Iterable[WorkItem], force: bool) -> tuple[list[str], int]:
        """Make sure every planned item has a row; return (ids still to do, number already done).

        An item already `done` under the same key and content hash is skipped unless `force`.
        A row whose content hash changed is reset to `pending`.
        """
        todo: list[str] = []
        done = 0
        with self._tx() as db:
            for it in items:
                row = db.execute("SELECT status, content_hash FROM items WHERE item_id = ?", (it.item_id,)).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO items (item_id, camera_id, source, kind, content_hash, config_key, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                        (it.item_id, it.camera_id, it.label, it.kind, it.content_hash, it.config_key),
                    )
                    todo.append(it.item_id)
                    continue
                if row["content_hash"] != it.content_hash or row["status"] != "done" or force:
                    if row["content_hash"] != it.content_hash or (force and row["status"] == "done"):
                        db.execute(
                            "UPDATE items SET content_hash = ?, kind = ?, status = CASE WHEN status = 'running' "
                            "THEN status ELSE 'pending' END WHERE item_id = ?",
                            (it.content_hash, it.kind, it.item_id),
                        )
                    todo.append(it.item_id)
                else:
                    done += 1
        return todo, done

    def claim(self, item_id: str, run_id: int, lease_s: float) -> str:
        """Try to take an item for this run: `claimed`, `done` (nothing to do) or `busy` (another
        live run holds it)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT status, claimed_by, claim_host, claim_pid, claim_expires, run_id FROM items WHERE item_id = ?",
                (item_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: item {item_id} vanished from the store")
            status = row["status"]
            if status == "done":
                return "done"
            if status == "running" and row["claimed_by"] != run_id:
                stale = (row["claim_expires"] or 0) < now or (
                    row["claim_host"] == _HOST and row["claim_pid"] is not None and not _pid_alive(int(row["claim_pid"]))
                )
                if not stale:
                    return "busy"
                log.info("item %s: taking over the claim of run %s (run gone or lease expired)", item_id, row["claimed_by"])
            db.execute(
                "UPDATE items SET status = 'running', claimed_by = ?, claim_host = ?, claim_pid = ?, "
                "claim_expires = ?, started_at = ? WHERE item_id = ?",
                (run_id, _HOST, os.getpid(), now + lease_s, now, item_id),
            )
            return "claimed"

    def record(self, run_id: int, outcome: ItemOutcome) -> None:
        """Store the final outcome of an item this run claimed."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT camera_id, claimed_by FROM items WHERE item_id = ?", (outcome.item_id,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: item {outcome.item_id} vanished from the store")
            if row["claimed_by"] not in (run_id, None):
                log.warning("item %s: claim moved to run %s; not recording run %d's result",
                            outcome.item_id, row["claimed_by"], run_id)
                return
            db.execute("DELETE FROM evidence WHERE item_id = ?", (outcome.item_id,))
            errors = json.dumps(list(outcome.errors)) if outcome.errors else None
            claim_clear = "claimed_by = NULL, claim_host = NULL, claim_pid = NULL, claim_expires = NULL"
            if outcome.ok and outcome.result is not None:
                res = outcome.result
                db.execute(
                    f"UPDATE items SET status = 'done', {claim_clear}, attempts = attempts + ?, error = NULL, "
                    "errors_json = ?, finished_at = ?, duration_s = ?, worker = ?, run_id = ?, verdict = ?, "
                    "category = ?, confidence = ?, frames_sampled = ?, result_json = ?, thumbnail = ? "
                    "WHERE item_id = ?",
                    (outcome.attempts, errors, now, outcome.duration_s, outcome.worker, run_id,
                     res.get("verdict"), res.get("category"), res.get("confidence"), res.get("frames_sampled"),
                     json.dumps(res, sort_keys=True), outcome.thumbnail, outcome.item_id),
                )
                for seq, ev in enumerate(res.get("evidence") or []):
                    db.execute(
                        "INSERT INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (outcome.item_id, seq, row["camera_id"], _first(ev, "label", "class_name", "kind"),
                         _first(ev, "category"), _first(ev, "confidence", "score"),
                         _first(ev, "frame_index", "frame"), _first(ev, "time_s"), json.dumps(ev, sort_keys=True)),
                    )
            else:
                db.execute(
                    f"UPDATE items SET status = 'failed', {claim_clear}, attempts = attempts + ?, error = ?, "
                    "errors_json = ?, finished_at = ?, duration_s = NULL, worker = ?, run_id = ?, verdict = NULL, "
                    "category = NULL, confidence = NULL, frames_sampled = NULL, result_json = NULL, thumbnail = NULL "
                    "WHERE item_id = ?",
                    (outcome.attempts, outcome.error, errors, now, outcome.worker, run_id, outcome.item_id),
                )

    def items(self, item_ids: Sequence[str]) -> list[sqlite3.Row]:
        """Rows of the given items, in the given order."""
        out: list[sqlite3.Row] = []
        for chunk in _chunks(list(item_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = {r["item_id"]: r for r in self._db.execute(f"SELECT * FROM items WHERE item_id IN ({marks})", chunk)}
            out.extend(rows[i] for i in chunk if i in rows)
        return out

    def save_camera(self, run_id: int, camera: dict[str, Any], zones_path: str | None, zones_key: str,
                    thumbnail: bytes | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO cameras VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (camera["camera_id"], camera.get("site"), zones_path, zones_key, camera.get("verdict"),
                 camera.get("category"), camera.get("confidence"), json.dumps(camera, sort_keys=True),
                 thumbnail, time.time(), run_id),
            )


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None and not isinstance(v, (dict, list)):
            return v
    return None


def _chunks(seq: list[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class _Tx:
    """`BEGIN IMMEDIATE` ... `COMMIT` (rollback on error); sqlite errors become StoreError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self._path}: cannot start a write transaction: {exc}") from exc
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise StoreError(f"{self._path}: commit failed: {_sqlite_reason(err)}") from err
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{self._path}: store write failed: {_sqlite_reason(exc)}") from exc

    def _rollback(self) -> None:
        """Roll back if a transaction is still open (SQLite may already have rolled back, e.g. on a
        full disk)."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as err:
                log.warning("%s: rollback failed: %s", self._path, err)


def _sqlite_reason(exc: sqlite3.Error) -> str:
    """An SQLite error in words, with what to do for the common operating-system causes."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorname", "")
    if code == "SQLITE_FULL" or "disk is full" in text:
        return f"{text} (the disk holding the store is full: free space, or use a --store on another disk)"
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        return f"{text} (the store or its folder is read-only: choose a writable --store)"
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return f"{text} (the folder does not exist or is not writable)"
    if code == "SQLITE_NOTADB" or "not a database" in text:
        return f"{text} (the file is not an SQLite database: choose another --store file)"
    return text
