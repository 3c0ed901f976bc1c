"""Alarm evaluation through the live pipeline (its own embedded broker and worker), on real annotated records."""

from __future__ import annotations

import json
from pathlib import Path

from alerts.cli import main
from alerts.evaluate import KINDS


def test_alarm_evaluation_replays_annotated_records_and_judges_both_systems(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    records = ["mitdb/207", "mitdb/203", "waveform_streams/a103l", "waveform_streams/v102s"]
    status = main(["evaluate-alarms", "--data", str(data_dir), "--out", str(out), "--records", *records,
                   "--minutes", "5", "--speed", "15"])  # fmt: skip
    assert status == 0
    report = json.loads((out / "alarms.json").read_text())
    assert "| ventricular_fibrillation | policy |" in (out / "alarms.md").read_text()
    assert (report["records"], report["challenge_records"]) == (2, 2)
    assert report["patient_hours"] == round(2 * 300 / 3600, 3)
    for row in report["per_record"]:
        # every 2-s hop of the 5 minutes was scored; only the windows after the end were closed by silence
        assert row["windows"] >= 300 / 2
        assert row["windows_closed_by_silence"] <= 10 / 2 + 1
    kinds = report["kinds"]
    # the five [ ] flutter/fibrillation episodes of record 207's first 5 minutes; none missed
    assert kinds["ventricular_fibrillation"]["policy"]["reference_episodes"] == 5
    assert kinds["ventricular_fibrillation"]["policy"]["missed"] == 0
    # the policy raises only from detections the naive baseline also alarms on, and merges or holds back some
    for kind in KINDS:
        assert kinds[kind]["policy"]["alarms"] <= kinds[kind]["naive"]["alarms"], kind
    assert report["all_rhythm_alarms"]["policy"]["alarms"] > 0
    verdicts = {r["record"]: r for r in report["challenge_2015"]["records"]}
    assert (
        verdicts["waveform_streams/a103l"]["kind"] == "asystole"
        and not verdicts["waveform_streams/a103l"]["true_alarm"]
    )
