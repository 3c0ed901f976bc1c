"""Evaluation of a model artifact: ``cardiowatch evaluate --model DIR --data DIR --out DIR``.

Runs on any directory laid out like ``shared/data``; a dataset that is not there is skipped and said.
Every example whose patient (or record) the artifact was trained or calibrated on is left out
(``seen_groups.json``), so on ``shared/data`` the figures come from the test split, and on a directory the
model has never seen, from all of it. Reported, each with its sample size:

* **structural** (PTB-XL): AUROC and AUPRC with bootstrap 95 % intervals, with all 12 leads and with the
  bedside pair II + V5 only;
* **AF** (CinC 2017): AUROC / AUPRC of A against N and O, and the challenge's F1 (mean of N, A, O; each
  record called by :func:`models.artifact.rhythm_call` with the thresholds the training fitted on dev) with
  a bootstrap 95 % interval over the records;
* **AF on another device** (CPSC 2021 sample, never trained on): window AUROC / AUPRC of the AF probability
  on the 10-s windows wholly in or out of AF, with leads I + II and with lead I alone (CinC 2017's lead),
  intervals resampling patients; and the sensitivity and specificity of calling a window AF, by the CinC
  2017 call (:func:`models.artifact.rhythm_call`, thresholds fitted on CinC 2017 dev) and by the rhythm
  head's most probable class;
* **signal quality** (CinC 2017 noisy class): AUROC / AUPRC;
* **ectopy** (MIT-BIH 10-s windows, patients not seen in training): AUROC / AUPRC, intervals resampling
  patients;
* **risk**: AUROC / AUPRC and calibration (ECE, reliability plot) for the ECG branch alone and fused with
  the **simulated** context (:mod:`models.context`) -- every fused figure depends on the simulation;
* **naive baseline** beside each task: a non-learned score from the streaming core's own features,
  computed on the same windows -- RR irregularity for AF, the share of beats classed ventricular for ectopy,
  one minus the signal-quality index for noise, the distance of the heart rate from 60-100/min for
  structural disease and risk (:func:`baseline_scores`).

Records longer than 10 s are scored on overlapping 10-s windows every 2 s and the probabilities averaged,
as the live pipeline scores a patient every hop (:func:`models.train.windows_of`). Outputs: ``report.json``,
``summary.md`` and the reliability plots ``reliability_risk.png`` and ``reliability_risk_ecg.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import artifact
from models.artifact import rhythm_call
from models.context import record_seed, simulate_context
from models.datasets import LOADERS, RHYTHM_CLASSES, Example, cinc2017_class, load_all
from models.metrics import bootstrap_ci, calibration_bins, cinc2017_f1, reliability_plot
from models.qrs import ecg_classify_beats, ecg_detect_r_peaks_batch
from models.signal import PROCESSING_RATE_HZ, ecg_filter, ecg_resample, ecg_signal_quality, rr_features
from models.train import predict_examples, task_arrays, task_scores

#: Seed of the simulated context in evaluation (fixed per record, independent of training's).
CONTEXT_SEED = 1_000_003


def baseline_scores(examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """Non-learned per-example scores from the streaming core's features (see the module docstring).

    The first lead of each example (MLII on MIT-BIH, lead I on CinC 2017, PTB-XL and CPSC 2021) is resampled to
    the processing rate, filtered, its R peaks found and beats classed by :mod:`models.qrs`; the heart rate
    and RR irregularity come from :func:`models.signal.rr_features` and the quality from
    :func:`models.signal.ecg_signal_quality`. A heart rate outside 60-100/min (the conventional normal
    resting range, AHA) scores its distance from that range.
    """
    out = {k: np.zeros(len(examples)) for k in ("af", "ectopy", "noisy", "rate")}
    for i, ex in enumerate(examples):
        raw = ecg_resample(torch.from_numpy(ex.signal[:1].copy()), ex.rate, PROCESSING_RATE_HZ)
        x = ecg_filter(raw, PROCESSING_RATE_HZ).numpy()
        peaks = ecg_detect_r_peaks_batch(x, PROCESSING_RATE_HZ)
        quality = ecg_signal_quality(x, PROCESSING_RATE_HZ, np.zeros_like(x, dtype=bool), peaks)
        beats = peaks[0]
        rr = rr_features(beats / PROCESSING_RATE_HZ)
        out["af"][i] = float(rr.get("rr_irregularity") or 0.0)
        ventricular = ecg_classify_beats(x[0], PROCESSING_RATE_HZ, beats) if len(beats) else np.zeros(0)
        out["ectopy"][i] = float(np.mean(ventricular)) if len(ventricular) else 0.0
        out["noisy"][i] = 1.0 - float(quality[0])
        hr = rr.get("heart_rate_bpm")
        out["rate"][i] = max(60.0 - hr, hr - 100.0, 0.0) if isinstance(hr, float) else 0.0
    return out


def _call_figures(y: np.ndarray, called: np.ndarray) -> dict[str, float | None]:
    """Sensitivity and specificity of a yes/no call against binary labels (None without that class)."""
    y = y.astype(bool)
    return {
        "sensitivity": float(called[y].mean()) if y.any() else None,
        "specificity": float(1.0 - called[~y].mean()) if (~y).any() else None,
    }


def _subset_leads(examples: Sequence[Example], keep: Sequence[str]) -> list[Example]:
    """The examples that have every lead of ``keep``, with those leads only."""
    out = []
    for e in examples:
        rows = [e.leads.index(k) for k in keep if k in e.leads]
        if len(rows) == len(keep):
            out.append(Example(e.dataset, e.record, e.group, e.split, tuple(keep), e.signal[rows], e.rate, e.labels))
    return out


def evaluate(model_dir: Path, data: Path, out: Path, bootstrap: int = 1000, log: Any = print) -> dict[str, Any]:
    """Evaluate an artifact on a data directory and write the report (see the module docstring)."""
    model = artifact.load(model_dir)
    seen = artifact.seen_groups(model_dir)
    examples = load_all(data)
    fresh = [e for e in examples if e.group not in seen]
    log(f"{len(fresh)} of {len(examples)} examples from patients the model has not seen")
    present = sorted({e.dataset for e in fresh})
    contexts = [simulate_context(e.labels, record_seed(e.dataset, e.record, CONTEXT_SEED)) for e in fresh]
    fused = predict_examples(model, fresh, contexts).probs
    ecg = predict_examples(model, fresh, [None] * len(fresh)).probs
    base = baseline_scores(fresh)
    rows = {d: np.array([i for i, e in enumerate(fresh) if e.dataset == d], dtype=np.int64) for d in present}

    def binary(subset: Sequence[Example], task: str, scores: np.ndarray, by_patient: bool) -> dict[str, Any]:
        idx, y = task_arrays(subset, task)
        groups = np.array([subset[i].group for i in idx]) if by_patient else None
        return bootstrap_ci(y, scores[idx], groups, n=bootstrap)

    def on(dataset: str, task: str, scores: np.ndarray, by_patient: bool = False) -> dict[str, Any]:
        r = rows[dataset]
        return binary([fresh[i] for i in r], task, scores[r], by_patient)

    report: dict[str, Any] = {
        "model": model.version,
        "data": str(data),
        "datasets": present,
        "missing_datasets": [d for d in LOADERS if d not in present],
        "examples": {d: len(r) for d, r in rows.items()},
        "left_out_seen": len(examples) - len(fresh),
        "tasks": {},
    }
    tasks = report["tasks"]
    if "ptbxl" in present:
        bedside = _subset_leads([fresh[i] for i in rows["ptbxl"]], ("II", "V5"))
        p_bed = predict_examples(model, bedside, [None] * len(bedside)).probs
        tasks["structural"] = {
            "model_12_leads": on("ptbxl", "structural", ecg["structural"], by_patient=True),
            "model_II_V5": binary(bedside, "structural", p_bed["structural"], by_patient=True),
            "baseline_rate": on("ptbxl", "structural", base["rate"], by_patient=True),
        }
    if "cinc2017" in present:
        sub = [fresh[i] for i in rows["cinc2017"]]
        truth = [cinc2017_class(e) for e in sub]
        called = [rhythm_call(model, ecg["noisy"][i], ecg["rhythm"][i]) for i in rows["cinc2017"]]
        tasks["af"] = {
            "model": on("cinc2017", "af", task_scores(ecg, "af")),
            "baseline_rr_irregularity": on("cinc2017", "af", base["af"]),
            "cinc2017_f1": cinc2017_f1(truth, called, n=bootstrap),
        }
        tasks["noisy"] = {
            "model": on("cinc2017", "noisy", ecg["noisy"]),
            "baseline_quality_index": on("cinc2017", "noisy", base["noisy"]),
        }
    if "cpsc2021" in present:
        r21 = rows["cpsc2021"]
        sub = [fresh[i] for i in r21]
        truth_af = np.array([e.labels["af"] for e in sub])
        lead_i = _subset_leads(sub, ("I",))
        p_lead_i = predict_examples(model, lead_i, [None] * len(lead_i)).probs
        tasks["af_cpsc2021"] = {
            "model_I_II": on("cpsc2021", "af", task_scores(ecg, "af"), by_patient=True),
            "model_lead_I": binary(lead_i, "af", task_scores(p_lead_i, "af"), by_patient=True),
            "baseline_rr_irregularity": on("cpsc2021", "af", base["af"], by_patient=True),
            "patients": len({e.group for e in sub}),
            "called_af": {
                "cinc2017_call": _call_figures(
                    truth_af, np.array([rhythm_call(model, ecg["noisy"][i], ecg["rhythm"][i]) == "A" for i in r21])
                ),
                "rhythm_argmax": _call_figures(truth_af, ecg["rhythm"][r21].argmax(1) == RHYTHM_CLASSES.index("A")),
            },
        }
    if "mitdb" in present:
        tasks["ectopy"] = {
            "model": on("mitdb", "ectopy", ecg["ectopy"], by_patient=True),
            "baseline_ventricular_share": on("mitdb", "ectopy", base["ectopy"], by_patient=True),
            "patients": len({fresh[i].group for i in rows["mitdb"]}),
        }
    idx, y = task_arrays(fresh, "risk")
    if len(idx):
        groups = np.array([e.group for e in fresh])[idx]
        labelled = sorted({fresh[i].dataset for i in idx})
        risk: dict[str, Any] = {}
        for name, p in (("model_ecg_only", ecg["risk"]), ("model_fused_simulated_context", fused["risk"])):
            risk[name] = bootstrap_ci(y, p[idx], groups, n=bootstrap) | {"calibration": calibration_bins(y, p[idx])}
            for d in labelled:  # the datasets differ in prevalence and leads: each on its own too
                r = on(d, "risk", p, by_patient=True)
                d_idx, d_y = task_arrays([fresh[i] for i in rows[d]], "risk")
                r["ece"] = calibration_bins(d_y, p[rows[d]][d_idx])["ece"] if len(d_idx) else None
                risk[f"{name} / {d}"] = r
        if "ptbxl" in present:
            risk["model_ecg_only / ptbxl II+V5"] = binary(bedside, "risk", p_bed["risk"], by_patient=True)
        risk["baseline_rate"] = bootstrap_ci(y, base["rate"][idx], groups, n=bootstrap)
        # the fused run's ECG branch must give exactly what a patient with ECG only gets
        risk["ecg_branch_equals_ecg_only"] = bool(np.allclose(fused["risk_ecg"], ecg["risk"], atol=1e-6))
        tasks["risk"] = risk
    out.mkdir(parents=True, exist_ok=True)
    if "risk" in tasks:
        reliability_plot(
            tasks["risk"]["model_fused_simulated_context"]["calibration"],
            out / "reliability_risk.png",
            "risk, fused (simulated context)",
        )
        reliability_plot(
            tasks["risk"]["model_ecg_only"]["calibration"], out / "reliability_risk_ecg.png", "risk, ECG only"
        )
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(report))
    log(summary_markdown(report))
    return report


def _fmt(r: dict[str, Any] | None, key: str) -> str:
    if not r or r.get(key) is None:
        return "-"
    ci = r.get(f"{key}_ci")
    return f"{r[key]:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def summary_markdown(report: dict[str, Any]) -> str:
    """The readable summary of a report."""
    lines = [
        f"# Evaluation of {report['model']}",
        "",
        f"Data: `{report['data']}`; datasets {', '.join(report['datasets']) or 'none'}"
        + (f"; not found: {', '.join(report['missing_datasets'])}" if report["missing_datasets"] else "")
        + f". Examples scored: {report['examples']} (left out as seen in training or dev: {report['left_out_seen']}).",
        "",
        "| task | scorer | n (positives) | AUROC (95 % CI) | AUPRC (95 % CI) |",
        "|---|---|---|---|---|",
    ]
    for task, entries in report["tasks"].items():
        for name, r in entries.items():
            if isinstance(r, dict) and "auroc" in r:
                lines.append(
                    f"| {task} | {name} | {r['n']} ({r['positives']}) | {_fmt(r, 'auroc')} | {_fmt(r, 'auprc')} |"
                )
    af = report["tasks"].get("af", {}).get("cinc2017_f1")
    if af:
        lines += [
            "",
            f"CinC 2017 F1 (mean of N, A, O): **{af['F1']:.3f}**"
            + (f" (95 % CI {af['F1_ci'][0]:.3f}-{af['F1_ci'][1]:.3f})" if af.get("F1_ci") else "")
            + f"; N {af['N']:.3f}, A {af['A']:.3f}, O {af['O']:.3f}, noisy {af['~']:.3f}.",
        ]
    external = report["tasks"].get("af_cpsc2021", {}).get("called_af")
    if external:
        call, top = external["cinc2017_call"], external["rhythm_argmax"]
        lines += [
            "",
            "CPSC 2021 windows called AF (leads I + II), sensitivity / specificity: by the CinC 2017 call with its "
            f"dev-fitted thresholds {_share(call['sensitivity'])} / {_share(call['specificity'])}; by the rhythm "
            f"head's most probable class {_share(top['sensitivity'])} / {_share(top['specificity'])}.",
        ]
    risk = report["tasks"].get("risk")
    if risk:
        lines += [
            "",
            "Calibration of the risk probability (ECE, 10 bins): "
            f"ECG only {risk['model_ecg_only']['calibration']['ece']:.3f}; "
            f"fused with simulated context {risk['model_fused_simulated_context']['calibration']['ece']:.3f}.",
        ]
    lines += [
        "",
        "Figures marked *simulated context* depend on the simulated vitals, imaging and notes of "
        "`models.context`; all others use the real ECG and its real labels only.",
        "",
    ]
    return "\n".join(lines)
