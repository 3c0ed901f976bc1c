"""A real worker process against the session broker, for end-to-end tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from streams.broker import free_port
from streams.settings import Settings
from streams.stack import wait_healthy


@dataclass
class WorkerProcess:
    """A ``cardiowatch worker`` subprocess: its process, web port and log."""

    proc: subprocess.Popen
    port: int
    log: IO[bytes]

    def stop(self) -> None:
        """Terminate it (SIGTERM) and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


def start_worker(settings: Settings, app_id: str, state_dir: Path, **env: str) -> WorkerProcess:
    """Start a worker with its own app id (consumer group) and wait until it is healthy and assigned."""
    port = free_port()
    log = open(state_dir / f"worker-{port}.log", "wb")  # noqa: SIM115
    environ = {
        **os.environ,
        "CARDIOWATCH_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "CARDIOWATCH_WEB_PORT": str(port),
        "CARDIOWATCH_APP_ID": app_id,
        "CARDIOWATCH_DATA_DIR": str(state_dir),
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"], env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    if wait_healthy(proc, port):
        return WorkerProcess(proc, port, log)
    proc.kill()
    log.close()
    pytest.fail(f"worker did not become healthy within 90 s: see {log.name}")


def counter(port: int, name: str, **labels: str) -> float:
    """A sample of the worker's /metrics: ``name`` with exactly these labels (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{re.escape(name)}{{{re.escape(wanted)}}} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def metric(port: int, topic: str, outcome: str) -> float:
    """The worker's count of input events of ``topic`` with ``outcome`` (accepted | dead_letter), from /metrics."""
    return counter(port, "cardiowatch_events_total", outcome=outcome, topic=topic)
