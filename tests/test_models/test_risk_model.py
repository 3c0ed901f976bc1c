"""The risk model: labels and splits, masking, preprocessing, metrics, artifact, engine, training, evaluation."""

from __future__ import annotations

import concurrent.futures
import json
import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from models import artifact
from models.context import record_seed, simulate_context
from models.datasets import (
    LOADERS,
    SCORING_HOP_S,
    WINDOW_S,
    Example,
    cpsc2021_window_labels,
    load_all,
    mitdb_window_labels,
    scoring_slices,
)
from models.engine import InferenceEngine
from models.evaluate import evaluate
from models.metrics import bootstrap_ci, calibration_bins, cinc2017_f1
from models.network import LEADS, RiskNetwork, lead_index
from models.preprocess import EcgInput, Preprocessing, context_batch, ecg_batch
from models.train import fit_platt, train, window_weights, windows_of
from streams.settings import Settings


@pytest.fixture(scope="module")
def shipped() -> artifact.RiskModel:
    return artifact.load(artifact.SHIPPED)


def mitdb_window(data_dir: Path, record: str, start_s: float) -> EcgInput:
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / record), sampfrom=int(start_s * 360), sampto=int((start_s + 10) * 360))
    return EcgInput(tuple(rec.sig_name), rec.p_signal.T.astype(np.float32), 360.0)


# ------------------------------------------------------------------------------------------------ data


def test_mitdb_window_labels_follow_the_annotations(data_dir: Path) -> None:
    ann = wfdb.rdann(str(data_dir / "mitdb" / "119"), "atr")
    labels, paced = mitdb_window_labels(ann, 650000, 360.0)
    assert not paced and len(labels) == 180
    v_windows = {int(s // 3600) for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in "VE"}
    assert {i for i in range(180) if labels[i]} >= v_windows
    starts = [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym == "+"]
    rhythms = [a.rstrip("\x00") for a, sym in zip(ann.aux_note, ann.symbol, strict=True) if sym == "+"]
    for k, (s, r) in enumerate(zip(starts, rhythms, strict=True)):  # 119 has bigeminy and trigeminy runs
        end = starts[k + 1] if k + 1 < len(starts) else 650000
        assert (r == "(N") or labels[s // 3600 : min(-(-end // 3600), 180)].all()
    assert mitdb_window_labels(wfdb.rdann(str(data_dir / "mitdb" / "104"), "atr"), 650000, 360.0)[1]  # paced


def test_cpsc2021_windows_are_labelled_by_the_annotated_af_episodes(small_data: Path) -> None:
    # 10 Hz, 10-s windows of 100 samples: AF from 100 to 300, then from 450 until atrial flutter at 620 (no
    # label: its windows are left out) ends at 700; the 50 samples after the eighth window make no window
    at = np.array([100, 300, 450, 620, 700])
    markers = wfdb.Annotation("x", "atr", at, ["+"] * 5, aux_note=["(AFIB", "(N", "(AFIB", "(AFL", "(N"])
    labels = cpsc2021_window_labels(markers, 850, 10.0)
    np.testing.assert_array_equal(labels, [0, 1, 1, 0, np.nan, 1, np.nan, 0])
    markers = wfdb.Annotation("x", "atr", np.array([250]), ["+"], aux_note=["(AFIB"])
    np.testing.assert_array_equal(cpsc2021_window_labels(markers, 400, 10.0), [0, 0, np.nan, 1])  # AF to the end
    found = [e for e in load_all(small_data, log=False) if e.dataset == "cpsc2021"]
    assert {e.split for e in found} == {"test"}  # never trained or calibrated on
    assert {e.group for e in found} == {f"cpsc2021:{p}" for p in (8, 21, 35, 84, 92, 101)}
    by_record: dict[str, set[float]] = {}
    for e in found:
        by_record.setdefault(e.record.split("@")[0], set()).add(e.labels["af"])
        assert e.leads == ("I", "II") and e.signal.shape == (2, 2000)
    by_class: dict[str, set[float]] = {}  # header comment: persistent, paroxysmal or no AF
    for record, seen in by_record.items():
        by_class.setdefault(wfdb.rdheader(str(small_data / "cpsc2021_sample" / record)).comments[0], set()).update(seen)
    assert by_class == {
        "persistent atrial fibrillation": {1.0},
        "non atrial fibrillation": {0.0},
        "paroxysmal atrial fibrillation": {0.0, 1.0},
    }


def test_splits_never_separate_a_patient_and_paced_records_are_left_out(small_data: Path) -> None:
    examples = load_all(small_data, log=False)
    by_group: dict[str, set[str]] = {}
    for e in examples:
        by_group.setdefault(e.group, set()).add(e.split)
        assert e.signal.shape[1] >= 10 * e.rate or e.dataset == "cinc2017"
    assert all(len(s) == 1 for s in by_group.values())
    assert not any(e.record.startswith("104@") for e in examples)
    again = load_all(small_data, log=False)
    assert [(e.record, e.split) for e in again] == [(e.record, e.split) for e in examples]  # deterministic
    for dataset in ("cinc2017", "mitdb"):  # every split gets patients of each dataset
        assert {e.split for e in examples if e.dataset == dataset} == {"train", "dev", "test"}
    ptb = [e for e in examples if e.dataset == "ptbxl"]
    assert {e.split for e in ptb} == {"train", "dev", "test"} and all(e.leads[1] == "II" for e in ptb)


def test_recordings_are_scored_on_the_windows_of_the_live_hop() -> None:
    # 25 s at 300 Hz: windows every 2 s from the start, and one ending at the last sample
    cuts = scoring_slices(7500, 300.0)
    assert [(c.start, c.stop) for c in cuts] == [(s, s + 3000) for s in range(0, 4501, 600)] + [(4500, 7500)]
    assert [(c.start, c.stop) for c in scoring_slices(3000 + 1200, 300.0)] == [(0, 3000), (600, 3600), (1200, 4200)]
    assert [(c.start, c.stop) for c in scoring_slices(2700, 300.0)] == [(0, 3000)]  # short: one padded window
    assert [(c.start, c.stop) for c in scoring_slices(3000, 300.0)] == [(0, 3000)]


def test_the_offline_windows_are_the_workers_default_windows() -> None:
    defaults = Settings.model_fields
    assert (defaults["window_s"].default, defaults["hop_s"].default) == (WINDOW_S, SCORING_HOP_S)


def test_each_10_s_of_recording_weighs_one_in_the_calibration_whatever_its_windows() -> None:
    def example(seconds: float, rate: float) -> Example:
        return Example("cinc2017", "r", "g", "dev", ("I",), np.zeros((1, int(seconds * rate)), np.float32), rate)

    examples = [example(30.0, 300.0), example(10.0, 360.0), example(25.0, 250.0), example(9.0, 300.0)]
    window_example = np.array([i for i, e in enumerate(examples) for _ in windows_of(e)])
    assert np.bincount(window_example).tolist() == [11, 1, 9, 1]  # windows every 2 s, plus one at the end
    w = window_weights(examples, window_example)
    # per recording: its whole 10-s stretches (30 s: 3; 25 s: 2; a short one: 1), shared by its windows
    assert np.bincount(window_example, weights=w) == pytest.approx([3.0, 1.0, 2.0, 1.0])
    assert w[window_example == 0] == pytest.approx(np.full(11, 3 / 11))


def test_the_rhythm_call_weighs_af_and_other_rhythm_as_fitted() -> None:
    model = artifact.RiskModel(RiskNetwork(), Preprocessing(lead_scale={}, vitals_stats={}))
    rhythm = np.array([0.40, 0.25, 0.35])  # N, A, O
    assert artifact.rhythm_call(model, 0.1, rhythm) == "N"  # no fitted weights: the largest probability
    model.decision = {"noisy_threshold": 0.3, "af_weight": 1.0, "other_weight": 1.25}
    assert artifact.rhythm_call(model, 0.1, rhythm) == "O"
    model.decision["af_weight"] = 2.0
    assert artifact.rhythm_call(model, 0.1, rhythm) == "A"
    assert artifact.rhythm_call(model, 0.3, rhythm) == "~"  # noisy at the threshold


def test_a_missing_dataset_is_skipped_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_all(tmp_path) == []
    out = capsys.readouterr().out
    assert all(f"{name}: not found" in out for name in ("ptbxl", "cinc2017", "mitdb", "cpsc2021"))


# ------------------------------------------------------------------------------------------- network


def test_lead_names_of_monitors_map_to_their_identity() -> None:
    assert LEADS[lead_index("MLII")] == "II" and LEADS[lead_index("mcl1")] == "V1"
    assert LEADS[lead_index("aVF")] == "AVF" and LEADS[lead_index("PLETH")] == "OTHER"


def test_an_ecg_only_patient_gets_exactly_the_ecg_branch_risk_and_masked_context_is_ignored() -> None:
    torch.manual_seed(0)
    net = RiskNetwork().eval()
    prep = Preprocessing()
    ecgs = [
        EcgInput(("II", "V5"), np.random.default_rng(i).normal(0, 0.3, (2, 1000)).astype(np.float32), 100.0)
        for i in range(3)
    ]
    x, leads, mask = ecg_batch(ecgs, prep)
    ctx = context_batch([None] * 3, prep)
    with torch.inference_mode():
        out = net(x, leads, mask, **ctx)
        assert torch.equal(out["risk"], out["risk_ecg"])
        noisy = dict(ctx, vitals=torch.randn_like(ctx["vitals"]), imaging=torch.randn_like(ctx["imaging"]))
        assert torch.equal(net(x, leads, mask, **noisy)["risk"], out["risk"])  # masked: values unused
        with_vitals = context_batch(
            [{"vitals": {"heart_rate": (130.0, 10.0, None)}}] * 3,
            Preprocessing(
                vitals_stats={
                    n: [0.0, 1.0, 1.0]
                    for n in (
                        "heart_rate",
                        "spo2",
                        "respiratory_rate",
                        "systolic_bp",
                        "diastolic_bp",
                        "body_temperature",
                    )
                }
            ),
        )
        assert not torch.equal(net(x, leads, mask, **with_vitals)["risk"], out["risk"])
        # a padded lead slot (mask False) changes nothing; a patient without ECG still scores
        x3 = torch.cat([x, torch.randn(3, 1, 1000)], 1)
        l3, m3 = torch.cat([leads, leads[:, :1]], 1), torch.cat([mask, torch.zeros(3, 1, dtype=torch.bool)], 1)
        assert torch.allclose(net(x3, l3, m3, **ctx)["risk"], out["risk"], atol=1e-6)
        none = ecg_batch([None], prep)
        assert torch.isfinite(net(*none, **context_batch([None], prep))["risk"]).all()


@pytest.mark.parametrize("rate", [125.0, 250.0, 500.0, 1000.0])
def test_any_monitor_rate_reaches_the_model_as_the_same_signal(
    data_dir: Path, shipped: artifact.RiskModel, rate: float
) -> None:
    """One 10-s MIT-BIH window at 360 Hz, resampled first to another monitor rate: same model input."""
    from models.signal import ecg_resample

    w = mitdb_window(data_dir, "208", 600)
    other = ecg_resample(torch.from_numpy(w.samples), 360.0, rate).numpy()
    ref, _, _ = ecg_batch([w], shipped.prep)
    got, _, _ = ecg_batch([EcgInput(w.leads, other, rate)], shipped.prep)
    inner = slice(100, -100)  # away from the window edges
    assert np.corrcoef(ref[0, :, inner].flatten(), got[0, :, inner].flatten())[0, 1] > 0.99
    a = shipped.predict([w])["ectopy"][0]
    b = shipped.predict([EcgInput(w.leads, other, rate)])["ectopy"][0]
    assert abs(a - b) < 0.05


# -------------------------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    r = bootstrap_ci(y, p, n=200)
    assert r["auroc"] == pytest.approx(8 / 9) and r["auroc_ci"][0] <= r["auroc"] <= r["auroc_ci"][1]
    f1 = cinc2017_f1(["N", "N", "A", "O", "~"], ["N", "A", "A", "O", "N"])
    assert f1["N"] == pytest.approx(2 * 1 / (2 + 2)) and f1["A"] == pytest.approx(2 / 3) and f1["O"] == 1.0
    assert f1["F1"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    ci = cinc2017_f1(["N", "N", "A", "O", "~"] * 20, ["N", "A", "A", "O", "N"] * 20, n=200)["F1_ci"]
    assert ci[0] < f1["F1"] < ci[1] and ci[1] - ci[0] < 0.5
    cal = calibration_bins(np.array([0, 1, 1, 1]), np.array([0.05, 0.95, 0.95, 0.95]))
    assert cal["ece"] == pytest.approx(0.25 * 0.05 + 0.75 * 0.05)
    a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0, 0.5, -0.5]), np.array([0, 0, 1, 1, 0, 1]))
    assert a > 0 and math.isfinite(b)
    # a window of weight 2 counts as two windows
    weighted = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0, 0.5]), np.array([0, 0, 1, 1, 0]), np.array([1, 1, 1, 1, 2.0]))
    repeated = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0, 0.5, 0.5]), np.array([0, 0, 1, 1, 0, 0]))
    assert weighted == pytest.approx(repeated, abs=1e-6)


# ------------------------------------------------------------------------------------ artifact, engine


def test_the_shipped_artifact_describes_itself_and_reloads_to_the_same_predictions(
    shipped: artifact.RiskModel, data_dir: Path, tmp_path: Path
) -> None:
    meta = json.loads((artifact.SHIPPED / "model.json").read_text())
    assert shipped.version == meta["version"] and meta["version"].startswith("cardiorisk-")
    assert meta["version"].endswith(artifact.content_digest(shipped)[:8])
    assert set(meta["decision"]) == {"noisy_threshold", "af_weight", "other_weight"}
    assert set(meta["calibration"]) >= {"risk", "risk_ecg"}
    assert meta["training"]["minutes"] <= 45 and meta["training"]["context"].startswith("simulated")
    assert set(json.loads((artifact.SHIPPED / "metrics.json").read_text())["dev"]) >= {"structural", "af", "ectopy"}
    copy = tmp_path / "copy"
    shutil.copytree(artifact.SHIPPED, copy)
    again = artifact.load(copy)
    w = [mitdb_window(data_dir, "119", 300)]
    assert again.version == shipped.version
    assert again.predict(w)["risk"][0] == pytest.approx(shipped.predict(w)["risk"][0], abs=1e-6)
    (copy / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="weights.pt"):
        artifact.load(copy)


def test_the_engine_batches_requests_and_gives_what_direct_calls_give(
    shipped: artifact.RiskModel, data_dir: Path
) -> None:
    windows = [mitdb_window(data_dir, rec, 60 * k) for rec in ("119", "208") for k in range(1, 9)]
    direct = shipped.predict(windows)
    engine = InferenceEngine(shipped, preferred_batch=8, max_delay_s=0.05, device="cpu")
    try:
        got = engine.predict_many(windows)
    finally:
        engine.close()
    assert engine.stats.windows == 16 and engine.stats.largest == 8 and engine.stats.batches == 2
    for i, g in enumerate(got):
        assert g["model_version"] == shipped.version
        assert g["risk"] == pytest.approx(direct["risk"][i], abs=1e-5)
        assert g["rhythm"] == pytest.approx(direct["rhythm"][i], abs=1e-5)


def test_the_engine_runs_a_callers_last_request_without_waiting_for_more(
    shipped: artifact.RiskModel, data_dir: Path
) -> None:
    windows = [mitdb_window(data_dir, "119", 60 * k) for k in range(1, 4)]
    engine = InferenceEngine(shipped, preferred_batch=64, max_delay_s=60.0, device="cpu")
    try:
        pending = [engine.submit(w) for w in windows[:2]]  # submit() alone: the batch waits for more
        assert not concurrent.futures.wait(pending, timeout=0.5).done
        with concurrent.futures.ThreadPoolExecutor(1) as caller:
            # its last request ends the batch; waiting out the 60-s delay instead fails here after 30 s
            got = caller.submit(engine.predict_many, windows[2:]).result(timeout=30)
        assert all(f.done() for f in pending) and got[0]["model_version"] == shipped.version
    finally:
        engine.close()
    assert engine.stats.batches == 1 and engine.stats.windows == 3


def test_a_last_request_still_takes_the_requests_other_callers_queued(
    shipped: artifact.RiskModel, data_dir: Path
) -> None:
    windows = [mitdb_window(data_dir, "119", 60 * k) for k in range(1, 5)]
    engine = InferenceEngine(shipped, preferred_batch=64, max_delay_s=60.0, device="cpu")
    sizes: list[int] = []
    busy, release = threading.Event(), threading.Event()
    infer = engine._infer

    def held(batch: list) -> None:  # the first batch holds the inference thread while the others queue
        sizes.append(len(batch))
        if len(sizes) == 1:
            busy.set()
            release.wait(30)
        infer(batch)

    engine._infer = held  # type: ignore[method-assign]
    try:
        first = engine.submit(windows[0], last=True)
        assert busy.wait(30)
        queued = [engine.submit(w, last=True) for w in windows[1:]]  # three callers' single-window submissions
        release.set()
        concurrent.futures.wait([first, *queued], timeout=30)
        assert all(f.done() for f in [first, *queued])
    finally:
        engine.close()
    assert sizes == [1, 3]  # not one batch per caller


def test_the_engine_runs_torchscript_to_the_same_answers(shipped: artifact.RiskModel, data_dir: Path) -> None:
    windows = [mitdb_window(data_dir, "208", 60 * k) for k in range(1, 5)]
    direct = shipped.predict(windows)
    engine = InferenceEngine(artifact.load(artifact.SHIPPED), preferred_batch=4, device="cpu", torchscript=True)
    try:
        got = engine.predict_many(windows)
    finally:
        engine.close()
    assert [g["ectopy"] for g in got] == pytest.approx(list(direct["ectopy"]), abs=1e-4)


# ------------------------------------------------------------------------------------ train, evaluate


def test_training_is_seeded_and_writes_an_artifact_that_evaluates(
    small_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, ...]] = []

    def load(root: Path, datasets: tuple[str, ...] = tuple(LOADERS), log: bool = True) -> list[Example]:
        asked.append(datasets)
        return load_all(root, datasets, log)

    monkeypatch.setattr("models.train.load_all", load)
    kwargs = dict(seed=3, epochs=1, steps_per_epoch=3, batch_size=16, threads=1, log=lambda *_: None)
    a = train(small_data, tmp_path / "a", **kwargs)
    assert asked == [("ptbxl", "cinc2017", "mitdb")]  # the CPSC 2021 sample is never read for training
    b = train(small_data, tmp_path / "b", **kwargs)
    assert a.version == b.version, "same data and seed must give the same weights"
    seen = artifact.seen_groups(tmp_path / "a")
    assert seen and all(not g.startswith(("mitdb:104", "cpsc2021:")) for g in seen)
    report = evaluate(tmp_path / "a", small_data, tmp_path / "eval", bootstrap=50, log=lambda *_: None)
    assert report["left_out_seen"] > 0 and report["missing_datasets"] == []
    unseen = [e for e in load_all(small_data, log=False) if e.group not in seen]
    datasets = ("cinc2017", "cpsc2021", "mitdb", "ptbxl")
    assert report["examples"] == {d: sum(e.dataset == d for e in unseen) for d in datasets}
    assert all(e.split == "test" for e in unseen)  # training and dev patients are never evaluated
    assert {"structural", "af", "af_cpsc2021", "noisy", "ectopy", "risk"} <= set(report["tasks"])
    assert report["tasks"]["af_cpsc2021"]["patients"] == 6
    assert "cpsc2021" not in {k.split(" / ")[1] for k in report["tasks"]["risk"] if " / " in k}  # no risk label
    for name in ("report.json", "summary.md", "reliability_risk.png", "reliability_risk_ecg.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    assert report["tasks"]["risk"]["ecg_branch_equals_ecg_only"]


def test_evaluation_contexts_are_simulated_per_record_and_reproducible() -> None:
    a = simulate_context({"rhythm": 1.0, "risk": 1.0}, record_seed("cinc2017", "A00004", 7))
    b = simulate_context({"rhythm": 1.0, "risk": 1.0}, record_seed("cinc2017", "A00004", 7))
    assert a == b
    assert a != simulate_context({"rhythm": 1.0, "risk": 1.0}, record_seed("cinc2017", "A00005", 7))
