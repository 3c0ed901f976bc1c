"""The alert agent in a real worker: alerts from scores, acknowledgement from the CLI, and a SIGKILL mid-episode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams import topics
from streams.kafka import consumer, producer
from streams.settings import Settings
from tests.test_e2e.conftest import start_worker


def score_event(patient: str, end: datetime, detections: list[tuple[str, datetime]], news2: float) -> bytes:
    """A ``risk.scores`` record as the worker writes it (rules scorer), for the alert agent to read."""
    return json.dumps(
        {
            "schema": "cardiowatch.risk_score",
            "version": 1,
            "score_id": f"{patient}:{end.isoformat()}:rules-1.0.0",
            "patient_id": patient,
            "window_start": (end - timedelta(seconds=10)).isoformat(),
            "window_end": end.isoformat(),
            "risk": 0.1,
            "scores": {"news2": news2, "news2_parameters": 4.0},
            "modalities": ["ecg", "vitals"],
            "signal_quality": 0.9,
            "detections": [
                {"kind": kind, "category": "physiological", "onset_time": onset.isoformat(), "evidence": {}}
                for kind, onset in detections
            ],
            "scorer": "rules",
            "scorer_version": "1.0.0",
        }
    ).encode()


def send_scores(settings: Settings, patient: str, t0: datetime, seconds: range, asystole_until: int) -> None:
    with producer(settings) as prod:
        for s in seconds:
            end = t0 + timedelta(seconds=s)
            det = [("asystole", t0 + timedelta(seconds=4))] if 10 <= s <= asystole_until else []
            prod.send(topics.RISK_SCORES, key=patient.encode(), value=score_event(patient, end, det, 7.0))
        prod.flush()


def collect_alerts(settings: Settings, patient: str, done: Any, timeout_s: float) -> list[dict]:
    cons = consumer(settings, topics.ALERTS, auto_offset_reset="earliest")
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(got):
            for messages in cons.poll(timeout_ms=500).values():
                got += [json.loads(m.value) for m in messages if m.key == patient.encode()]
    finally:
        cons.close()
    return got


def ack_from_cli(settings: Settings, alert_id: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", "alerts", "--ack", alert_id, "--user", "rn.test", "--reason", "checked"],
        env={"CARDIOWATCH_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_alerts_survive_a_sigkill_mid_episode_with_one_id_per_episode(settings: Settings, tmp_path: Path):
    patient = f"alert-{uuid.uuid4().hex[:8]}"
    # event times from now on: the wall-clock ticks of the worker stay behind them, so no escalation interferes
    t0 = datetime.now(UTC).replace(microsecond=0)
    worker = start_worker(settings, "alerts-recovery", tmp_path)
    try:
        send_scores(settings, patient, t0, range(2, 40, 2), asystole_until=200)
        first = collect_alerts(settings, patient, lambda got: any(a["kind"] == "asystole" for a in got), 90)
        asystole = next(a for a in first if a["kind"] == "asystole")
        assert (asystole["state"], asystole["priority"], asystole["revision"]) == ("active", "high", 0)
        assert asystole["alert_id"] == f"{patient}:asystole:{(t0 + timedelta(seconds=4)).isoformat()[:19]}.000Z"
        time.sleep(2 * 2.8)  # past Faust's commit interval, so part of what follows is re-read after the restart
        send_scores(settings, patient, t0, range(40, 50, 2), asystole_until=200)
        time.sleep(1.0)
        worker.proc.send_signal(signal.SIGKILL)  # mid-episode: asystole open, NEWS2 7 held for 48 s of 60
        worker.proc.wait(10)
        worker.log.close()
        send_scores(settings, patient, t0, range(50, 120, 2), asystole_until=60)
        assert "sent acknowledge" in ack_from_cli(settings, asystole["alert_id"])
        worker = start_worker(settings, "alerts-recovery", tmp_path)

        def complete(got: list[dict]) -> bool:
            kinds = {(a["kind"], a["state"]) for a in got}
            return {("asystole", "resolved"), ("news2_emergency", "active")} <= kinds

        alerts = collect_alerts(settings, patient, complete, 120)
    finally:
        worker.stop()
    by_id: dict[str, dict[int, dict]] = {}
    for a in alerts:
        seen = by_id.setdefault(a["alert_id"], {}).setdefault(a["revision"], a)
        assert (seen["state"], seen["kind"]) == (a["state"], a["kind"]), "one revision of an episode, two records"
    episodes = {(a["kind"], a["alert_id"]) for a in alerts}
    assert sorted(k for k, _ in episodes) == ["asystole", "news2_emergency"], episodes
    for revisions in by_id.values():
        assert sorted(revisions) == list(range(len(revisions))), "a revision is missing"
    trail = [by_id[asystole["alert_id"]][r]["state"] for r in sorted(by_id[asystole["alert_id"]])]
    # acknowledged from the CLI: while the condition lasted (resolved 10 s after its last window), or, if the
    # restarted worker read the scores first, once the ended alarm had latched (resolved on acknowledgement)
    assert trail in (["active", "acknowledged", "resolved"], ["active", "latched", "acknowledged", "resolved"]), trail
    assert by_id[asystole["alert_id"]][trail.index("acknowledged")]["evidence"]["acknowledged_by"] == "rn.test"
    (news2,) = [a for a in alerts if a["kind"] == "news2_emergency"]
    assert news2["onset_time"].startswith((t0 + timedelta(seconds=2)).isoformat()[:19])
