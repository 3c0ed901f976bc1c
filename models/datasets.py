"""Labelled ECG examples for the risk model, read from any directory laid out like ``shared/data``.

Four sources, each optional (a missing folder gives no examples, and :func:`load_all` says so). The first three
train the model; the fourth only evaluates it:

* ``ptbxl/``: 12-lead 10-s ECGs at 100 Hz. Task ``structural``: 1 when any diagnostic statement of the
  superclasses MI, STTC, CD or HYP is present, 0 when the only superclass is NORM, excluded otherwise
  (Strodthoff et al. 2020 superclasses, from ``scp_statements.csv``). Split by ``strat_fold``, which
  PTB-XL makes patient-disjoint: folds 1-6 train, 7 dev, 8 and above test.
* ``cinc2017/``: single-lead (lead I) 300 Hz recordings. Task ``rhythm``: 0 N, 1 A (atrial fibrillation),
  2 O (other rhythm) from ``REFERENCE.csv``; task ``noisy``: 1 for the ``~`` class, 0 otherwise (Clifford
  et al. 2017). The records carry no patient id, so each record is its own group.
* ``mitdb/``: 2-lead 360 Hz 30-min recordings cut into 10-s windows. Task ``ectopy``: 1 when the window
  holds a ventricular ectopic beat (AAMI class V: ``V``, ``E``) or any rhythm other than normal sinus
  (``(N``) is annotated in it, else 0. Paced records (those with a ``(P`` rhythm or paced beats ``/``) are
  left out, as ANSI/AAMI EC57 excludes them from arrhythmia-detector statistics. One record is one patient
  (201 and 202 share a patient: grouped together).
* ``cpsc2021_sample/`` (dataset ``cpsc2021``): 2-lead (I, II) 200 Hz dynamic ECGs of the CPSC 2021
  paroxysmal-AF challenge (Wang et al. 2021), cut into 10-s windows. Task ``af``: 1 for a window wholly
  inside an annotated AF episode (from its ``(AFIB`` marker to its ``(N`` end marker), 0 for one with no AF
  in it; a window across an onset or an end, or touched by another rhythm label, is left out. A Holter
  device, other leads and another rate than CinC 2017's: never trained or calibrated on, every window is
  ``test`` (:data:`EXTERNAL`), grouped by patient (``data_<patient>_<n>``).

Task ``risk`` -- the calibrated cardiac-risk probability -- is 1 for an ECG a clinician must review: any
structural disease (PTB-XL), atrial fibrillation (CinC 2017 A), ventricular ectopy or non-sinus rhythm
(MIT-BIH); 0 for NORM-only PTB-XL records, CinC 2017 N and MIT-BIH windows of clean sinus rhythm; other
rhythms (O) and noisy records are left out of it.

Splits are deterministic per group (record or patient): CinC 2017 and MIT-BIH groups ranked by a SHA-256
hash of the group id, 20 % test, 15 % dev, the rest train (:func:`assign_splits`). Signals are kept at
their recorded rate, unfiltered: the model's preprocessing (:mod:`models.preprocess`) resamples and filters
each 10-s window on its own, in training, in offline evaluation and in the live worker alike, so the same
window gives the same score everywhere.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import scipy.io
import wfdb

#: Rate (Hz) of every ECG the model sees: PTB-XL's 100 Hz version, and a monitoring bandwidth of 0.5-40 Hz
#: (IEC 60601-2-27) fits under its 50 Hz Nyquist frequency.
MODEL_RATE_HZ: Final = 100
#: Window length the model scores, seconds (the worker's default window and a PTB-XL record; a test keeps
#: this and :data:`SCORING_HOP_S` equal to the defaults of :class:`streams.settings.Settings`).
WINDOW_S: Final = 10.0
WINDOW_SAMPLES: Final = int(MODEL_RATE_HZ * WINDOW_S)
#: Hop (s) between the windows a recording longer than a window is scored in: the worker's default hop, so a
#: recording is scored offline on the windows a patient's stream would be scored on live.
SCORING_HOP_S: Final = 2.0

#: Datasets only evaluated on: never trained or calibrated on, every example in the ``test`` split.
EXTERNAL: Final = ("cpsc2021",)

#: The tasks and the number of outputs of each.
TASKS: Final = {"structural": 1, "rhythm": 3, "noisy": 1, "ectopy": 1, "risk": 1}
RHYTHM_CLASSES: Final = ("N", "A", "O")

#: PTB-XL diagnostic superclasses counted as structural heart disease.
STRUCTURAL: Final = ("MI", "STTC", "CD", "HYP")
#: AAMI ventricular ectopic beat symbols (ANSI/AAMI EC57).
VENTRICULAR: Final = frozenset("VE")


@dataclass(slots=True)
class Example:
    """One labelled recording (or a window of one).

    Attributes:
        dataset: ``ptbxl``, ``cinc2017``, ``mitdb`` or ``cpsc2021``.
        record: Record id within the dataset (a MIT-BIH or CPSC 2021 window adds ``@<start second>``).
        group: Patient (or record) id: splits never separate a group.
        split: ``train``, ``dev`` or ``test``.
        leads: Lead names, in the row order of ``signal``.
        signal: Unfiltered ECG at ``rate``, mV, float32 ``(leads, time)``; a gap as zeros.
        rate: Sampling rate of ``signal``, Hz.
        labels: Task -> label (float; the rhythm class index as a float); tasks not labelled are absent.
    """

    dataset: str
    record: str
    group: str
    split: str
    leads: tuple[str, ...]
    signal: np.ndarray
    rate: float
    labels: dict[str, float] = field(default_factory=dict)


def assign_splits(examples: list[Example], dev: float = 0.15, test: float = 0.2) -> None:
    """Split groups deterministically, ranked by the SHA-256 of their id.

    The first ``test`` share of the groups (at least one) goes to test, the next ``dev`` share (at least one)
    to dev, the rest to train. Ranking rather than thresholding each hash keeps the shares exact on a dataset
    of a few dozen patients.
    """
    groups = sorted({e.group for e in examples}, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    n_test = max(1, round(test * len(groups))) if len(groups) >= 3 else 0
    n_dev = max(1, round(dev * len(groups))) if len(groups) >= 3 else 0
    split = {g: "test" if i < n_test else "dev" if i < n_test + n_dev else "train" for i, g in enumerate(groups)}
    for e in examples:
        e.split = split[e.group]


def window_slices(n_samples: int, rate: float) -> list[slice]:
    """The non-overlapping 10-s windows of a recording of ``n_samples`` at ``rate``, from its first sample.

    At least one: a recording shorter than a window is one (short) window, which the model's preprocessing
    pads.
    """
    width = int(round(WINDOW_S * rate))
    return [slice(i * width, (i + 1) * width) for i in range(max(1, n_samples // width))]


def scoring_slices(n_samples: int, rate: float, hop_s: float = SCORING_HOP_S) -> list[slice]:
    """The overlapping 10-s windows a recording of ``n_samples`` at ``rate`` is scored on, every ``hop_s``.

    From the first sample, plus one ending at the last sample when the hop does not land there, so every
    sample is scored. A recording no longer than a window is one window (a short one is padded by the model's
    preprocessing).
    """
    width = int(round(WINDOW_S * rate))
    if n_samples <= width:
        return [slice(0, width)]
    hop = max(1, int(round(hop_s * rate)))
    starts = list(range(0, n_samples - width + 1, hop))
    if starts[-1] != n_samples - width:
        starts.append(n_samples - width)
    return [slice(s, s + width) for s in starts]


def _float32(x: np.ndarray) -> np.ndarray:
    """``(leads, time)`` mV as contiguous float32, NaN (a gap) as 0."""
    return np.nan_to_num(np.ascontiguousarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------------------------- PTB-XL


def ptbxl_examples(root: Path) -> Iterator[Example]:
    """PTB-XL records with the ``structural`` and ``risk`` labels (see the module docstring)."""
    folder = root / "ptbxl"
    with open(folder / "scp_statements.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    klass = header.index("diagnostic_class")
    superclass = {r[0]: r[klass] for r in rows[1:] if r[klass]}
    with open(folder / "ptbxl_database.csv", newline="") as f:
        for row in csv.DictReader(f):
            classes = {superclass[c] for c in ast.literal_eval(row["scp_codes"]) if c in superclass}
            if not classes:
                continue
            path = folder / row["filename_lr"]
            if not path.with_suffix(".hea").exists():
                continue
            rec = wfdb.rdrecord(str(path))
            fold = int(float(row["strat_fold"]))
            y = float(bool(classes & set(STRUCTURAL)))
            yield Example(
                dataset="ptbxl",
                record=str(int(float(row["ecg_id"]))),
                group=f"ptbxl:{int(float(row['patient_id']))}",
                split="train" if fold <= 6 else "dev" if fold == 7 else "test",
                leads=tuple(rec.sig_name),
                signal=_float32(rec.p_signal.T),
                rate=float(rec.fs),
                labels={"structural": y, "risk": y},
            )


# -------------------------------------------------------------------------------------------- CinC 2017


def cinc2017_examples(root: Path) -> Iterator[Example]:
    """CinC 2017 recordings with ``rhythm``, ``noisy`` and ``risk`` labels (see the module docstring)."""
    folder = root / "cinc2017"
    with open(folder / "REFERENCE.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) == 2 and r[1] in ("N", "A", "O", "~")]
    for record, label in rows:
        path = folder / f"{record}.mat"
        if not path.exists():
            continue
        x = scipy.io.loadmat(path)["val"].astype(np.float32) / 1000.0
        labels = {"noisy": float(label == "~")}
        if label != "~":
            labels["rhythm"] = float(RHYTHM_CLASSES.index(label))
        if label in ("N", "A"):
            labels["risk"] = float(label == "A")
        yield Example(
            dataset="cinc2017",
            record=record,
            group=f"cinc2017:{record}",
            split="",
            leads=("I",),
            signal=_float32(x),
            rate=300.0,
            labels=labels,
        )


def cinc2017_class(ex: Example) -> str:
    """A CinC 2017 recording's reference class: ``N``, ``A``, ``O`` or ``~`` (noisy)."""
    return "~" if ex.labels["noisy"] else RHYTHM_CLASSES[int(ex.labels["rhythm"])]


# ---------------------------------------------------------------------------------------------- MIT-BIH

#: MIT-BIH records from one patient (the database's documentation: 201 and 202).
SAME_PATIENT: Final = {"202": "201"}


def rhythm_markers(ann: wfdb.Annotation) -> list[tuple[int, str]]:
    """The rhythm markers of an annotation (``+`` with the rhythm in ``aux_note``): sample and label, in order.

    ``wfdb`` may return a label with a trailing NUL pad byte; it is stripped.
    """
    return [
        (int(s), (note or "").rstrip("\x00").strip())
        for s, sym, note in zip(ann.sample, ann.symbol, ann.aux_note or [""] * len(ann.sample), strict=True)
        if sym == "+"
    ]


def _window_examples(
    dataset: str, record: str, group: str, split: str, rec: wfdb.Record, labels: Sequence[dict[str, float] | None]
) -> Iterator[Example]:
    """The non-overlapping 10-s windows of a WFDB record with their labels (None: the window is left out)."""
    signal = _float32(rec.p_signal.T)
    for i, (cut, y) in enumerate(zip(window_slices(signal.shape[1], float(rec.fs)), labels, strict=False)):
        if y is not None:
            yield Example(
                dataset,
                f"{record}@{int(i * WINDOW_S)}",
                group,
                split,
                tuple(rec.sig_name),
                signal[:, cut],
                float(rec.fs),
                y,
            )


def mitdb_window_labels(ann: wfdb.Annotation, n_samples: int, rate: float) -> tuple[np.ndarray, bool]:
    """Per 10-s window (non-overlapping, from sample 0), the ``ectopy`` label; and whether the record is paced.

    A window is 1 when a ventricular beat (``V``, ``E``) falls in it or a rhythm other than ``(N`` is in
    force at any time in it.
    """
    width = int(round(WINDOW_S * rate))
    count = n_samples // width
    labels = np.zeros(count, dtype=np.float32)
    symbols = np.asarray(ann.symbol)
    samples = np.asarray(ann.sample)
    rhythm_at = rhythm_markers(ann)
    paced = any(r == "(P" for _, r in rhythm_at) or bool(np.any(symbols == "/"))
    for s in samples[np.isin(symbols, list(VENTRICULAR))]:
        if s // width < count:
            labels[s // width] = 1.0
    for i, (start, rhythm) in enumerate(rhythm_at):
        end = rhythm_at[i + 1][0] if i + 1 < len(rhythm_at) else n_samples
        if rhythm != "(N":
            labels[start // width : min(math.ceil(end / width), count)] = 1.0
    return labels, paced


def mitdb_examples(root: Path, records: Sequence[str] | None = None) -> Iterator[Example]:
    """Non-overlapping 10-s windows of the non-paced MIT-BIH records with ``ectopy`` and ``risk`` labels."""
    folder = root / "mitdb"
    for record in records or sorted(p.stem for p in folder.glob("*.hea")):
        if not (folder / f"{record}.atr").exists():
            continue
        rec = wfdb.rdrecord(str(folder / record))
        ann = wfdb.rdann(str(folder / record), "atr")
        labels, paced = mitdb_window_labels(ann, rec.sig_len, float(rec.fs))
        if paced:
            continue
        group = f"mitdb:{SAME_PATIENT.get(record, record)}"
        yield from _window_examples(
            "mitdb", record, group, "", rec, [{"ectopy": float(y), "risk": float(y)} for y in labels]
        )


# --------------------------------------------------------------------------------------------- CPSC 2021


def cpsc2021_window_labels(ann: wfdb.Annotation, n_samples: int, rate: float) -> np.ndarray:
    """Per 10-s window (non-overlapping, from sample 0), the ``af`` label: 1, 0, or NaN when left out.

    AF is in force from each ``(AFIB`` rhythm marker to the next ``(N`` marker, or to the record's end without
    one (CPSC 2021 puts ``(AFIB`` 150 ms before an episode's first beat and ``(N`` 150 ms after its last). A
    window across an AF edge is left out, and so is one touched by any other rhythm marker (atrial flutter,
    say) until the next ``(AFIB`` or ``(N``: it is not labelled as either.
    """
    width = int(round(WINDOW_S * rate))
    af = np.zeros(n_samples, dtype=bool)
    unknown = np.zeros(n_samples, dtype=bool)
    state, since = "(N", 0
    for at, label in [*rhythm_markers(ann), (n_samples, "(N")]:
        if state == "(AFIB":
            af[since:at] = True
        elif state != "(N":
            unknown[since:at] = True
        if label != state:
            state, since = label, at
    count = n_samples // width
    share = af[: count * width].reshape(-1, width).mean(axis=1)
    odd = unknown[: count * width].reshape(-1, width).any(axis=1)
    return np.where(odd, np.nan, np.where(share == 1.0, 1.0, np.where(share == 0.0, 0.0, np.nan))).astype(np.float32)


def cpsc2021_examples(root: Path) -> Iterator[Example]:
    """The 10-s windows of the CPSC 2021 sample records with an ``af`` label (see the module docstring)."""
    folder = root / FOLDERS["cpsc2021"]
    for header in sorted(folder.glob("*.hea")):
        if not header.with_suffix(".atr").exists():
            continue
        path = str(header.with_suffix(""))
        rec = wfdb.rdrecord(path)
        labels = cpsc2021_window_labels(wfdb.rdann(path, "atr"), rec.sig_len, float(rec.fs))
        group = f"cpsc2021:{header.stem.split('_')[1]}"
        yield from _window_examples(
            "cpsc2021", header.stem, group, "test", rec, [None if np.isnan(y) else {"af": float(y)} for y in labels]
        )


LOADERS: Final = {
    "ptbxl": ptbxl_examples,
    "cinc2017": cinc2017_examples,
    "mitdb": mitdb_examples,
    "cpsc2021": cpsc2021_examples,
}
#: The datasets the model is trained and calibrated on.
TRAINING: Final = tuple(name for name in LOADERS if name not in EXTERNAL)
#: Each dataset's folder, where it is not the dataset's name.
FOLDERS: Final = {"cpsc2021": "cpsc2021_sample"}
#: A file (or a glob pattern) whose presence in the folder shows the dataset is there.
MARKERS: Final = {"ptbxl": "ptbxl_database.csv", "cinc2017": "REFERENCE.csv", "mitdb": "RECORDS", "cpsc2021": "*.atr"}


def load_all(root: Path, datasets: tuple[str, ...] = tuple(LOADERS), log: bool = True) -> list[Example]:
    """Every example of the datasets present under ``root``; a missing dataset is skipped and said."""
    out: list[Example] = []
    for name in datasets:
        if not any((root / FOLDERS.get(name, name)).glob(MARKERS[name])):
            if log:
                print(f"{name}: not found under {root}, skipped", flush=True)
            continue
        found = list(LOADERS[name](root))
        if name not in ("ptbxl", *EXTERNAL):
            assign_splits(found)
        if log:
            splits = {s: sum(e.split == s for e in found) for s in ("train", "dev", "test")}
            print(f"{name}: {len(found)} examples {splits}", flush=True)
        out.extend(found)
    return out
