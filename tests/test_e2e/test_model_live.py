"""The worker serves the shipped model: live scores equal offline evaluation's, models swap live, a shadow scores.

Offline evaluation and the worker both resample and filter each 10-s window on its own, so they score the
same samples with the same code; what differs is the path: the waveform contract carries the recording's
digital units and the worker scales them back to mV in float32. Tolerance: 1e-3 in every probability.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from datetime import datetime
from pathlib import Path

import torch

from models import artifact
from models.datasets import Example, cinc2017_examples, mitdb_examples, window_slices
from models.train import predict_examples
from streams import topics
from streams.kafka import producer
from streams.replay import recording_events, replay
from streams.settings import Settings
from streams.sources import read_recording
from tests.test_e2e.conftest import start_worker
from tests.test_e2e.test_live_scores import collect_scores, grid_start

TOLERANCE = 1e-3
PROBABILITIES = {
    "risk": "risk",
    "model_ectopy": "ectopy",
    "model_structural": "structural",
    "model_noisy": "noisy",
    "model_af": None,
}


def windows_of(example: Example) -> list[Example]:
    """An example cut into non-overlapping 10-s windows, each an example of its own, scored offline one by one."""
    return [
        dataclasses.replace(example, record=f"{example.record}@{k}", signal=example.signal[:, cut])
        for k, cut in enumerate(window_slices(example.signal.shape[1], example.rate))
    ]


def test_live_scores_equal_offline_evaluation(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    duration = 30.0
    mit = [e for e in mitdb_examples(data_dir, ["208"])][:3]
    cinc = next(e for e in cinc2017_examples(data_dir) if e.record == "A00004")  # AF (REFERENCE.csv)
    offline_examples = {"model-mitdb-208": mit, "model-cinc-A00004": windows_of(cinc)[:3]}
    paths = {"model-mitdb-208": data_dir / "mitdb" / "208", "model-cinc-A00004": data_dir / "cinc2017" / "A00004.mat"}
    start = grid_start(duration + 5)
    worker = start_worker(settings, "model-live", tmp_path)
    try:
        with producer(settings) as prod:
            streams = [recording_events(read_recording(p, duration), pid, start, 1.0) for pid, p in paths.items()]
            replay(prod, streams, speed=math.inf, progress=False)
        ends = {10, 20, 30}  # seconds after the start: the windows offline evaluation cuts too
        scores = collect_scores(
            settings,
            set(paths),
            lambda got: all(
                ends
                <= {
                    round((datetime.fromisoformat(s["window_end"]) - start).total_seconds())
                    for s in got
                    if s["patient_id"] == p
                }
                for p in paths
            ),
            120,
        )
    finally:
        worker.stop()
    model = artifact.load(artifact.SHIPPED)
    for patient, examples in offline_examples.items():
        offline = predict_examples(model, examples, [None] * len(examples)).probs
        live = {
            round((datetime.fromisoformat(s["window_end"]) - start).total_seconds()): s
            for s in scores
            if s["patient_id"] == patient
        }
        for i, end in enumerate(sorted(ends)):
            s = live[end]
            assert s["scorer"] == "model" and s["scorer_version"] == model.version
            for field, task in PROBABILITIES.items():
                want = offline["rhythm"][i, 1] if task is None else offline[task][i]
                got = s["risk"] if field == "risk" else s["scores"][field]
                assert abs(got - want) <= TOLERANCE, (patient, end, field, got, float(want))


def _perturbed_copy(source: Path, target: Path, scale: float) -> str:
    """A copy of an artifact with slightly different weights (hence a new version); its version."""
    model = artifact.load(source)
    with torch.no_grad():
        model.network.heads["risk"].bias.add_(scale)
    meta = json.loads((source / "model.json").read_text())
    model.meta = {k: v for k, v in meta.items() if k not in ("version", "network", "calibration")}
    artifact.save(model, target, {}, sorted(artifact.seen_groups(source)))
    return model.version


def test_a_new_artifact_is_served_without_restart_and_a_shadow_scores_to_its_own_topic(
    settings: Settings, data_dir: Path, tmp_path: Path
) -> None:
    live_dir, shadow_dir = tmp_path / "live", tmp_path / "shadow"
    shutil.copytree(artifact.SHIPPED, live_dir)
    first = artifact.load(live_dir).version
    shadow_version = _perturbed_copy(artifact.SHIPPED, shadow_dir, 0.5)
    patient = "swap-mitdb-119"
    recording = read_recording(data_dir / "mitdb" / "119", 60.0)
    start = grid_start(65)
    worker = start_worker(
        settings,
        "model-swap",
        tmp_path,
        CARDIOWATCH_MODEL_DIR=str(live_dir),
        CARDIOWATCH_SHADOW_MODEL_DIR=str(shadow_dir),
        CARDIOWATCH_MODEL_RELOAD_S="0.5",
    )
    events = list(recording_events(recording, patient, start, 1.0))
    half = len(events) // 2
    try:
        with producer(settings) as prod:
            replay(prod, [iter(events[:half])], speed=math.inf, progress=False)
        before = collect_scores(settings, {patient}, lambda got: len(got) >= 5, 90)
        second = _perturbed_copy(live_dir, live_dir, -0.5)  # written in place, model.json last
        assert second != first
        time.sleep(2.0)
        with producer(settings) as prod:
            replay(prod, [iter(events[half:])], speed=math.inf, progress=False)
        after = collect_scores(settings, {patient}, lambda got: any(s["scorer_version"] == second for s in got), 90)
        shadow = collect_scores(settings, {patient}, lambda got: len(got) >= 5, 30, topics.RISK_SCORES_SHADOW)
        # ``after`` stopped at the first score of the new version; the shadow may have scored later windows since
        shadowed = {s["window_end"] for s in shadow}
        after = collect_scores(settings, {patient}, lambda got: shadowed <= {s["window_end"] for s in got}, 30)
        pid_alive = worker.proc.poll() is None
    finally:
        worker.stop()
    assert pid_alive, "the worker restarted"
    assert {s["scorer_version"] for s in before} == {first}
    assert any(s["scorer_version"] == second for s in after), "the new artifact was never served"
    assert shadow and {s["scorer_version"] for s in shadow} == {shadow_version}
    assert shadowed <= {s["window_end"] for s in after}  # the shadow scores the same windows
    assert all(s["scorer_version"] != shadow_version for s in after)  # the live topic never carries the shadow
