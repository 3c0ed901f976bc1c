"""Clinical context for the model: features of vitals, imaging findings and notes, and a simulated generator.

**Features.** A patient's context is a plain mapping (the same offline and live)::

    {"vitals": {"heart_rate": (value, age_s, trend_per_h), "consciousness": ("A", age_s, None), ...},
     "imaging": {"modality": "echo", "age_s": 3600.0, "lvef_percent": 35.0, "wall_motion_abnormality": True},
     "notes": ["Patient reports palpitations since this morning.", ...]}

:func:`vitals_features`, :func:`imaging_features` and :func:`note_tokens` turn it into tensors the encoders
of :mod:`models.network` take; a missing part is a False in its modality mask, never a made-up value.

**Simulated context.** No public cohort pairs these ECGs with vitals, imaging and notes, so
:func:`simulate_context` draws them, seeded per record, conditioned on the record's real ECG labels. The
associations it encodes are directional facts from the literature; their **sizes are this project's
assumptions**, chosen to be moderate, and every figure that depends on them is labelled simulated:

* Vital signs are more deranged in patients with cardiac disease: the premise of NEWS2, whose aggregate
  predicts cardiac arrest and death (Royal College of Physicians 2017; Smith et al., Resuscitation 2013).
  Drawn here: heart rate, respiratory rate, SpO2, systolic pressure, temperature, with shifted means and
  wider spread when the ECG is abnormal.
* Atrial fibrillation raises the ventricular rate when not rate-controlled (2020 ESC AF guideline).
* Echo left-ventricular ejection fraction is reduced after myocardial infarction and in heart failure
  (2021 ESC heart-failure guideline: reduced <= 40 %, mildly reduced 41-49 %); regional wall-motion
  abnormalities are the echo sign of infarction (2023 ESC acute-coronary-syndrome guideline); hypertrophy
  goes with cardiomegaly on imaging.
* Notes mention the symptoms and history that go with the finding (palpitations with AF, chest pain with
  ischaemia, known coronary disease), but only in some notes, and unrelated phrases appear in all classes.

Each modality is present at random (vitals 80 %, imaging 30 %, notes 40 %), so the model also learns to
score with any of them missing.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor

#: Numeric vital signs the vitals encoder reads, in feature order (names as in ``streams.records.VITAL_CODES``).
VITALS: Final = ("heart_rate", "spo2", "respiratory_rate", "systolic_bp", "diastolic_bp", "body_temperature")
#: Features per vital: standardised value, standardised trend, age in units of 10 minutes (capped at an hour),
#: present.
PER_VITAL: Final = 4
#: Extra vitals features: on supplemental oxygen, consciousness not Alert (ACVPU), and their presence.
VITALS_DIM: Final = len(VITALS) * PER_VITAL + 4

IMAGING_MODALITIES: Final = ("echo", "xray", "ct", "mri", "nuclear", "angiography")
IMAGING_FLAGS: Final = (
    "cardiomegaly",
    "wall_motion_abnormality",
    "pericardial_effusion",
    "pulmonary_edema",
    "valvular_disease",
)
#: LVEF (scaled value, present), each flag (value, present), modality one-hot, age in days (log1p).
IMAGING_DIM: Final = 2 + 2 * len(IMAGING_FLAGS) + len(IMAGING_MODALITIES) + 1

#: Hash buckets of note tokens (unigrams and bigrams, CRC-32 of the lower-cased token).
NOTE_BUCKETS: Final = 4096
#: Most tokens kept per patient's notes.
MAX_NOTE_TOKENS: Final = 256

_WORD = re.compile(r"[a-z0-9]+")


def fit_vitals_stats(contexts: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Mean and standard deviation of each vital's value and trend over (training) contexts."""
    stats: dict[str, list[float]] = {}
    for name in VITALS:
        values = [c["vitals"][name][0] for c in contexts if name in c.get("vitals", {})]
        trends = [c["vitals"][name][2] or 0.0 for c in contexts if name in c.get("vitals", {})]
        v = np.asarray(values or [0.0], dtype=np.float64)
        t = np.asarray(trends or [0.0], dtype=np.float64)
        stats[name] = [float(v.mean()), float(v.std() or 1.0), float(t.std() or 1.0)]
    return stats


def vitals_features(vitals: Mapping[str, Any] | None, stats: Mapping[str, Sequence[float]]) -> tuple[Tensor, bool]:
    """The vitals vector (:data:`VITALS_DIM`) and whether any vital is present."""
    out = torch.zeros(VITALS_DIM)
    if not vitals:
        return out, False
    present = False
    for i, name in enumerate(VITALS):
        if name not in vitals:
            continue
        value, age_s, trend = vitals[name]
        mean, std, trend_std = stats[name]
        out[i * PER_VITAL : (i + 1) * PER_VITAL] = torch.tensor(
            [(float(value) - mean) / std, float(trend or 0.0) / trend_std, min(float(age_s), 3600.0) / 600.0, 1.0]
        )
        present = True
    base = len(VITALS) * PER_VITAL
    if "inspired_oxygen_fraction" in vitals or "oxygen_flow_rate" in vitals:
        fio2 = float(vitals.get("inspired_oxygen_fraction", (21.0,))[0])  # %, as the vitals contract
        flow = float(vitals.get("oxygen_flow_rate", (0.0,))[0])  # L/min
        out[base : base + 2] = torch.tensor([float(fio2 > 21.0 or flow > 0.0), 1.0])
        present = True
    if "consciousness" in vitals:
        out[base + 2 : base + 4] = torch.tensor([float(str(vitals["consciousness"][0]).upper() != "A"), 1.0])
        present = True
    return out, present


def imaging_features(imaging: Mapping[str, Any] | None) -> tuple[Tensor, bool]:
    """The imaging vector (:data:`IMAGING_DIM`) and whether a study is present."""
    out = torch.zeros(IMAGING_DIM)
    if not imaging:
        return out, False
    if imaging.get("lvef_percent") is not None:
        out[0:2] = torch.tensor([(float(imaging["lvef_percent"]) - 55.0) / 15.0, 1.0])
    for i, flag in enumerate(IMAGING_FLAGS):
        if imaging.get(flag) is not None:
            out[2 + 2 * i : 4 + 2 * i] = torch.tensor([float(bool(imaging[flag])), 1.0])
    base = 2 + 2 * len(IMAGING_FLAGS)
    if imaging.get("modality") in IMAGING_MODALITIES:
        out[base + IMAGING_MODALITIES.index(imaging["modality"])] = 1.0
    out[-1] = float(np.log1p(max(float(imaging.get("age_s", 0.0)), 0.0) / 86400.0))
    return out, True


def note_tokens(notes: Sequence[str] | None) -> list[int]:
    """Hashed unigram and bigram ids of the notes (at most :data:`MAX_NOTE_TOKENS`); empty without notes."""
    ids: list[int] = []
    for text in notes or ():
        words = _WORD.findall(text.lower())
        for token in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            ids.append(zlib.crc32(token.encode()) % NOTE_BUCKETS)
    return ids[:MAX_NOTE_TOKENS]


# ------------------------------------------------------------------------------------- simulated context

_SYMPTOMS: Final = {
    "af": ("palpitations since this morning", "irregularly irregular pulse on examination", "known paroxysmal af"),
    "structural": ("chest pain radiating to left arm", "history of myocardial infarction", "exertional dyspnoea"),
    "ectopy": ("palpitations and skipped beats", "frequent ectopics noted on monitor", "dizziness on standing"),
}
_NEUTRAL: Final = (
    "routine observations",
    "patient comfortable, pain controlled",
    "mobilising with physiotherapy",
    "tolerating diet",
    "family visited",
    "awaiting discharge planning",
)


def simulate_context(labels: Mapping[str, float], seed: int) -> dict[str, Any]:
    """A simulated context for one record, conditioned on its real labels (see the module docstring)."""
    rng = np.random.default_rng(seed)
    af = labels.get("rhythm") == 1.0
    structural = labels.get("structural") == 1.0
    ectopy = labels.get("ectopy") == 1.0
    sick = af or structural or ectopy
    context: dict[str, Any] = {}
    if rng.random() < 0.8:
        spread = 1.4 if sick else 1.0
        hr = rng.normal(95 if af else 84 if sick else 76, 14 * spread)
        context["vitals"] = {
            "heart_rate": (float(np.clip(hr, 30, 200)), float(rng.uniform(0, 90)), float(rng.normal(0, 4))),
            "spo2": (float(np.clip(rng.normal(95.0 if sick else 96.8, 1.8 * spread), 75, 100)), 30.0, None),
            "respiratory_rate": (float(np.clip(rng.normal(18.5 if sick else 16, 2.8 * spread), 6, 40)), 60.0, None),
            "systolic_bp": (float(np.clip(rng.normal(121 if sick else 127, 16 * spread), 60, 220)), 900.0, None),
            "diastolic_bp": (float(np.clip(rng.normal(74, 10), 30, 130)), 900.0, None),
            "body_temperature": (float(np.clip(rng.normal(37.0, 0.4), 34, 41)), 3600.0, None),
        }
    if rng.random() < 0.3:
        lvef = rng.normal(46 if structural else 58, 10 if structural else 6)
        context["imaging"] = {
            "modality": "echo",
            "age_s": float(rng.uniform(0, 7 * 86400)),
            "lvef_percent": float(np.clip(lvef, 10, 80)),
            "wall_motion_abnormality": bool(rng.random() < (0.45 if structural else 0.06)),
            "cardiomegaly": bool(rng.random() < (0.3 if structural else 0.08)),
            "valvular_disease": bool(rng.random() < (0.25 if af else 0.08)),
            "pericardial_effusion": bool(rng.random() < 0.03),
        }
    if rng.random() < 0.4:
        phrases = [str(rng.choice(_NEUTRAL))]
        for kind, flag in (("af", af), ("structural", structural), ("ectopy", ectopy)):
            if flag and rng.random() < 0.5:
                phrases.append(str(rng.choice(_SYMPTOMS[kind])))
        if not sick and rng.random() < 0.1:
            phrases.append(str(rng.choice([p for ps in _SYMPTOMS.values() for p in ps])))
        rng.shuffle(phrases)
        context["notes"] = [". ".join(phrases).capitalize() + "."]
    return context


def record_seed(dataset: str, record: str, base: int) -> int:
    """Seed of a record's simulated context: stable across runs and machines."""
    return (zlib.crc32(f"{dataset}:{record}".encode()) + base) % (2**32)
