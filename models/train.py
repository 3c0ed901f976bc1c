"""Training of the risk model: ``cardiowatch train --data DIR --out DIR``.

* **Data**: :func:`models.datasets.load_all` on any directory laid out like ``shared/data``, the training
  datasets only (:data:`models.datasets.TRAINING`: CPSC 2021 is left to evaluation); patient-wise train / dev /
  test splits. Only the train split is learned from; dev picks the best epoch (early stopping)
  and fits the risk calibration; test is never touched here.
* **Normalisation** (lead scales, vitals statistics) is fitted on the train split only.
* **Batches** mix the datasets (:data:`MIX`), each example a random 10-s crop (of the longer CinC 2017
  recordings; MIT-BIH windows and PTB-XL records are 10 s already) with bedside augmentations
  (:func:`augment`): amplitude change, white noise, baseline wander, a heart-rate change by time stretch,
  and lead loss (a random subset of the leads, often the bedside pair II + V5); a few examples lose their
  whole ECG (:data:`NO_ECG`), so the network also scores a patient from context alone.
* **Context** is simulated (:func:`models.context.simulate_context`), drawn anew for every training batch
  and fixed per record for dev.
* **Loss**: binary cross-entropy per binary task, weighted cross-entropy for the rhythm classes, each on
  the examples that carry the task's label; the risk loss is counted on the fused risk and on the ECG
  branch alone, so the ECG branch is a complete model by itself.
* **Seeded** (``--seed``): the same data, seed and thread count give the same weights.
* **Rhythm call**: the noisy threshold and the AF and other-rhythm weights of the CinC 2017 class call are
  fitted on dev to maximise the challenge F1 (:func:`fit_rhythm_decision`), on the recordings' probabilities
  averaged over the windows they are scored on (every 2 s, :func:`windows_of`).
* **Calibration**: Platt scaling on dev (Platt 1999), per 10-s window: one fit for the ECG branch (the risk
  of a patient with ECG only), one for the fused risk of windows with context (:func:`calibrate`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import artifact
from models.artifact import RiskModel, rhythm_call
from models.context import fit_vitals_stats, record_seed, simulate_context
from models.datasets import (
    RHYTHM_CLASSES,
    TRAINING,
    WINDOW_S,
    Example,
    cinc2017_class,
    load_all,
    scoring_slices,
    window_slices,
)
from models.metrics import auroc, cinc2017_f1
from models.network import NetworkConfig, RiskNetwork
from models.preprocess import EcgInput, Preprocessing, fit_lead_scales

#: Share of each training batch drawn from each dataset (renormalised over the datasets present).
MIX = {"cinc2017": 0.45, "mitdb": 0.35, "ptbxl": 0.2}
#: The bedside lead pair the structural-disease goal is set for.
BEDSIDE_PAIR = ("II", "V5")


#: Heart-rate changes of the augmentation: a window's samples read as if recorded at ``rate * factor``, so
#: after resampling the beats come ``factor`` times as fast (a few discrete factors keep the resampler's
#: rate ratios small).
STRETCH = (0.85, 0.9, 0.95, 1.05, 1.1, 1.15)


#: Share of training examples whose whole ECG is dropped, so that the network learns to score from context
#: alone (a patient with vitals and no waveform).
NO_ECG = 0.05


def augment(ex: Example, rng: np.random.Generator) -> EcgInput | None:
    """A random 10-s crop of an example with bedside augmentations (see the module docstring)."""
    if rng.random() < NO_ECG:
        return None
    leads = list(ex.leads)
    factor = float(rng.choice(STRETCH)) if rng.random() < 0.3 else 1.0
    rate = ex.rate * factor
    need = int(round(WINDOW_S * rate))
    x = ex.signal
    start = int(rng.integers(0, x.shape[1] - need + 1)) if x.shape[1] > need else 0
    seg = x[:, start : start + need] * np.float32(rng.uniform(0.7, 1.4))
    t = np.arange(seg.shape[1]) / rate
    if rng.random() < 0.4:
        f, phase = rng.uniform(0.05, 0.5), rng.uniform(0, 2 * np.pi)
        seg += (rng.uniform(0.0, 0.4) * np.sin(2 * np.pi * f * t + phase)).astype(np.float32)
    if rng.random() < 0.4:
        seg += rng.normal(0.0, rng.uniform(0.005, 0.08), seg.shape).astype(np.float32)
    if len(leads) > 1:
        r = rng.random()
        if r < 0.35 and all(p in leads for p in BEDSIDE_PAIR):
            keep = [leads.index(p) for p in BEDSIDE_PAIR]
        elif r < 0.7:
            k = int(rng.integers(1, len(leads) + 1))
            keep = sorted(rng.choice(len(leads), k, replace=False).tolist())
        else:
            keep = list(range(len(leads)))
        seg, leads = seg[keep], [leads[i] for i in keep]
    return EcgInput(tuple(leads), seg, rate)


def windows_of(ex: Example) -> list[EcgInput]:
    """The 10-s windows an example is scored on, at its own rate (:func:`models.datasets.scoring_slices`).

    A recording longer than a window is scored every :data:`models.datasets.SCORING_HOP_S`, as the live worker
    scores a patient every hop; each window is resampled and filtered on its own by the model's preprocessing,
    as the worker does.
    """
    return [EcgInput(ex.leads, ex.signal[:, cut], ex.rate) for cut in scoring_slices(ex.signal.shape[1], ex.rate)]


@dataclass
class Predictions:
    """Per example, task probabilities averaged over its windows; per window, the uncalibrated risk logits."""

    probs: dict[str, np.ndarray]
    window_example: np.ndarray
    window_logits: dict[str, np.ndarray]
    window_context: np.ndarray


@torch.inference_mode()
def predict_examples(
    model: RiskModel, examples: Sequence[Example], contexts: Sequence[Mapping[str, Any] | None], batch: int = 256
) -> Predictions:
    """Score every 10-s window of every example (one context per example) as the live worker would.

    Windows are sorted by lead count before batching, so few batches mix recordings of different lead counts.
    """
    model.network.eval()
    items = [(i, w) for i, ex in enumerate(examples) for w in windows_of(ex)]
    items.sort(key=lambda iw: len(iw[1].leads))
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(len(examples))
    logits_out: dict[str, list[np.ndarray]] = {"risk": [], "risk_ecg": []}
    has_context = []
    for k in range(0, len(items), batch):
        part = items[k : k + batch]
        idx = np.array([i for i, _ in part])
        inputs = model.inputs([w for _, w in part], [contexts[i] for i in idx])
        logits = model.network(**inputs)
        probs = model.probabilities(logits, inputs["context_mask"])
        for name, v in probs.items():
            if name not in sums:
                sums[name] = np.zeros((len(examples), *v.shape[1:]))
            np.add.at(sums[name], idx, v)
        np.add.at(counts, idx, 1)
        for name in logits_out:
            logits_out[name].append(logits[name].float().cpu().numpy())
        has_context.append(inputs["context_mask"].any(1).cpu().numpy())
    return Predictions(
        probs={name: v / counts.reshape(-1, *([1] * (v.ndim - 1))) for name, v in sums.items()},
        window_example=np.array([i for i, _ in items], dtype=np.int64),
        window_logits={name: np.concatenate(v) for name, v in logits_out.items()},
        window_context=np.concatenate(has_context),
    )


def task_arrays(examples: Sequence[Example], task: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the examples labelled for ``task`` and their labels.

    Task ``af`` is atrial fibrillation against the other rhythm labels (A against N and O, CinC 2017), or the
    example's own ``af`` label where it has one (CPSC 2021).
    """
    if task == "af":
        idx = np.array([i for i, e in enumerate(examples) if "af" in e.labels or "rhythm" in e.labels], np.int64)
        a = float(RHYTHM_CLASSES.index("A"))
        return idx, np.array([examples[i].labels.get("af", float(examples[i].labels.get("rhythm") == a)) for i in idx])
    idx = np.array([i for i, e in enumerate(examples) if task in e.labels], dtype=np.int64)
    return idx, np.array([examples[i].labels[task] for i in idx])


def task_scores(probs: Mapping[str, np.ndarray], task: str) -> np.ndarray:
    """The probability that scores a task (``af``: the rhythm head's AF class)."""
    return probs["rhythm"][:, RHYTHM_CLASSES.index("A")] if task == "af" else probs[task]


def dev_figures(examples: Sequence[Example], probs: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """AUROC per task on a split, and their mean as ``score``."""
    out: dict[str, float | None] = {}
    for task in ("structural", "noisy", "ectopy", "risk", "af"):
        idx, y = task_arrays(examples, task)
        out[task] = auroc(y, task_scores(probs, task)[idx]) if len(idx) else None
    known = [v for v in out.values() if v is not None]
    out["score"] = float(np.mean(known)) if known else None
    return out


def fit_platt(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` fitted by (weighted) maximum likelihood (L-BFGS)."""
    z = torch.tensor(logits, dtype=torch.float64)
    t = torch.tensor(y, dtype=torch.float64)
    w = None if weights is None else torch.tensor(weights / weights.mean(), dtype=torch.float64)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(params[0] * z + params[1], t, weight=w)
        loss.backward()
        return loss

    opt.step(closure)
    return float(params[0].item()), float(params[1].item())


def window_weights(examples: Sequence[Example], window_example: np.ndarray) -> np.ndarray:
    """Per scored window (``window_example``: the example of each), its weight in a per-window fit.

    An example's windows share the count of its non-overlapping 10-s stretches
    (:func:`models.datasets.window_slices`) equally, so each 10 s of recording weighs one whatever the hop
    it is scored at.
    """
    stretches = np.array([len(window_slices(e.signal.shape[1], e.rate)) for e in examples], dtype=np.float64)
    scored = np.bincount(window_example, minlength=len(examples))
    return (stretches / np.maximum(scored, 1))[window_example]


def calibrate(
    model: RiskModel, examples: Sequence[Example], contexts: Sequence[Mapping[str, Any] | None]
) -> dict[str, tuple[float, float]]:
    """Platt scaling of the risk logit, per 10-s window as the worker scores.

    ``risk_ecg`` is fitted on every window (the ECG branch, which is also the risk of a patient with ECG
    only), ``risk`` on the windows with context. A recording's overlapping windows share the weight of its
    non-overlapping 10-s stretches (:func:`models.datasets.window_slices`), so each 10 s of recording counts
    once whatever the hop it is scored at, and the long CinC 2017 recordings do not outweigh the others.
    """
    pred = predict_examples(model, examples, contexts)
    idx, y = task_arrays(examples, "risk")
    label = np.full(len(examples), np.nan)
    label[idx] = y
    y_win = label[pred.window_example]
    share = window_weights(examples, pred.window_example)
    known = ~np.isnan(y_win)
    fused = known & pred.window_context
    return {
        "risk_ecg": fit_platt(pred.window_logits["risk_ecg"][known], y_win[known], share[known]),
        "risk": fit_platt(pred.window_logits["risk"][fused], y_win[fused], share[fused]) if fused.any() else (1.0, 0.0),
    }


def fit_rhythm_decision(
    model: RiskModel, examples: Sequence[Example], probs: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """The rhythm call's thresholds that maximise the CinC 2017 F1 on ``examples`` (the dev split).

    The noisy threshold and the AF and other-rhythm weights of :func:`models.artifact.rhythm_call`, over a
    fixed grid (the first best in grid order); the neutral defaults without CinC 2017 examples.
    """
    rows = [i for i, e in enumerate(examples) if e.dataset == "cinc2017"]
    if not rows:
        return {"noisy_threshold": 0.5, "af_weight": 1.0, "other_weight": 1.0}
    truth = [cinc2017_class(examples[i]) for i in rows]
    best = (-1.0, 0.5, 1.0, 1.0)
    for threshold in np.arange(0.1, 0.95, 0.05):
        for af in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
            for other in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
                model.decision = {"noisy_threshold": round(float(threshold), 2), "af_weight": af, "other_weight": other}
                called = [rhythm_call(model, probs["noisy"][i], probs["rhythm"][i]) for i in rows]
                f1 = cinc2017_f1(truth, called)["F1"]
                if f1 > best[0]:
                    best = (f1, round(float(threshold), 2), af, other)
    return {"noisy_threshold": best[1], "af_weight": best[2], "other_weight": best[3]}


def _loss(
    logits: Mapping[str, torch.Tensor], labels: list[dict[str, float]], rhythm_weight: torch.Tensor
) -> torch.Tensor:
    total = torch.zeros(())
    for task, out_name in (
        ("structural", "structural"),
        ("noisy", "noisy"),
        ("ectopy", "ectopy"),
        ("risk", "risk"),
        ("risk", "risk_ecg"),
    ):
        idx = [i for i, lab in enumerate(labels) if task in lab]
        if idx:
            y = torch.tensor([labels[i][task] for i in idx])
            total = total + F.binary_cross_entropy_with_logits(logits[out_name][idx], y)
    idx = [i for i, lab in enumerate(labels) if "rhythm" in lab]
    if idx:
        y = torch.tensor([int(labels[i]["rhythm"]) for i in idx])
        total = total + F.cross_entropy(logits["rhythm"][idx], y, weight=rhythm_weight)
    return total


def train(
    data: Path,
    out: Path,
    seed: int = 0,
    minutes: float = 42.0,
    epochs: int = 55,
    steps_per_epoch: int = 150,
    batch_size: int = 64,
    threads: int | None = None,
    config: NetworkConfig | None = None,
    log: Any = print,
) -> RiskModel:
    """Train, select by dev AUROC, calibrate on dev, save the artifact to ``out``; see the module docstring.

    Stops after ``epochs`` epochs or ``minutes`` of wall time, whichever comes first.
    """
    t0 = time.monotonic()
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    examples = load_all(data, TRAINING)
    train_set = [e for e in examples if e.split == "train"]
    dev_set = [e for e in examples if e.split == "dev"]
    if not train_set or not dev_set:
        raise SystemExit(f"{data}: no training or dev examples (is it laid out like shared/data?)")
    dev_contexts = [simulate_context(e.labels, record_seed(e.dataset, e.record, seed)) for e in dev_set]
    train_contexts = [simulate_context(e.labels, record_seed(e.dataset, e.record, seed + 1)) for e in train_set]
    pick = rng.choice(len(train_set), min(len(train_set), 3000), replace=False)
    prep = Preprocessing(
        lead_scale=fit_lead_scales([windows_of(train_set[i])[0] for i in pick]),
        vitals_stats=fit_vitals_stats(train_contexts),
    )
    network = RiskNetwork(config or NetworkConfig())
    model = RiskModel(network, prep)
    by_dataset = {name: [e for e in train_set if e.dataset == name] for name in MIX}
    mix = {name: share for name, share in MIX.items() if by_dataset[name]}
    total_share = sum(mix.values())
    names = list(mix)
    shares = np.array([mix[n] / total_share for n in names])
    rhythm_counts = np.bincount([int(e.labels["rhythm"]) for e in train_set if "rhythm" in e.labels], minlength=3)
    rhythm_weight = torch.tensor((rhythm_counts.sum() / np.maximum(rhythm_counts, 1)) ** 0.5, dtype=torch.float32)
    rhythm_weight = rhythm_weight / rhythm_weight.mean()
    opt = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=1e-2)
    total_steps = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=total_steps, pct_start=max(0.1, 2.5 / total_steps)
    )
    best: dict[str, Any] = {"score": -math.inf}
    history = []
    for epoch in range(epochs):
        network.train()
        losses = []
        for _ in range(steps_per_epoch):
            counts = rng.multinomial(batch_size, shares)
            batch = [
                by_dataset[n][int(j)]
                for n, c in zip(names, counts, strict=True)
                for j in rng.integers(0, len(by_dataset[n]), c)
            ]
            ecgs = [augment(e, rng) for e in batch]
            ctx = [simulate_context(e.labels, int(rng.integers(2**31))) for e in batch]
            logits = network(**model.inputs(ecgs, ctx))
            loss = _loss(logits, [e.labels for e in batch], rhythm_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        figures = dev_figures(dev_set, predict_examples(model, dev_set, dev_contexts).probs)
        elapsed = (time.monotonic() - t0) / 60
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "minutes": round(elapsed, 2), **figures})
        log(
            f"epoch {epoch + 1:3d} loss {np.mean(losses):.3f} dev "
            + " ".join(f"{k} {v:.3f}" for k, v in figures.items() if v is not None)
            + f"  ({elapsed:.1f} min)"
        )
        if figures["score"] is not None and figures["score"] > best["score"]:
            state = {k: v.clone() for k, v in network.state_dict().items()}
            best = {"score": figures["score"], "epoch": epoch + 1, "state": state}
        if epoch + 1 < epochs and elapsed * (epoch + 2) / (epoch + 1) > minutes:
            log(f"stopping: the next epoch would pass the {minutes:g}-minute budget")
            break
    network.load_state_dict(best["state"])
    model.calibration = calibrate(model, dev_set, dev_contexts)
    dev_probs = predict_examples(model, dev_set, dev_contexts).probs
    model.decision = fit_rhythm_decision(model, dev_set, dev_probs)
    dev = dev_figures(dev_set, dev_probs)
    model.meta = {
        "name": "cardiorisk",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tasks": {
            "structural": "PTB-XL MI/STTC/CD/HYP vs NORM only",
            "rhythm": "CinC 2017 N/A/O",
            "noisy": "CinC 2017 noisy class",
            "ectopy": "MIT-BIH window with V beat or non-sinus rhythm",
            "risk": "calibrated probability of an ECG needing review (see models.datasets)",
        },
        "model_rate_hz": 100,
        "window_s": 10.0,
        "training": {
            "data": str(data),
            "seed": seed,
            "best_epoch": best["epoch"],
            "epochs_run": len(history),
            "minutes": round((time.monotonic() - t0) / 60, 2),
            "threads": torch.get_num_threads(),
            "examples": {
                s: {d: sum(e.split == s and e.dataset == d for e in examples) for d in MIX} for s in ("train", "dev")
            },
            "context": "simulated (models.context.simulate_context)",
        },
    }
    seen = {e.group for e in train_set} | {e.group for e in dev_set}
    artifact.save(model, out, {"dev": dev, "history": history}, sorted(seen))
    log(f"saved {model.version} to {out} (best epoch {best['epoch']}, dev {json.dumps(dev)})")
    return model
