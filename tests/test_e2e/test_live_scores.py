"""The worker scores replayed real recordings live, and resumes after SIGKILL with deterministic score ids."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from streams import topics
from streams.kafka import consumer, producer
from streams.replay import recording_events, replay
from streams.settings import Settings
from streams.sources import read_recording
from tests.test_e2e.conftest import counter, metric, start_worker

WINDOW_S, HOP_S = 10, 2


def grid_start(seconds_ago: float) -> datetime:
    """A replay start on the 2-s grid, ``seconds_ago`` before now (so event time never runs ahead)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds_ago)
    return start - timedelta(seconds=start.second % HOP_S)


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def expected_window_ends(start: datetime, duration_s: float) -> set[str]:
    """Every grid window holding data of a recording that starts on the grid and lasts ``duration_s``."""
    ends = set()
    t = 0
    while t < duration_s:
        ends.add(iso(start + timedelta(seconds=t + WINDOW_S)))
        t += HOP_S
    return ends


NURSE_OBSERVATIONS = [
    ("9279-1", 22, "/min"),
    ("2708-6", 95, "%"),
    ("8480-6", 105, "mm[Hg]"),
    ("8867-4", 115, "/min"),
    ("8310-5", 38.5, "Cel"),
]


def vitals_event(when: datetime, seq: int, patient: str = "live-vitals-only", observations=NURSE_OBSERVATIONS) -> bytes:
    return json.dumps(
        {
            "schema": "cardiowatch.vitals",
            "version": 1,
            "patient_id": patient,
            "source_id": "nurse",
            "seq": seq,
            "time": when.isoformat(),
            "observations": [{"code": c, "value": v, "unit": u} for c, v, u in observations],
        }
    ).encode()


def collect_scores(
    settings: Settings, patients: set[str], until, timeout_s: float, topic: str = topics.RISK_SCORES
) -> list[dict]:
    """Read a scores topic from the beginning, keeping the patients' scores, until ``until(scores)`` or timeout."""
    scores: list[dict] = []
    cons = consumer(settings, topic, auto_offset_reset="earliest", group_id=None)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(scores):
            for records in cons.poll(timeout_ms=500).values():
                for r in records:
                    if r.key.decode() in patients:
                        scores.append(json.loads(r.value))
    finally:
        cons.close()
    return scores


def test_the_worker_scores_real_recordings_per_patient_and_window(settings: Settings, data_dir: Path, tmp_path: Path):
    duration = 40.0
    records = {"live-mitdb-101": data_dir / "mitdb" / "101", "live-mitdb-208": data_dir / "mitdb" / "208"}
    start = grid_start(duration + 5)
    worker = start_worker(settings, "live-scores", tmp_path)
    try:
        streams = [
            recording_events(read_recording(path, duration), patient, start, 1.0) for patient, path in records.items()
        ]
        with producer(settings) as prod:
            replay(prod, streams, speed=math.inf, progress=False)
            for k in range(3):  # a patient with vitals and no waveform, once a minute
                prod.send(
                    topics.VITALS, key=b"live-vitals-only", value=vitals_event(start + timedelta(seconds=60 * k), k)
                )
        want = {p: expected_window_ends(start, duration) for p in records}
        scores = collect_scores(
            settings,
            {*records, "live-vitals-only"},
            lambda got: (
                all(want[p] <= {s["window_end"] for s in got if s["patient_id"] == p} for p in records)
                and sum(s["patient_id"] == "live-vitals-only" for s in got) >= 3
            ),
            90,
        )
        beats = consumer(
            settings, topics.changelog("live-scores", topics.BEATS_TABLE), auto_offset_reset="earliest", group_id=None
        )
        references: dict[str, dict] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "live-mitdb-101" not in references:
            for batch in beats.poll(timeout_ms=500).values():
                references.update((json.loads(r.key), json.loads(r.value)) for r in batch)
        beats.close()
    finally:
        worker.stop()
    # record 101 is regular sinus rhythm: its reference beat is learned and reaches the changelog
    assert "MLII" in references["live-mitdb-101"]["leads"], references.keys()
    assert len(references["live-mitdb-101"]["leads"]["MLII"]) == 64
    vitals_only = [s for s in scores if s["patient_id"] == "live-vitals-only"]
    assert len(vitals_only) == 3 and all(s["score_id"].endswith(":vitals") for s in vitals_only)
    # respiration 22 -> 2, SpO2 95 -> 1, systolic 105 -> 1, pulse 115 -> 2, temperature 38.5 -> 1 (RCP 2017)
    assert all(s["modalities"] == ["vitals"] and s["scores"]["news2"] == 7 for s in vitals_only), vitals_only
    for patient, path in records.items():
        mine = {s["window_end"]: s for s in scores if s["patient_id"] == patient}
        assert want[patient] <= set(mine), f"{patient}: windows never scored: {sorted(want[patient] - set(mine))}"
        # every window away from the recording's end is complete; compare its heart rate with the annotations
        ann = wfdb.rdann(str(path), "atr")
        beats = ann.sample[np.isin(ann.symbol, list("NLRejAaJSVEF/fQ"))] / 360.0
        for s in mine.values():
            assert s["score_id"] == f"{patient}:{s['window_end']}:{s['scorer']}-{s['scorer_version']}"
            assert s["modalities"] == ["ecg"] and 0 <= s["risk"] <= 1
            end = (datetime.fromisoformat(s["window_end"]) - start).total_seconds()
            if end > duration:
                continue
            ref = beats[(beats >= end - WINDOW_S) & (beats < end)]
            ref_hr = 60.0 / np.mean(np.diff(ref))
            assert s["signal_quality"] > 0.5
            # IEC 60601-2-27 heart-rate accuracy: within 10 % or 5 bpm, whichever is greater
            assert abs(s["scores"]["heart_rate_bpm"] - ref_hr) <= max(0.1 * ref_hr, 5), (patient, end, s["scores"])


def test_scoring_resumes_after_sigkill_and_every_window_keeps_one_score_id(
    settings: Settings, data_dir: Path, tmp_path: Path
):
    duration, speed = 90.0, 6.0
    patient = "recovery-mitdb-101"
    start = grid_start(duration + 5)
    want = expected_window_ends(start, duration)
    worker = start_worker(settings, "recovery", tmp_path)
    with producer(settings) as prod:  # a temperature first: it must survive the kill in the changelogged table
        prod.send(topics.VITALS, key=patient.encode(), value=vitals_event(start, 0, patient, [("8310-5", 39.5, "Cel")]))
    time.sleep(2 * 2.8)  # past Faust's commit interval: the restarted worker does not consume it again
    sender = threading.Thread(
        target=lambda: replay(
            producer(settings),
            [recording_events(read_recording(data_dir / "mitdb" / "101", duration), patient, start, 1.0)],
            speed=speed,
            progress=False,
        )
    )
    sender.start()
    try:
        before = collect_scores(settings, {patient}, lambda got: len(got) >= 4, 60)
        assert len(before) >= 4, "no scores before the kill"
        scorers = children(worker.proc.pid)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        worker.log.close()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in scorers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scorers and not any(Path(f"/proc/{pid}").exists() for pid in scorers), (
            "scoring process outlived the worker"
        )
        worker = start_worker(settings, "recovery", tmp_path)
        sender.join(60)
        scores = collect_scores(settings, {patient}, lambda got: want <= {s["window_end"] for s in got}, 120)
        restored = counter(worker.port, "cardiowatch_beat_references_total", outcome="restored")
    finally:
        worker.stop()
        sender.join(5)
    # the reference beat learned before the kill was read back from its changelogged table, not learned anew
    # (so were those of earlier tests' patients, whose events this app's new consumer group also reads)
    assert restored >= 1, restored
    # the temperature, arriving before any waveform, was scored alone once (a vitals-only hop, its own id)
    assert {s["window_end"] for s in scores if s["score_id"].endswith(":vitals")} == {iso(start)}
    scores = [s for s in scores if not s["score_id"].endswith(":vitals")]
    ends = {s["window_end"] for s in scores}
    assert want <= ends, f"windows never scored after the restart: {sorted(want - ends)}"
    assert ends <= want, f"scores for windows outside the recording: {sorted(ends - want)}"
    by_id: dict[str, set[str]] = {}
    for s in scores:
        by_id.setdefault(s["window_end"], set()).add(s["score_id"])
    assert all(len(ids) == 1 for ids in by_id.values()), "a window was scored under two ids"
    # temperature 39.5 °C scores 2 (RCP 2017); every window, before and after the restart, was aligned with it
    assert all("vitals" in s["modalities"] and s["scores"]["news2"] >= 2 for s in scores)


def send_heart_rates(settings: Settings, patient: str, start: datetime, seconds: range) -> None:
    """One heart-rate reading (70 + k /min) per second ``k`` after ``start``."""
    with producer(settings) as prod:
        for k in seconds:
            hr = [("8867-4", 70 + k, "/min")]
            prod.send(
                topics.VITALS, key=patient.encode(), value=vitals_event(start + timedelta(seconds=k), k, patient, hr)
            )


def read_heart_rates(cons: Any, patient: str, written: list[float], last: float, seconds: float) -> None:
    """Append to ``written`` the newest heart rate of each changelog write of ``patient``, until ``last`` comes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (not written or written[-1] != last):
        for records in cons.poll(timeout_ms=500).values():
            written.extend(json.loads(r.value)["heart_rate"][-1][1] for r in records if json.loads(r.key) == patient)


def test_vitals_reach_the_changelog_when_due_and_once_they_pause(settings: Settings, tmp_path: Path):
    patient, app_id = "changelog-vitals", "vitals-changelog"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    worker = start_worker(settings, app_id, tmp_path)
    written: list[float] = []
    try:
        # 1 Hz heart rate: the first two points are due at once, the rest once they pause
        send_heart_rates(settings, patient, start, range(8))
        cons = consumer(
            settings, topics.changelog(app_id, topics.VITALS_TABLE), auto_offset_reset="earliest", group_id=None
        )

        def read_until(last: float, seconds: float) -> None:
            read_heart_rates(cons, patient, written, last, seconds)

        try:
            read_until(77.0, 40)
            before = metric(worker.port, topics.VITALS, "accepted")  # earlier tests' vitals included
            send_heart_rates(settings, patient, start, range(8, 10))  # two more, not due; stopped before they pause
            deadline = time.monotonic() + 20
            while metric(worker.port, topics.VITALS, "accepted") < before + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            worker.stop()  # SIGTERM, before they pause for 5 s: a graceful stop writes what changed
            read_until(79.0, 20)
        finally:
            cons.close()
    finally:
        worker.stop()
    assert written == [70.0, 71.0, 77.0, 79.0]


def test_vitals_not_yet_in_the_changelog_are_consumed_again_after_sigkill(settings: Settings, tmp_path: Path):
    patient, app_id = "killed-vitals", "vitals-kill"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    worker = start_worker(settings, app_id, tmp_path)
    written: list[float] = []
    changelog = topics.changelog(app_id, topics.VITALS_TABLE)
    cons = consumer(settings, changelog, auto_offset_reset="earliest", group_id=None)

    def read_until(last: float, seconds: float) -> None:
        read_heart_rates(cons, patient, written, last, seconds)

    try:
        # a monitor that never pauses, 1 Hz for 10 s: 70 and 71 are written at once, 72-79 would be in a minute;
        # the event of 72 stays unacknowledged over three of Faust's commit intervals (2.8 s) before the kill
        for k in range(10):
            send_heart_rates(settings, patient, start, range(k, k + 1))
            time.sleep(1.0)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        worker.log.close()
        read_until(72.0, 3)
        assert written == [70.0, 71.0], f"the worker wrote the unwritten readings before the kill: {written}"
        worker = start_worker(settings, app_id, tmp_path)
        read_until(79.0, 40)
    finally:
        worker.stop()
        cons.close()
    # the restarted worker consumed 72-79 again (the event of 72 was never acknowledged nor committed over) and
    # wrote them: the table holds every reading
    assert written[:2] == [70.0, 71.0] and written[-1] == 79.0, written
    history = None
    with closing(consumer(settings, changelog, auto_offset_reset="earliest", group_id=None)) as again:
        for _ in range(10):
            for records in again.poll(timeout_ms=500).values():
                history = next(
                    (json.loads(r.value) for r in reversed(records) if json.loads(r.key) == patient), history
                )
    assert history is not None and [v for _, v in history["heart_rate"]] == [70.0 + k for k in range(10)], history
