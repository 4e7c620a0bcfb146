"""Power loss: SIGKILL the gateway process at random moments while it spools; nothing is lost, no seq gaps."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from plantwatch.adapters.sqlite_spool import SqliteSpool

from .servers import Downstream, Mosquitto, wait_for

KILLS = 20


def gateway_config(tmp_path: Path, broker_port: int) -> Path:
    """A simulator-fed gateway (12 sensors every 10 ms) sealing a batch every 100 ms, uplink to ``broker_port``."""
    config = {
        "gateway_id": "gw-kill",
        "plant": "plant-1",
        "data_dir": str(tmp_path / "gw"),
        "batch_interval_ms": 100,
        "step_interval_ms": 20,
        "sources": [{"kind": "simulator", "line": "line-1", "assets_per_line": 4, "sample_period_ms": 10}],
        "uplink": {"transport": "mqtt", "port": broker_port},
        "alerts": {"floor": "none"},
    }
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(config))
    return path


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_sigkill_while_spooling_loses_no_acknowledged_batch_and_leaves_no_gap(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        run_and_kill(tmp_path, broker)


def run_and_kill(tmp_path: Path, broker: Mosquitto) -> None:
    downstream = Downstream(broker.port)
    config = gateway_config(tmp_path, broker.port)
    spool_path = tmp_path / "gw" / "spool.sqlite"
    command = [sys.executable, "-m", "plantwatch.cli", "gateway", "--config", str(config)]
    rng = random.Random(20261127)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(KILLS):
            before = len(downstream.batches)
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # GIVEN a gateway that is spooling and publishing
            wait_for(lambda b=before: len(downstream.batches) > b, 30, "the gateway to publish")
            time.sleep(rng.uniform(0.0, 0.4))
            # WHEN the power goes
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            # THEN the spool file is sound
            assert integrity(spool_path) == "ok"
        # a last, clean run delivers the backlog and stops gracefully (SIGTERM seals, drains, closes)
        before = len(downstream.batches)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: len(downstream.batches) > before, 30, "the gateway to publish")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        spool = SqliteSpool(spool_path)
        try:
            first = spool.first_seq()
            produced = set(range(first, spool.next_seq()))
            assert spool.depth() == 0
            assert spool.integrity_check() == "ok"
        finally:
            spool.close()
        wait_for(lambda: downstream.seqs("gw-kill") >= produced, 10, "every produced batch downstream")
        received = downstream.seqs("gw-kill")
        # every batch sealed (and so every batch the broker acknowledged) arrived; sequence numbers have no gaps
        assert received == produced
        assert received == set(range(first, max(received) + 1))
        assert len(produced) > KILLS
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        downstream.close()
