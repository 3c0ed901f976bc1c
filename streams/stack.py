"""The whole pipeline on one machine: embedded broker, topics and a worker process, for the demo and replays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.broker import EmbeddedBroker, free_port
from streams.errors import StreamsError
from streams.kafka import ensure_topics
from streams.settings import Settings


def wait_healthy(proc: subprocess.Popen, port: int, timeout_s: float = 90.0) -> bool:
    """Wait until the worker on ``port`` answers ``/health`` with partitions assigned; False if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200 and json.loads(resp.read())["assigned"]:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


@contextmanager
def local_stack(settings: Settings, workdir: Path) -> Iterator[Settings]:
    """Start the embedded broker, create the topics and start a healthy ``cardiowatch worker`` against them.

    Yields the settings to reach them with (bootstrap servers, the worker's web port). Logs go to
    ``workdir/broker.log`` and ``workdir/worker.log``; the worker's state to ``workdir/worker``.

    Raises:
        StreamsError: The worker exited or did not become healthy within 90 s.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log") as broker:
        conf = settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap_servers,
                "web_port": free_port(),
                "data_dir": str(workdir / "worker"),
            }
        )
        ensure_topics(conf)
        env = {
            **os.environ,
            "CARDIOWATCH_BOOTSTRAP_SERVERS": conf.bootstrap_servers,
            "CARDIOWATCH_WEB_PORT": str(conf.web_port),
            "CARDIOWATCH_DATA_DIR": conf.data_dir,
        }
        with open(workdir / "worker.log", "wb") as worker_log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT
            )
            try:
                if not wait_healthy(worker, conf.web_port):
                    raise StreamsError(f"the worker did not become healthy: see {workdir / 'worker.log'}")
                yield conf
            finally:
                worker.terminate()
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
