"""Beat-by-beat evaluation of a QRS detector as ANSI/AAMI EC57 prescribes (PhysioNet's ``bxb``).

Each detection is paired with at most one reference beat within a 150 ms match window; the first 5
minutes of each record are a learning period that is not scored; test beats during reference-marked
ventricular flutter/fibrillation (between ``[`` and ``]``) are not counted, as ``bxb`` does. Sensitivity
``Se = TP / (TP + FN)``, positive predictivity ``+P = TP / (TP + FP)``, per record and gross (sums over
records). Reference: ANSI/AAMI EC57:2012, "Testing and reporting performance results of cardiac rhythm and
ST segment measurement algorithms"; G. B. Moody, ``bxb.c`` in the WFDB Software Package (PhysioNet).

A second, independent check where the data holds it: the CPSC 2019 QRS-detection sample (``cpsc2019_sample/``:
single-lead 500 Hz 10-s records with reference R peaks; Gao et al.,
"An open-access ECG database for algorithm evaluation of QRS detection and heart rate estimation", J. Med.
Imaging Health Inform. 9(9):1853-1858, 2019), matched with the same 150 ms window over each record but its
first and last :data:`CPSC2019_EDGE_S` (a beat there may be cut short, and the detector sees less context);
no learning period (:func:`evaluate_cpsc2019`).

Run on the shared data (``python -m models.ec57 --data ../shared/data --out ec57.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np
import scipy.io
import torch
import wfdb

from models.qrs import DEFAULT_METHOD, ecg_classify_beats, ecg_detect_r_peaks
from models.signal import PROCESSING_RATE_HZ, ecg_resample

log = logging.getLogger(__name__)

#: Match window: a detection within this many seconds of a reference beat is a true positive (EC57).
MATCH_WINDOW_S: Final = 0.15
#: Learning period at the start of each record that is not scored (EC57; ``bxb -f 5:0``).
LEARNING_PERIOD_S: Final = 300.0
#: Reference annotations that are beats (MIT-BIH codes of AAMI classes N, S, V, F and Q).
BEAT_SYMBOLS: Final = frozenset("NLRejAaJSVEF/fQ")
#: AAMI class V (ventricular ectopic beats): premature ventricular contraction and ventricular escape.
VENTRICULAR_SYMBOLS: Final = frozenset("VE")
#: AAMI classes N and S: a ventricular label on one of these is a VEB false positive.
NORMAL_SUPRA_SYMBOLS: Final = frozenset("NLRejAaJS")
#: Paced and pacemaker-fusion beats; records with them are left out of VEB statistics (EC57).
PACED_SYMBOLS: Final = frozenset("/f")
#: Start and end of reference-marked ventricular flutter/fibrillation; detections between them are not scored.
VF_ON, VF_OFF = "[", "]"
#: Folder of the CPSC 2019 QRS-detection sample in a shared/data-like folder, and its sampling rate (Hz, Gao
#: et al. 2019; the ``.mat`` files do not carry it).
CPSC2019_FOLDER: Final = "cpsc2019_sample"
CPSC2019_RATE_HZ: Final = 500.0
#: Start and end of each CPSC 2019 record left unscored, s.
CPSC2019_EDGE_S: Final = 0.5


class Ec57Error(Exception):
    """An evaluation that cannot run: a data folder without MIT-BIH records, an unreadable record."""


@dataclass(frozen=True, slots=True)
class BeatMatch:
    """Result of pairing detections with reference beats; all fields are index arrays.

    Attributes:
        reference_matched: Indices into ``reference`` of the true positives.
        detected_matched: Indices into ``detected`` of the same pairs, element by element.
        reference_missed: Indices into ``reference`` of the false negatives.
        detected_extra: Indices into ``detected`` of the false positives.
    """

    reference_matched: np.ndarray
    detected_matched: np.ndarray
    reference_missed: np.ndarray
    detected_extra: np.ndarray


def match_beats(
    reference: np.ndarray, detected: np.ndarray, sampling_rate: float, window_s: float = MATCH_WINDOW_S
) -> BeatMatch:
    """Pair detections with reference beats one to one, as ``bxb`` does.

    Both sequences are walked in time order; the earlier of the current reference beat ``T`` and the
    current detection ``t`` is paired with the other when they are at most ``window_s`` apart (inclusive)
    and no closer partner comes next (``|T - t| < |T - t'|`` for the next detection ``t'``, and likewise
    for the next reference beat); otherwise the earlier one is unmatched. Each beat is used at most once.

    Args:
        reference: Reference beat times, sample indices at ``sampling_rate``, shape ``(beats,)``.
        detected: Detected beat times, sample indices at the same rate, shape ``(detections,)``.
        sampling_rate: Rate of both index sequences, Hz.
        window_s: Match window in seconds (150 ms in EC57).

    Returns:
        The :class:`BeatMatch` index arrays (true positives, false negatives, false positives).

    Example:
        >>> m = match_beats(np.array([100, 460, 820]), np.array([110, 500, 1000]), 360.0)
        >>> m.reference_matched.tolist(), m.reference_missed.tolist(), m.detected_extra.tolist()
        ([0, 1], [2], [2])
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    det = np.sort(np.asarray(detected, dtype=np.float64))
    ref_order = np.argsort(np.asarray(reference), kind="stable")
    det_order = np.argsort(np.asarray(detected), kind="stable")
    tol = window_s * sampling_rate * (1.0 + 1e-12)  # inclusive, robust to 0.15 * 360 = 54.000000000000007
    n_ref, n_det = ref.size, det.size
    big = math.inf
    pairs_ref: list[int] = []
    pairs_det: list[int] = []
    missed: list[int] = []
    extra: list[int] = []
    i = j = 0
    while i < n_ref or j < n_det:
        t_ref = ref[i] if i < n_ref else big
        t_det = det[j] if j < n_det else big
        if t_det < t_ref:
            next_det = det[j + 1] if j + 1 < n_det else big
            if t_ref - t_det <= tol and t_ref - t_det < abs(t_ref - next_det):
                pairs_ref.append(i)
                pairs_det.append(j)
                i += 1
            else:
                extra.append(j)
            j += 1
        else:
            next_ref = ref[i + 1] if i + 1 < n_ref else big
            if t_det - t_ref <= tol and t_det - t_ref < abs(t_det - next_ref):
                pairs_ref.append(i)
                pairs_det.append(j)
                j += 1
            else:
                missed.append(i)
            i += 1

    def original(order: np.ndarray, idx: list[int]) -> np.ndarray:
        return order[np.asarray(idx, dtype=np.int64)] if idx else np.zeros(0, dtype=np.int64)

    return BeatMatch(
        original(ref_order, pairs_ref),
        original(det_order, pairs_det),
        original(ref_order, missed),
        original(det_order, extra),
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """True positives, false negatives and false positives of one statistic."""

    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def se(self) -> float:
        """Sensitivity TP / (TP + FN), in [0, 1]; NaN without reference events."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def ppv(self) -> float:
        """Positive predictivity +P = TP / (TP + FP), in [0, 1]; NaN without detections."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp)

    def to_dict(self) -> dict[str, object]:
        """Counts with Se and +P in percent (None where undefined)."""
        return {**asdict(self), "se_pct": _pct(self.se), "ppv_pct": _pct(self.ppv)}


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Beat-detection (QRS) and ventricular-ectopic-beat (VEB) counts of one record's scored period.

    Attributes:
        record: Record name.
        qrs: QRS detection counts.
        veb: VEB classification counts, or None where not scored (paced records, EC57 section 5; or no
            classification requested).
    """

    record: str
    qrs: Counts
    veb: Counts | None = None


@dataclass(frozen=True, slots=True)
class Ec57Report:
    """Per-record and gross results of one detector over a set of records."""

    method: str
    leads: tuple[int, ...]
    sampling_rate: float
    records: tuple[RecordResult, ...]
    seconds: float = 0.0
    learning_period_s: float = LEARNING_PERIOD_S

    @property
    def gross(self) -> RecordResult:
        """Counts summed over all records (EC57 "gross" statistics); VEB over the records that have it."""
        vebs = [r.veb for r in self.records if r.veb is not None]
        return RecordResult(
            "gross", sum((r.qrs for r in self.records), Counts()), sum(vebs, Counts()) if vebs else None
        )

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form, with Se and +P in percent."""
        return {
            "method": self.method,
            "leads": list(self.leads),
            "sampling_rate": self.sampling_rate,
            "match_window_s": MATCH_WINDOW_S,
            "learning_period_s": self.learning_period_s,
            "seconds": round(self.seconds, 2),
            "records": [
                {"record": r.record, "qrs": r.qrs.to_dict(), "veb": None if r.veb is None else r.veb.to_dict()}
                for r in [*self.records, self.gross]
            ],
        }


def _pct(value: float) -> float | None:
    return None if math.isnan(value) else round(100.0 * value, 3)


@dataclass(frozen=True, slots=True)
class Reference:
    """A record's reference beats.

    Attributes:
        samples: Beat sample indices, shape ``(beats,)``.
        symbols: MIT-BIH beat codes, one per beat.
        vf_episodes: ``[(start, end)]`` sample ranges of reference-marked ventricular flutter/fibrillation.
        sampling_rate: Annotation rate, Hz.
    """

    samples: np.ndarray
    symbols: np.ndarray
    vf_episodes: tuple[tuple[int, int], ...]
    sampling_rate: float

    @property
    def paced(self) -> bool:
        """Whether the record has paced beats (excluded from VEB statistics by EC57)."""
        return bool(np.isin(self.symbols, sorted(PACED_SYMBOLS)).any())


def read_reference(path: Path) -> Reference:
    """Read a record's reference beats (``atr``) and its ventricular flutter/fibrillation episodes.

    Args:
        path: Record path without extension (``.../mitdb/101``).

    Returns:
        The :class:`Reference`; only :data:`BEAT_SYMBOLS` count as beats.
    """
    ann = wfdb.rdann(str(path), "atr")
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = np.asarray(ann.symbol)
    is_beat = np.isin(symbols, sorted(BEAT_SYMBOLS))
    episodes: list[tuple[int, int]] = []
    start: int | None = None
    for sample, symbol in zip(samples.tolist(), symbols.tolist(), strict=True):
        if symbol == VF_ON:
            start = sample
        elif symbol == VF_OFF and start is not None:
            episodes.append((start, sample))
            start = None
    if start is not None:  # VF running at the end of the record
        episodes.append((start, int(samples[-1]) + 1))
    return Reference(samples[is_beat], symbols[is_beat], tuple(episodes), float(ann.fs))


def score_record(
    record: str,
    reference: np.ndarray,
    detected: np.ndarray,
    sampling_rate: float,
    vf_episodes: Sequence[tuple[int, int]] = (),
    reference_symbols: np.ndarray | None = None,
    detected_ventricular: np.ndarray | None = None,
    learning_period_s: float = LEARNING_PERIOD_S,
    window_s: float = MATCH_WINDOW_S,
) -> RecordResult:
    """Count a record's QRS (and VEB) TP, FN and FP after its learning period, as ``bxb`` does.

    Beats are paired over the whole record (so a pair straddling the end of the learning period is not
    split); a pair or missed beat counts when its reference beat is at or after ``learning_period_s``, an
    extra detection when it is at or after it and outside every reference VF episode. With
    ``reference_symbols`` and ``detected_ventricular`` the VEB statistics follow ``bxb`` too:
    TP = reference V/E called ventricular; FN = reference V/E called otherwise or missed; FP = reference
    N or S (AAMI) beats and extra detections called ventricular (F and Q beats called ventricular are not
    errors).

    Args:
        record: Record name, for the report.
        reference: Reference beat sample indices at ``sampling_rate``.
        detected: Detected beat sample indices at the same rate.
        sampling_rate: Rate of both, Hz.
        vf_episodes: ``[(start, end)]`` sample ranges of reference-marked VF (inclusive).
        reference_symbols: MIT-BIH codes of the reference beats, for VEB statistics.
        detected_ventricular: Ventricular label of each detection, for VEB statistics.
        learning_period_s: Unscored start of the record, seconds.
        window_s: Match window, seconds.

    Returns:
        The record's :class:`RecordResult` (``veb`` None unless both label arrays are given).

    Example:
        >>> score_record("r", np.array([10, 400, 800]), np.array([405, 800, 900]), 360.0, learning_period_s=1.0)
        RecordResult(record='r', qrs=Counts(tp=2, fn=0, fp=1), veb=None)
    """
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    match = match_beats(ref, det, sampling_rate, window_s)
    start = learning_period_s * sampling_rate
    ref_scored = ref >= start
    det_scored = det >= start
    for lo, hi in vf_episodes:
        det_scored &= ~((det >= lo) & (det <= hi))
    pair_scored = ref_scored[match.reference_matched]
    qrs = _qrs_counts(match, ref_scored, det_scored)
    if reference_symbols is None or detected_ventricular is None:
        return RecordResult(record, qrs)
    ref_v = np.isin(np.asarray(reference_symbols), sorted(VENTRICULAR_SYMBOLS))
    ref_ns = np.isin(np.asarray(reference_symbols), sorted(NORMAL_SUPRA_SYMBOLS))
    det_v = np.asarray(detected_ventricular, dtype=bool)
    pair_ref_v = ref_v[match.reference_matched] & pair_scored
    pair_det_v = det_v[match.detected_matched]
    extra = match.detected_extra[det_scored[match.detected_extra]]
    veb = Counts(
        int(np.count_nonzero(pair_ref_v & pair_det_v)),
        int(np.count_nonzero(pair_ref_v & ~pair_det_v))
        + int(np.count_nonzero(ref_v[match.reference_missed] & ref_scored[match.reference_missed])),
        int(np.count_nonzero(ref_ns[match.reference_matched] & pair_scored & pair_det_v))
        + int(np.count_nonzero(det_v[extra])),
    )
    return RecordResult(record, qrs, veb)


def detect_record(
    path: Path, method: str = DEFAULT_METHOD, leads: Sequence[int] = (0,), classify: bool = False
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Run the detector on a WFDB record as the live pipeline does: resampled to ``PROCESSING_RATE_HZ``.

    Args:
        path: Record path without extension.
        method: Detector method of :func:`models.qrs.ecg_detect_r_peaks`.
        leads: Signal columns to use (the ``slope`` method combines them; NeuroKit methods use the first).
        classify: Also label each beat ventricular or not (:func:`models.qrs.ecg_classify_beats`).

    Returns:
        ``(peaks, ventricular, sampling_rate)``: detections as sample indices at the record's own rate,
        their ventricular labels (None unless ``classify``) and that rate.
    """
    rec = wfdb.rdrecord(str(path), channels=list(leads))
    peaks, ventricular = detect_signal(np.asarray(rec.p_signal, dtype=np.float64).T, float(rec.fs), method, classify)
    return peaks, ventricular, float(rec.fs)


def detect_signal(
    x: np.ndarray, sampling_rate: float, method: str = DEFAULT_METHOD, classify: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Beats of ``(leads, time)`` mV at ``sampling_rate``, resampled to ``PROCESSING_RATE_HZ`` as live.

    Returns:
        ``(peaks, ventricular)``: sample indices at ``sampling_rate`` and their ventricular labels (None
        unless ``classify``). A NaN sample is taken as 0.
    """
    x250 = ecg_resample(torch.from_numpy(np.nan_to_num(x).copy()), sampling_rate).numpy()
    peaks = ecg_detect_r_peaks(x250, PROCESSING_RATE_HZ, method=method)
    ventricular = ecg_classify_beats(x250, PROCESSING_RATE_HZ, peaks) if classify else None
    return np.rint(peaks * sampling_rate / PROCESSING_RATE_HZ).astype(np.int64), ventricular


def evaluate_record(
    path: Path, method: str = DEFAULT_METHOD, leads: Sequence[int] = (0,), classify: bool = True
) -> RecordResult:
    """Detect (and classify) beats on one record and score them against its ``atr`` reference.

    Args:
        path: Record path without extension (``.../mitdb/101``).
        method: Detector method of :func:`models.qrs.ecg_detect_r_peaks`.
        leads: Signal columns to detect on.
        classify: Also score ventricular-beat classification (skipped on paced records).

    Returns:
        The record's :class:`RecordResult` (first 5 minutes skipped, 150 ms window).

    Raises:
        Ec57Error: Annotations at another rate than the signal.
    """
    ref = read_reference(path)
    classify = classify and not ref.paced
    detected, ventricular, fs = detect_record(path, method, leads, classify)
    if ref.sampling_rate != fs:
        raise Ec57Error(f"{path}: annotation rate {ref.sampling_rate} Hz differs from signal rate {fs} Hz")
    symbols = ref.symbols if classify else None
    return score_record(path.name, ref.samples, detected, fs, ref.vf_episodes, symbols, ventricular)


def _evaluate_one(args: tuple[Path, str, tuple[int, ...], bool]) -> RecordResult:
    return evaluate_record(*args)


def record_paths(data_dir: Path) -> list[Path]:
    """The MIT-BIH records listed in ``<data_dir>/mitdb/RECORDS``.

    Raises:
        Ec57Error: ``data_dir`` has no ``mitdb/RECORDS``.
    """
    listing = Path(data_dir) / "mitdb" / "RECORDS"
    if not listing.is_file():
        raise Ec57Error(f"no MIT-BIH records: {listing} is missing (expected a shared/data-like folder)")
    return [listing.parent / name for name in listing.read_text().split()]


def evaluate_directory(
    data_dir: Path,
    method: str = DEFAULT_METHOD,
    leads: Sequence[int] = (0,),
    records: Sequence[str] | None = None,
    processes: int | None = None,
    classify: bool = True,
) -> Ec57Report:
    """Evaluate the detector on every record of ``<data_dir>/mitdb/RECORDS`` (or the named ``records``).

    Args:
        data_dir: A folder laid out like ``shared/data`` (with ``mitdb/RECORDS``).
        method: Detector method of :func:`models.qrs.ecg_detect_r_peaks`.
        leads: Signal columns to detect on.
        records: Record names to evaluate, default all in ``RECORDS``.
        processes: Worker processes; default the number of CPUs (records are independent, so two cores
            halve the wall time). 1 runs in this process.
        classify: Also score ventricular-beat classification.

    Returns:
        The :class:`Ec57Report`, records in ``RECORDS`` order.

    Raises:
        Ec57Error: No ``mitdb/RECORDS`` in ``data_dir``, or a named record not in it.
    """
    paths = record_paths(data_dir)
    if records is not None:
        by_name = {p.name: p for p in paths}
        unknown = sorted(set(records) - set(by_name))
        if unknown:
            raise Ec57Error(f"records {unknown} are not in {data_dir}/mitdb/RECORDS")
        paths = [by_name[r] for r in records]
    jobs = [(p, method, tuple(leads), classify) for p in paths]
    workers = min(len(jobs), processes or os.cpu_count() or 1)
    began = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_evaluate_one, jobs, chunksize=1)
    else:
        results = [_evaluate_one(job) for job in jobs]
    return Ec57Report(method, tuple(leads), PROCESSING_RATE_HZ, tuple(results), time.perf_counter() - began)


def inner_counts(reference: np.ndarray, detected: np.ndarray, sampling_rate: float, lo: float, hi: float) -> Counts:
    """QRS counts of the beats between samples ``lo`` and ``hi`` (inclusive), paired over the whole record.

    A pair or a missed beat counts when its reference beat lies inside, an extra detection when it does, so a
    beat just outside pairs with a detection just inside rather than making it a false positive.

    Example:
        >>> inner_counts(np.array([10, 100, 200, 290]), np.array([12, 150, 205, 296]), 100.0, 50, 250)
        Counts(tp=1, fn=1, fp=1)
    """
    match = match_beats(reference, detected, sampling_rate)
    return _qrs_counts(match, (reference >= lo) & (reference <= hi), (detected >= lo) & (detected <= hi))


def _qrs_counts(match: BeatMatch, ref_scored: np.ndarray, det_scored: np.ndarray) -> Counts:
    """TP, FN and FP of a match: pairs and missed beats whose reference beat is scored, extras that are."""
    return Counts(
        int(np.count_nonzero(ref_scored[match.reference_matched])),
        int(np.count_nonzero(ref_scored[match.reference_missed])),
        int(np.count_nonzero(det_scored[match.detected_extra])),
    )


def evaluate_cpsc2019(data_dir: Path, method: str = DEFAULT_METHOD) -> Ec57Report | None:
    """The detector on the CPSC 2019 sample of ``data_dir`` (module docstring); None without one.

    Each ``data/data_<id>.mat`` (variable ``ecg``, mV) is scored against ``ref/R_<id>.mat`` (``R_peak``): beats
    matched over the whole record, the reference beats and detections within :data:`CPSC2019_EDGE_S` of
    either end left out.
    """
    folder = Path(data_dir) / CPSC2019_FOLDER
    began = time.perf_counter()
    results = []
    for path in sorted((folder / "data").glob("data_*.mat")):
        name = path.stem.removeprefix("data_")
        ref_path = folder / "ref" / f"R_{name}.mat"
        if not ref_path.is_file():
            continue
        x = np.asarray(scipy.io.loadmat(path)["ecg"], dtype=np.float64).T
        reference = np.asarray(scipy.io.loadmat(ref_path)["R_peak"], dtype=np.int64).ravel()
        detected, _ = detect_signal(x, CPSC2019_RATE_HZ, method)
        edge = CPSC2019_EDGE_S * CPSC2019_RATE_HZ
        results.append(RecordResult(name, inner_counts(reference, detected, CPSC2019_RATE_HZ, edge, x.shape[1] - edge)))
    if not results:
        return None
    return Ec57Report(method, (0,), PROCESSING_RATE_HZ, tuple(results), time.perf_counter() - began, 0.0)


def format_table(report: Ec57Report) -> str:
    """Markdown table of a report: one row per record, then the gross row; "-" where VEB is not scored.

    Example:
        >>> rows = (RecordResult("100", Counts(99, 1, 0), Counts(9, 1, 1)),)
        >>> print(format_table(Ec57Report("slope", (0,), 250.0, rows)).splitlines()[2])
        | 100 | 99 | 1 | 0 | 99.00 | 100.00 | 9 | 1 | 1 | 90.00 | 90.00 |
    """

    def pct(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"

    def cells(c: Counts | None) -> str:
        return "- | - | - | - | -" if c is None else f"{c.tp} | {c.fn} | {c.fp} | {pct(c.se)} | {pct(c.ppv)}"

    lines = [
        "| record | TP | FN | FP | Se % | +P % | VEB TP | VEB FN | VEB FP | VEB Se % | VEB +P % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*report.records, report.gross]:
        lines.append(f"| {r.record} | {cells(r.qrs)} | {cells(r.veb)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: evaluate on ``--data``'s MIT-BIH records, print the markdown table, write JSON.

    Without ``--records``, also the CPSC 2019 sample where ``--data`` has one (its gross figures printed, its
    records in the JSON under ``cpsc2019``).

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        0 on success, 2 when the data folder has no MIT-BIH records (or lacks a named record).
    """
    parser = argparse.ArgumentParser(
        prog="ec57", description="EC57 beat-by-beat evaluation of the QRS detector on MIT-BIH records."
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("CARDIOWATCH_DATA", "../shared/data")),
        help="folder laid out like shared/data, with mitdb/RECORDS (default: $CARDIOWATCH_DATA or ../shared/data)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON to this file")
    parser.add_argument("--method", default=DEFAULT_METHOD, help=f"detector method (default {DEFAULT_METHOD})")
    parser.add_argument("--leads", default="0", help="comma-separated signal columns to use (default 0)")
    parser.add_argument("--records", nargs="*", default=None, help="record names (default: all in RECORDS)")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: CPU count)")
    parser.add_argument("--no-veb", action="store_true", help="skip ventricular-beat classification")
    args = parser.parse_args(argv)
    leads = tuple(int(v) for v in args.leads.split(","))
    try:
        report = evaluate_directory(
            args.data, args.method, leads, args.records, args.processes, classify=not args.no_veb
        )
    except Ec57Error as err:
        print(f"ec57: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    print(f"\n{len(report.records)} records, method {report.method}, leads {leads}, {report.seconds:.1f} s")
    out = report.to_dict()
    cpsc = evaluate_cpsc2019(args.data, args.method) if args.records is None else None
    if cpsc is not None:
        g = cpsc.gross.qrs
        print(f"\nCPSC 2019 sample ({len(cpsc.records)} records of 10 s, {CPSC2019_EDGE_S:g} s off each end):")
        print(f"gross TP {g.tp}, FN {g.fn}, FP {g.fp}: Se {100 * g.se:.2f} %, +P {100 * g.ppv:.2f} %")
        out["cpsc2019"] = cpsc.to_dict()
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
