"""`masking rescan` stopped by SIGTERM (systemd, Kubernetes, `timeout`) or killed (issue 15, item 7):
the report of what is done is written, the run is marked interrupted, exit 143, and no worker
process outlives its driver."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rescan_helpers import PHOTOS, ROOT, item_rows, write_fleet


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _wait_gone(pgid: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = _group(pgid)
        if not left:
            return []
        time.sleep(0.2)
    return _group(pgid)


def _start(tmp_path: Path, dev_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    more = [(f"{n}-copy{k}", str(next(dev_dir.rglob(f"{n}.*")))) for k in range(2) for n in PHOTOS]
    fleet = write_fleet(tmp_path / "fleet.csv", dev_dir, extra=more)
    store = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "masking", "-q", "rescan", str(fleet), "--store", str(store), "--workers", "2", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, store


def _wait_done(proc: subprocess.Popen[str], store: Path, n: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if sum(r["status"] == "done" for r in item_rows(store)) >= n:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"the rescan finished fewer than {n} items in {timeout_s} s (or ended: {proc.poll()})")


@pytest.mark.slow
def test_sigterm_writes_the_report_marks_the_run_interrupted_and_exits_143(tmp_path: Path, dev_dir: Path) -> None:
    out = tmp_path / "report"
    proc, store = _start(tmp_path, dev_dir, "--out", str(out))
    _wait_done(proc, store, 2)
    proc.send_signal(signal.SIGTERM)  # the driver only, as systemd's KillMode=mixed or `timeout` do
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        left = _wait_gone(proc.pid, 15)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    assert not left, f"processes outlived the driver: {left}"
    db = sqlite3.connect(store)
    status, done = db.execute("SELECT status, items_done FROM runs ORDER BY run_id DESC").fetchone()
    running = db.execute("SELECT count(*) FROM items WHERE status = 'running'").fetchone()[0]
    db.close()
    assert status == "interrupted" and done >= 2 and running == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["status"] == "interrupted"
    assert (out / "report.html").is_file()
    assert sum(c["items_done"] for c in doc["cameras"]) >= 2


@pytest.mark.slow
def test_workers_exit_when_the_driver_is_killed(tmp_path: Path, dev_dir: Path) -> None:
    proc, store = _start(tmp_path, dev_dir)
    _wait_done(proc, store, 1)
    workers = [p for p in _group(proc.pid) if p != proc.pid]
    assert workers, "no worker processes found"
    os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its workers must not stay behind
    proc.communicate(timeout=30)
    left = _wait_gone(proc.pid, 15)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"worker processes outlived a killed driver: {left}"
