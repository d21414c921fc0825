"""Engines and concurrency: two rescans on one store at once; a real Dask cluster on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rescan_helpers import PHOTOS, ROOT, item_rows, write_fleet

from masking.cli import main


def _comparable(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Camera objects without timings (everything the audit decided stays)."""
    cams = []
    for c in doc["cameras"]:
        c = dict(c)
        c["items"] = [{k: v for k, v in it.items() if k != "duration_s"} for it in c["items"]]
        cams.append(c)
    return cams


@pytest.mark.slow
def test_two_rescans_at_once_share_one_store_without_corruption_or_double_work(tmp_path: Path, dev_dir: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.csv", dev_dir)
    store = tmp_path / "store.sqlite"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "masking", "-q", "rescan", str(fleet), "--store", str(store), "--workers", "1",
             "--out", str(tmp_path / f"out{k}")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in (1, 2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode in (0, 1), err
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    runs = db.execute("SELECT run_id, status, items_done, items_skipped, items_failed FROM runs").fetchall()
    db.close()
    assert len(runs) == 2 and all(r[1] == "finished" and r[4] == 0 for r in runs)
    assert sum(r[2] for r in runs) == len(PHOTOS)  # every item audited once, by one of the two runs
    rows = item_rows(store)
    assert sorted(r["camera_id"] for r in rows) == sorted(PHOTOS)  # each item present exactly once
    assert all(r["status"] == "done" and r["attempts"] == 1 and r["claimed_by"] is None for r in rows)
    assert {r["run_id"] for r in rows} <= {r[0] for r in runs}
    docs = [json.loads((tmp_path / f"out{k}" / "results.json").read_text()) for k in (1, 2)]
    assert all(d["summary"]["cameras"] == len(PHOTOS) and d["summary"]["pending"] == 0 for d in docs)
    assert _comparable(docs[0]) == _comparable(docs[1])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_dask_cluster_gives_the_same_results_as_local_processes(tmp_path: Path, dev_dir: Path, office_clip: Path) -> None:
    from distributed import Client, LocalCluster

    fleet = write_fleet(tmp_path / "fleet.csv", dev_dir, PHOTOS[:6], extra=[("office", str(office_clip))])
    local_out, dask_out = tmp_path / "local", tmp_path / "dask"
    rc_local = main(["rescan", str(fleet), "--out", str(local_out), "--workers", "2"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        # no default client in this process: the engine must use only its own
        rc_dask = main(["rescan", str(fleet), "--out", str(dask_out), "--scheduler", cluster.scheduler_address])
    assert rc_dask == rc_local
    a = json.loads((local_out / "results.json").read_text())
    b = json.loads((dask_out / "results.json").read_text())
    assert b["run"]["engine"] == "dask" and a["run"]["engine"] == "local"
    assert b["summary"] == a["summary"] and b["summary"]["cameras"] == 7
    assert _comparable(b) == _comparable(a)  # identical verdicts, evidence, proposed masks, items
    rows = item_rows(dask_out / "rescan.sqlite")
    assert {int(r["worker"].rsplit(":", 1)[1]) for r in rows} <= worker_pids  # audited on the cluster
    assert all(r["status"] == "done" for r in rows)
    office = next(c for c in b["cameras"] if c["camera_id"] == "office")
    assert office["items"][0]["kind"] == "video" and office["items"][0]["frames_sampled"] >= 5
