"""Model-quality figures: AUROC and AUPRC with bootstrap confidence intervals, CinC 2017 F1, calibration.

* AUROC / AUPRC: scikit-learn's ``roc_auc_score`` and ``average_precision_score``; 95 % intervals by the
  percentile bootstrap over records (or patients' windows), 1,000 resamples, seeded (Efron & Tibshirani
  1993); a resample holding one class only is skipped.
* CinC 2017 F1: the challenge's figure, the mean of the F1 of the normal, AF and other-rhythm classes,
  each ``2 * TP / (row total + column total)`` over the 4x4 confusion matrix that includes the noisy class
  (Clifford et al., Computing in Cardiology 2017).
* Expected calibration error: 10 equal-width bins, the bin-size-weighted mean of
  ``|mean predicted - observed rate|`` (Guo et al., ICML 2017); the reliability plot draws the same bins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.size) and 0 < y.sum() < y.size


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve, None without both classes."""
    return float(roc_auc_score(y, p)) if _both_classes(y) else None


def auprc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Average precision (area under the precision-recall curve), None without both classes."""
    return float(average_precision_score(y, p)) if _both_classes(y) else None


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray | None = None, n: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """AUROC and AUPRC with percentile-bootstrap 95 % intervals.

    Args:
        y: Binary labels.
        p: Scores.
        groups: Resampling unit per row (e.g. the patient of each window); rows resampled when None.
        n: Resamples.
        seed: Seed of the resampling.

    Returns:
        ``{"n", "positives", "auroc", "auroc_ci", "auprc", "auprc_ci"}`` (None where undefined).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    out: dict[str, Any] = {"n": int(y.size), "positives": int(y.sum()), "auroc": auroc(y, p), "auprc": auprc(y, p)}
    if out["auroc"] is None:
        return out | {"auroc_ci": None, "auprc_ci": None}
    rng = np.random.default_rng(seed)
    if groups is None:
        units = [np.array([i]) for i in range(y.size)]
    else:
        _, inverse = np.unique(groups, return_inverse=True)
        units = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    aucs, aps = [], []
    for _ in range(n):
        pick = rng.integers(0, len(units), len(units))
        idx = np.concatenate([units[k] for k in pick])
        if _both_classes(y[idx]):
            aucs.append(roc_auc_score(y[idx], p[idx]))
            aps.append(average_precision_score(y[idx], p[idx]))
    return out | {"auroc_ci": _percentile_interval(aucs), "auprc_ci": _percentile_interval(aps)}


def _percentile_interval(values: list[float]) -> list[float] | None:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else None


_CINC_CLASSES = ("N", "A", "O", "~")


def _cinc_f1(t: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Per-class F1 and the challenge figure from class indices (into :data:`_CINC_CLASSES`)."""
    m = np.bincount(4 * t + q, minlength=16).reshape(4, 4).astype(np.float64)
    f1 = {
        c: float(2 * m[i, i] / (m[i].sum() + m[:, i].sum())) if m[i].sum() + m[:, i].sum() else 0.0
        for i, c in enumerate(_CINC_CLASSES)
    }
    return f1 | {"F1": float(np.mean([f1["N"], f1["A"], f1["O"]]))}


def cinc2017_f1(truth: list[str], predicted: list[str], n: int = 0, seed: int = 0) -> dict[str, Any]:
    """Per-class F1 (N, A, O, ~) and the challenge figure ``F1`` = mean of N, A and O.

    With ``n`` > 0, also ``F1_ci``: the percentile-bootstrap 95 % interval of ``F1`` over ``n`` resamples of
    the recordings.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels against {len(predicted)} calls")
    t = np.array([_CINC_CLASSES.index(c) for c in truth], dtype=np.int64)
    q = np.array([_CINC_CLASSES.index(c) for c in predicted], dtype=np.int64)
    out: dict[str, Any] = _cinc_f1(t, q)
    if n > 0 and t.size:
        rng = np.random.default_rng(seed)
        draws = [_cinc_f1(t[pick], q[pick])["F1"] for pick in (rng.integers(0, t.size, t.size) for _ in range(n))]
        out["F1_ci"] = [float(v) for v in np.percentile(draws, [2.5, 97.5])]
    return out


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability table (per bin: count, mean predicted, observed)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        if not sel.any():
            continue
        conf, rate = float(p[sel].mean()), float(y[sel].mean())
        ece += sel.sum() / max(y.size, 1) * abs(conf - rate)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(sel.sum()),
                "predicted": conf,
                "observed": rate,
            }
        )
    return {"ece": float(ece), "bins": table}


def reliability_plot(calibration: dict[str, Any], path: Path, title: str) -> None:
    """Write the reliability diagram of :func:`calibration_bins` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    bins = calibration["bins"]
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], marker="o", label="model")
    for b in bins:
        ax.annotate(
            str(b["n"]), (b["predicted"], b["observed"]), fontsize=7, xytext=(3, -9), textcoords="offset points"
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="predicted risk",
        ylabel="observed rate",
        title=f"{title}\nECE {calibration['ece']:.3f}",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
