"""Shared fixtures: the real data folder and a real (embedded) broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from streams.kafka import ensure_topics
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (CARDIOWATCH_DATA, default ../shared/data beside the repo)."""
    path = Path(os.environ.get("CARDIOWATCH_DATA", REPO.parent / "shared" / "data")).resolve()
    if not (path / "mitdb").is_dir():
        pytest.fail(f"data folder {path} has no mitdb/: set CARDIOWATCH_DATA to a shared/data-like folder")
    return path


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session, on a free port."""
    with EmbeddedBroker(port=0) as running:
        yield running


@pytest.fixture(scope="session")
def settings(broker: EmbeddedBroker) -> Settings:
    """Settings pointing at the session broker, topics created."""
    conf = Settings(bootstrap_servers=broker.bootstrap_servers)
    ensure_topics(conf)
    return conf
