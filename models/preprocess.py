"""The model's input preparation, the same for training, offline evaluation and the live worker.

Each ECG window is resampled to :data:`models.datasets.MODEL_RATE_HZ` with torchaudio
(:func:`models.signal.ecg_resample`), cut or padded to :data:`models.datasets.WINDOW_SAMPLES` (the last
10 s are kept; padding and missing samples are zeros), band-pass filtered 0.5-40 Hz (the monitoring
bandwidth, :func:`models.signal.ecg_filter`) and divided by its lead's scale -- the median over training
windows (up to 3,000, one per recording) of that lead's standard deviation after the same preprocessing
(:func:`fit_lead_scales`), so normalisation is fitted on training data only. Context goes through :mod:`models.context`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.context import imaging_features, note_tokens, vitals_features
from models.datasets import MODEL_RATE_HZ, WINDOW_SAMPLES
from models.network import LEADS, lead_index
from models.signal import ecg_filter, ecg_resample


@dataclass(slots=True)
class EcgInput:
    """One ECG window as the model takes it: lead names, ``(leads, time)`` mV (NaN where missing), rate."""

    leads: tuple[str, ...]
    samples: np.ndarray
    sampling_rate: float


@dataclass(slots=True)
class Preprocessing:
    """Statistics fitted on the training data (stored in the artifact as ``preprocessing.json``)."""

    lead_scale: dict[str, float] = field(default_factory=dict)
    vitals_stats: dict[str, list[float]] = field(default_factory=dict)

    def scale_of(self, lead: int) -> float:
        """Scale of a lead index; a lead never seen in training takes the median scale."""
        name = LEADS[lead]
        if name in self.lead_scale:
            return self.lead_scale[name]
        return float(np.median(list(self.lead_scale.values()))) if self.lead_scale else 1.0


def filter_batch(x: Tensor) -> Tensor:
    """Band-pass 0.5-40 Hz at the model rate, ``(..., time)``."""
    return ecg_filter(x, MODEL_RATE_HZ, band_hz=(0.5, 40.0), mains_hz=None)


def fit_lead_scales(windows: Sequence[EcgInput]) -> dict[str, float]:
    """Per lead identity, the median standard deviation of training windows after resampling and filtering."""
    x, leads, mask = ecg_batch(windows, Preprocessing(lead_scale={name: 1.0 for name in LEADS}))
    values: dict[str, list[float]] = {}
    for row, ids, present in zip(x.std(-1).numpy(), leads.numpy(), mask.numpy(), strict=True):
        for value, j in zip(row[present], ids[present], strict=True):
            values.setdefault(LEADS[j], []).append(float(value))
    return {name: float(np.median(v)) or 1.0 for name, v in values.items()}


def fit_window(x: Tensor) -> Tensor:
    """Keep the last :data:`WINDOW_SAMPLES` samples of ``(leads, time)``, zero-padding in front if shorter."""
    if x.shape[1] >= WINDOW_SAMPLES:
        return x[:, x.shape[1] - WINDOW_SAMPLES :]
    return torch.nn.functional.pad(x, (WINDOW_SAMPLES - x.shape[1], 0))


def ecg_batch(
    windows: Sequence[EcgInput | None], prep: Preprocessing, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor, Tensor]:
    """Stack ECG windows into ``(x, leads, lead_mask)`` for :class:`models.network.RiskNetwork`.

    Resampling and filtering run on ``device`` (torchaudio on a GPU, SciPy's filter on the CPU).

    Args:
        windows: One per patient (None: no ECG).
        prep: Fitted statistics.
        device: Where the tensors are built.
    """
    n_leads = max((len(w.leads) for w in windows if w is not None), default=1)
    x = torch.zeros(len(windows), n_leads, WINDOW_SAMPLES, device=device)
    leads = torch.zeros(len(windows), n_leads, dtype=torch.long)
    mask = torch.zeros(len(windows), n_leads, dtype=torch.bool)
    # windows of one rate and length are resampled in one call (the resampler builds its kernel per call)
    groups: dict[tuple[float, int], list[tuple[int, EcgInput]]] = defaultdict(list)
    for i, w in enumerate(windows):
        if w is not None and len(w.leads):
            groups[(w.sampling_rate, w.samples.shape[1])].append((i, w))
    for (rate, _), members in groups.items():
        rows = np.concatenate([np.asarray(w.samples, dtype=np.float32) for _, w in members])
        s = torch.from_numpy(np.nan_to_num(rows)).to(device)
        if rate != MODEL_RATE_HZ:
            s = ecg_resample(s, rate, MODEL_RATE_HZ)
        s = fit_window(s)
        k = 0
        for i, w in members:
            n = len(w.leads)
            x[i, :n] = s[k : k + n]
            leads[i, :n] = torch.tensor([lead_index(name) for name in w.leads])
            mask[i, :n] = True
            k += n
    x = filter_batch(x).float()
    scales = torch.tensor([prep.scale_of(j) for j in range(len(LEADS))], device=device)
    leads, mask = leads.to(device), mask.to(device)
    return (x / scales[leads][..., None]) * mask[..., None], leads, mask


def context_batch(contexts: Sequence[Mapping[str, Any] | None], prep: Preprocessing) -> dict[str, Tensor]:
    """Stack contexts (see :mod:`models.context`) into the network's context tensors."""
    vit: list[Tensor] = []
    img: list[Tensor] = []
    ids: list[int] = []
    offsets: list[int] = []
    mask: list[list[bool]] = []
    for c in contexts:
        c = c or {}
        v, has_v = vitals_features(c.get("vitals"), prep.vitals_stats)
        m, has_m = imaging_features(c.get("imaging"))
        tokens = note_tokens(c.get("notes"))
        offsets.append(len(ids))
        ids.extend(tokens)
        vit.append(v)
        img.append(m)
        mask.append([has_v, has_m, bool(tokens)])
    return {
        "vitals": torch.stack(vit) if vit else torch.zeros(0),
        "imaging": torch.stack(img) if img else torch.zeros(0),
        "note_ids": torch.tensor(ids, dtype=torch.long),
        "note_offsets": torch.tensor(offsets, dtype=torch.long),
        "context_mask": torch.tensor(mask, dtype=torch.bool).reshape(len(contexts), 3),
    }
