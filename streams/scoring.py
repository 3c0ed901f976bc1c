"""Scoring of aligned samples: batched ECG processing and the non-learned rule scorer.

A scorer takes :class:`streams.align.AlignedSample` objects, a batch at a time, and returns one
:class:`Scored` per sample. :class:`RuleScorer` is a documented, non-learned score (NEWS2 plus ECG rhythm
features); the learned model plugs in behind the same :class:`Scorer` interface.

ECG processing (:func:`ecg_features`) is batched across patients where it pays: windows of one sampling rate
are stacked and resampled to :data:`models.signal.PROCESSING_RATE_HZ` and filtered (band-pass and mains notch)
in one call, and every lead's R peaks and signal quality are found in one vectorised pass; beat classing, RR
features and the rhythm conditions then run per window on the lead with the best signal quality.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from models.qrs import (
    ecg_classify_beats,
    ecg_detect_r_peaks_batch,
    is_reference_rhythm,
    is_ventricular_reference,
    morphology_band,
    reference_beat,
    ventricular_against_reference,
)
from models.signal import (
    PROCESSING_RATE_HZ,
    ecg_filter,
    ecg_resample,
    ecg_signal_quality,
    pulse_rate,
    rr_features,
)
from streams.align import AlignedSample
from streams.news2 import News2Result, news2, news2_inputs_from_vitals
from streams.rhythm import (
    VT_BEATS,
    VT_BPM,
    Detection,
    detect_fibrillation_batch,
    detect_rhythms,
    intervals_across_gaps,
)
from streams.windows import EcgWindow

#: Longest spacing (s) of the present samples around an isolated gap for the gap to be filled and read as
#: signal: the monitoring band ends at 40 Hz (IEC 60601-2-27 monitoring mode; :func:`models.signal.ecg_filter`),
#: and a signal band-limited to 40 Hz is determined by samples 1 / (2 x 40 Hz) = 12.5 ms apart
#: (Nyquist-Shannon). Isolated: at least as long a stretch of present samples on either side. At 250 Hz that
#: is up to two lost samples in a row (none at 125 Hz, where one lost sample leaves 16 ms): filled by
#: :func:`_bridge_gaps`, they neither split a pause nor hide a beat. Any other gap stays missing.
BRIDGED_GAP_S = 1.0 / (2 * 40.0)

#: A window whose best lead has a signal-quality index below this gives no heart rate or RR features to the
#: score. Its rhythm detections are still reported (with the quality in their evidence): a flat line is what
#: both asystole and a lead-off look like, and the alert logic, not this gate, decides which it is.
MIN_QUALITY = 0.5


@dataclass(slots=True)
class EcgFeatures:
    """What one ECG window shows.

    Attributes:
        lead: Lead the beats were detected on (best quality), None without any ECG sample.
        usable: True when that lead's quality reaches :data:`MIN_QUALITY` (heart rate and RR features count).
        quality: Signal-quality index of that lead, 0-1 (0 without ECG).
        lead_quality: Quality per ECG lead.
        present_fraction: Fraction of the window's ECG samples received.
        beats_s: Beat times, seconds from the window start.
        ventricular: Per beat, True when classed ventricular.
        rr: RR features (:func:`models.signal.rr_features`), empty when too few beats.
        detections: Rhythm conditions (:func:`streams.rhythm.detect_rhythms`) and flutter/fibrillation
            (:func:`streams.rhythm.detect_fibrillation_batch`) found in the window.
        reference: The patient's reference beat per ECG lead learned from this window
            (:func:`models.qrs.reference_beat`), when it was asked to learn one and qualified; else None.
    """

    lead: str | None = None
    usable: bool = False
    quality: float = 0.0
    lead_quality: dict[str, float] = field(default_factory=dict)
    present_fraction: float = 0.0
    beats_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ventricular: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    rr: dict[str, Any] = field(default_factory=dict)
    detections: list[Detection] = field(default_factory=list)
    reference: dict[str, np.ndarray] | None = None


@dataclass(slots=True)
class Scored:
    """A scorer's answer for one sample.

    Attributes:
        risk: Cardiac risk in [0, 1].
        scores: Named sub-scores.
        signal_quality: Overall ECG quality in [0, 1].
        detections: Rhythm and technical conditions found, for the alert logic.
        beat_reference: A new reference beat per ECG lead for the patient (see :class:`EcgFeatures`), or None.
    """

    risk: float
    scores: dict[str, float]
    signal_quality: float
    detections: list[Detection]
    beat_reference: dict[str, np.ndarray] | None = None


#: Event seconds after which a patient's reference beat is learned anew (from the next window that qualifies,
#: :func:`ecg_features`): it follows slow changes of the patient's conducted beat (lead moved, axis shift)
#: without learning from every window.
REFERENCE_REFRESH_S = 30.0


class BeatReferences:
    """Each patient's reference beat per ECG lead, kept between windows by whoever scores a patient's stream.

    Before a sample is scored, :meth:`attach` gives it the patient's references and asks for a new one when
    they are older than ``refresh_s`` of event time; after, :meth:`learned` keeps what the scorer learned from
    it (:attr:`Scored.beat_reference`), lead by lead, and returns the patient's record to persist. ``load``
    reads that record back for a patient not in memory (the worker's changelogged table, so a restarted or
    rebalanced worker goes on with the references it had); without it they are learned again from the first
    window that qualifies.
    """

    def __init__(
        self, refresh_s: float = REFERENCE_REFRESH_S, load: Callable[[str], Mapping[str, Any] | None] | None = None
    ) -> None:
        """An empty store relearning after ``refresh_s`` event seconds, reading records back with ``load``."""
        self.refresh_us = int(refresh_s * 1_000_000)
        self._load = load
        self._by_patient: dict[str, tuple[int, dict[str, np.ndarray]]] = {}

    def attach(self, sample: AlignedSample) -> None:
        """Set ``sample.beat_reference`` and ``sample.learn_reference`` for the patient."""
        entry = self._by_patient.get(sample.patient_id)
        if entry is None and self._load is not None and (record := self._load(sample.patient_id)):
            leads = {name: np.asarray(beat, dtype=np.float32) for name, beat in record["leads"].items()}
            entry = self._by_patient[sample.patient_id] = (int(record["learned_at_us"]), leads)
        learned_at, sample.beat_reference = entry if entry is not None else (None, {})
        sample.learn_reference = learned_at is None or sample.end_us - learned_at >= self.refresh_us

    def learned(self, sample: AlignedSample, reference: dict[str, np.ndarray] | None) -> dict[str, Any] | None:
        """Keep the references learned from ``sample`` (None: none), beside the patient's other leads' ones.

        Returns the patient's record to persist (JSON: ``learned_at_us`` and ``leads``, name -> shape) when
        something was learned, else None.
        """
        if not reference:
            return None
        _, known = self._by_patient.get(sample.patient_id, (0, {}))
        leads = {**known, **reference}
        self._by_patient[sample.patient_id] = (sample.end_us, leads)
        return {
            "learned_at_us": sample.end_us,
            "leads": {name: [round(float(v), 6) for v in beat] for name, beat in leads.items()},
        }

    def forget(self, patient_id: str) -> None:
        """Drop a patient's references."""
        self._by_patient.pop(patient_id, None)

    def __len__(self) -> int:
        return len(self._by_patient)


class Scorer(Protocol):
    """What the worker needs of a scorer."""

    @property
    def name(self) -> str:
        """Scorer name, part of every score id."""
        ...

    @property
    def version(self) -> str:
        """Scorer version, part of every score id and carried by every score and alert."""
        ...

    def score_batch(self, samples: Sequence[AlignedSample]) -> list[Scored]:
        """Score a batch of aligned samples, one answer per sample, in order."""
        ...


def _missing_intervals(mask: np.ndarray, sampling_rate: float) -> list[tuple[float, float]]:
    """Runs of True in a boolean mask as ``(start_s, end_s)`` intervals."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(a / sampling_rate, b / sampling_rate) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def ecg_features(
    windows: Sequence[EcgWindow | None],
    mains_hz: float = 50.0,
    references: Sequence[Mapping[str, np.ndarray]] | None = None,
    learn: Sequence[bool] | None = None,
) -> list[EcgFeatures]:
    """ECG features of many windows, batched by sampling rate.

    Args:
        windows: Closed windows (None for a patient without waveform), channels of any kind; only ``ecg``
            channels are used.
        mains_hz: Mains frequency to notch out (0 for none).
        references: Per window, the patient's reference beat per lead name (:func:`models.qrs.reference_beat`)
            that beat classing judges a window against when its own dominant beat is ventricular; None: none.
        learn: Per window, whether to learn the patient's reference beat from it: done when its rhythm is
            regular at a sinus rate (:func:`models.qrs.is_reference_rhythm`) with no run fast enough for VT, on
            each lead that is complete and reaches :data:`MIN_QUALITY` (its best lead among them), and not
            for a lead whose new beat is ventricular against the known one; the result is
            :attr:`EcgFeatures.reference`.

    Returns:
        One :class:`EcgFeatures` per window, in order.
    """
    out = [EcgFeatures() for _ in windows]
    groups: dict[float, list[tuple[int, list[int]]]] = defaultdict(list)
    for i, w in enumerate(windows):
        if w is None:
            continue
        rows = [r for r, (_, kind) in enumerate(w.channels) if kind == "ecg"]
        if rows and w.samples.shape[1]:
            groups[w.sampling_rate].append((i, rows))
    for rate, members in groups.items():
        stacked = [windows[i].samples[rows] for i, rows in members]  # type: ignore[union-attr]
        n = max(s.shape[1] for s in stacked)
        flat = np.zeros((sum(len(r) for _, r in members), n), np.float32)
        missing = np.ones_like(flat, dtype=bool)
        k = 0
        for s in stacked:
            missing[k : k + len(s), : s.shape[1]] = np.isnan(s)
            flat[k : k + len(s), : s.shape[1]] = _bridge_gaps(s, missing[k : k + len(s), : s.shape[1]])
            k += len(s)
        x = torch.from_numpy(flat)[:, None, :]
        if rate != PROCESSING_RATE_HZ:
            x = ecg_resample(x, rate, PROCESSING_RATE_HZ)
        x = ecg_filter(x, PROCESSING_RATE_HZ, mains_hz=mains_hz or None)
        filtered = x[:, 0, :].numpy()
        lost, missing = missing, _unbridged(missing, rate)
        if rate != PROCESSING_RATE_HZ:
            lost, missing = (_mask_on_grid(m, rate, filtered.shape[1]) for m in (lost, missing))
        clean = np.where(missing, 0.0, filtered)
        peaks = ecg_detect_r_peaks_batch(clean, PROCESSING_RATE_HZ)
        quality = ecg_signal_quality(clean, PROCESSING_RATE_HZ, missing, peaks)
        firsts = np.cumsum([0] + [len(rows) for _, rows in members[:-1]])
        best = np.array(
            [
                first + np.argmax(quality[first : first + len(rows)])
                for first, (_, rows) in zip(firsts, members, strict=True)
            ]
        )
        fibrillation = detect_fibrillation_batch(clean[best], PROCESSING_RATE_HZ, missing[best])
        beats = [peaks[lead][~missing[lead, peaks[lead]]] for lead in best]  # the best lead's, none from a gap
        # Beats are classed only in windows with a run fast enough for VT (see _window_features), and reference
        # beats learned only from regular windows asked to: the shape band of those leads is filtered in one call.
        fast = {k for k, b in enumerate(beats) if _fast_run(b / PROCESSING_RATE_HZ)}
        known = [references[i] if references is not None else {} for i, _ in members]
        usable: list[list[tuple[int, str]]] = []  # per window: row and name of each lead complete and usable
        for (i, rows), first in zip(members, firsts, strict=True):
            w = windows[i]
            assert w is not None
            usable.append(
                [
                    (first + j, w.channels[r][0])
                    for j, r in enumerate(rows)
                    if quality[first + j] >= MIN_QUALITY and not lost[first + j].any()
                ]
            )
        # A fast window's other usable leads with a reference beat are classed against it too.
        others = {
            k: [(row, known[k][name]) for row, name in usable[k] if row != best[k] and name in known[k]] for k in fast
        }
        # Reference beats are learned, when asked, from a regular window at a sinus rate (never one with a fast
        # run), on each usable lead, when its best lead is usable.
        learning = {
            k
            for k, (i, _) in enumerate(members)
            if learn is not None
            and learn[i]
            and k not in fast
            and any(row == best[k] for row, _ in usable[k])
            and is_reference_rhythm(beats[k] / PROCESSING_RATE_HZ)
        }
        band_rows = sorted(
            {int(best[k]) for k in fast}
            | {row for k in fast for row, _ in others[k]}
            | {row for k in learning for row, _ in usable[k]}
        )
        bands = dict(
            zip(band_rows, morphology_band(clean[band_rows], PROCESSING_RATE_HZ) if band_rows else [], strict=True)
        )
        for k, ((i, rows), first, lead, vf) in enumerate(zip(members, firsts, best, fibrillation, strict=True)):
            w = windows[i]
            assert w is not None
            part = slice(first, first + len(rows))
            out[i] = _window_features(
                w,
                rows,
                clean[lead],
                missing[lead],
                beats[k],
                quality[part],
                int(lead - first),
                vf,
                bands.get(int(lead)) if k in fast else None,
                known[k].get(w.channels[rows[lead - first]][0]),
                [(clean[row], bands[row], ref) for row, ref in others.get(k, [])],
            )
            out[i].present_fraction = float(1.0 - lost[part].mean())
            if k in learning:
                out[i].reference = _learn_references(clean, beats[k], bands, usable[k], known[k]) or None
    return out


def _learn_references(
    clean: np.ndarray,
    beats: np.ndarray,
    bands: Mapping[int, np.ndarray],
    leads: Sequence[tuple[int, str]],
    known: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """A window's new reference beat per lead (``leads``: row and name), except where it is ventricular.

    A lead's new beat that is unlike and wider than the one already known for it
    (:func:`models.qrs.is_ventricular_reference`) is not learned: it is not the conducted beat.
    """
    learned = {}
    for row, name in leads:
        beat = reference_beat(clean[row], PROCESSING_RATE_HZ, beats, bands[row]).astype(np.float32)
        if name not in known or not is_ventricular_reference(beat, known[name], PROCESSING_RATE_HZ):
            learned[name] = beat
    return learned


def _bridge_gaps(samples: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Missing samples filled by a straight line between the present samples around them (held at the ends).

    Only for filtering: a gap filled with zeros would be a step wherever the ECG's baseline is not at zero,
    and the filters would ring into false beats beside it. The samples stay marked missing, and no beat or
    pause is taken from a gap, except from one short enough to read as signal (:func:`_unbridged`).
    """
    out = np.nan_to_num(samples, nan=0.0)
    for row in np.flatnonzero(missing.any(axis=1) & ~missing.all(axis=1)):
        present = np.flatnonzero(~missing[row])
        out[row, missing[row]] = np.interp(np.flatnonzero(missing[row]), present, samples[row, present])
    return out


def _unbridged(missing: np.ndarray, sampling_rate: float) -> np.ndarray:
    """The missing-sample mask (at the input rate) without the isolated gaps short enough to read as signal.

    A gap is bridged when the present samples on its two sides lie at most :data:`BRIDGED_GAP_S` apart and
    each side has at least that long a stretch of present samples; a gap at either end of the window has no
    sample on one side and stays missing.
    """
    longest = int(BRIDGED_GAP_S * sampling_rate + 1e-9) - 1  # missing samples in a row that may be bridged
    side = math.ceil(BRIDGED_GAP_S * sampling_rate)  # present samples needed on each side
    if longest < 1 or not missing.any():
        return missing
    out = missing.copy()
    n = missing.shape[1]
    for row in np.flatnonzero(missing.any(axis=1)):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], missing[row].astype(np.int8), [0]))))
        starts, ends = edges[::2], edges[1::2]
        before = starts - np.concatenate(([0], ends[:-1]))  # present samples since the previous gap
        after = np.concatenate((starts[1:], [n])) - ends
        for a, b, p, q in zip(starts, ends, before, after, strict=True):
            if a > 0 and b < n and b - a <= longest and p >= side and q >= side:
                out[row, a:b] = False
    return out


def _mask_on_grid(missing: np.ndarray, rate: float, n_out: int) -> np.ndarray:
    """The missing-sample mask on the processing grid.

    A processing sample is missing when any original sample in its span is (not only the nearest one).
    """
    n = missing.shape[1]
    edges = np.arange(n_out + 1) * rate / PROCESSING_RATE_HZ  # each processing sample's span in original samples
    lo = np.minimum(edges[:-1].astype(np.int64), n - 1)
    hi = np.maximum(np.minimum(np.ceil(edges[1:]).astype(np.int64), n), lo + 1)
    counts = np.concatenate([np.zeros((len(missing), 1), np.int64), np.cumsum(missing, axis=1)], axis=1)
    return (counts[:, hi] - counts[:, lo]) > 0


def _window_features(
    w: EcgWindow,
    rows: list[int],
    lead_clean: np.ndarray,
    lead_missing: np.ndarray,
    beats: np.ndarray,
    quality: np.ndarray,
    best: int,
    fibrillation: list[Detection],
    band: np.ndarray | None,
    reference: np.ndarray | None = None,
    others: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
) -> EcgFeatures:
    """Features of one window from its best lead (``rows[best]``, of the highest quality) on the processing grid.

    Beats were detected once per lead, for the whole batch at once (missing samples as zeros; ``beats`` are
    the best lead's outside any gap), and the quality index (``quality``, per lead) reused them; those beats
    give the RR features and rhythm conditions, and the lead's flutter/fibrillation episodes
    (``fibrillation``, found for the whole batch at once) join them. Beats are classed (ventricular or not)
    only when the window holds a run fast enough for ventricular tachycardia (:func:`_fast_run`; the caller
    then passes the lead's :func:`models.qrs.morphology_band` as ``band``, else None): the class matters for
    no other condition, and classing is the costliest step. ``reference`` is the patient's reference beat in
    that lead, if known (:func:`models.qrs.ecg_classify_beats`); ``others`` are the window's other usable leads
    with a reference beat, ``(signal, band, reference)`` each, whose beats ventricular against it count too
    (:func:`models.qrs.ventricular_against_reference`).
    """
    fs = float(PROCESSING_RATE_HZ)
    names = [w.channels[r][0] for r in rows]
    feats = EcgFeatures(
        lead=names[best],
        quality=float(quality[best]),
        lead_quality={n: round(float(q), 3) for n, q in zip(names, quality, strict=True)},
    )
    feats.usable = feats.quality >= MIN_QUALITY
    if lead_missing.all():
        feats.lead = None
        return feats
    beats_s = beats / fs
    ventricular = np.zeros(len(beats), bool)
    if band is not None:
        ventricular = ecg_classify_beats(lead_clean, fs, beats, band, reference)
        ventricular = np.logical_or.reduce(
            [ventricular] + [ventricular_against_reference(x, fs, beats, ref, ventricular, b) for x, b, ref in others]
        )
    feats.beats_s, feats.ventricular = beats_s, ventricular
    span = (0.0, len(lead_clean) / fs)
    gaps = _missing_intervals(lead_missing, fs)
    feats.rr = rr_features(beats_s, intervals_across_gaps(beats_s, gaps, span) if gaps else None)
    feats.detections = detect_rhythms(beats_s, ventricular, span, gaps)
    if fibrillation:
        feats.detections = sorted(feats.detections + fibrillation, key=lambda d: (d.onset_s, d.kind))
    for d in feats.detections:
        d.evidence.update(lead=feats.lead, signal_quality=round(feats.quality, 3))
    return feats


def _fast_run(beats_s: np.ndarray) -> bool:
    """True when some :data:`streams.rhythm.VT_BEATS` consecutive beats exceed :data:`streams.rhythm.VT_BPM`."""
    n = VT_BEATS
    if len(beats_s) < n:
        return False
    spans = beats_s[n - 1 :] - beats_s[: len(beats_s) - n + 1]
    return bool((spans < 60.0 * (n - 1) / VT_BPM).any())


#: Pulsatile channel kinds read for a pulse rate, in order of preference: arterial pressure, then pleth.
PULSE_KINDS = ("abp", "pleth")


def window_pulse_rate(w: EcgWindow | None) -> float | None:
    """Pulse rate (/min) of the window's first arterial-pressure or pleth channel showing a clean pulse.

    None without such a channel or without a clean pulse on any (:func:`models.signal.pulse_rate`).
    """
    if w is None:
        return None
    for kind in PULSE_KINDS:
        for row, (_, k) in enumerate(w.channels):
            if k == kind:
                rate = pulse_rate(w.samples[row], w.sampling_rate)
                if rate is not None:
                    return rate
    return None


#: Points a rhythm condition adds to the rule score, on the NEWS2 scale (3 = the weight NEWS2 gives a single
#: extreme parameter, RCP 2017). Asystole, VF, VT and the extreme rates are the PhysioNet/CinC 2015 life-threatening
#: alarm conditions (Clifford et al. 2015), hence the maximum single-parameter weight.
RHYTHM_POINTS = {
    "asystole": 3,
    "ventricular_fibrillation": 3,
    "ventricular_tachycardia": 3,
    "extreme_bradycardia": 3,
    "extreme_tachycardia": 3,
}

#: Conditions whose points count whatever the ECG quality: a flat line (asystole) and a fibrillatory waveform
#: (VF) are what a quality index calls unreadable, and their alarms are never held back by poor quality either
#: (:mod:`alerts.policy`, after REFERENCES.md: "suppression that never loses a true asystole/VF is the bar").
UNGATED_RHYTHMS = frozenset({"asystole", "ventricular_fibrillation"})

#: RR irregularity above which one point is added (an irregular rhythm such as atrial fibrillation); the index
#: and its threshold are those of :func:`models.signal.rr_features` (documented there).
IRREGULAR_POINTS = 1

#: Largest possible rule score: NEWS2's maximum (20) plus one rhythm condition and irregularity.
MAX_RULE_SCORE = 20 + 3 + IRREGULAR_POINTS


class RuleScorer:
    """Non-learned score: NEWS2 from the aligned vitals plus points for ECG rhythm findings.

    * NEWS2 (Royal College of Physicians 2017) from the vitals as of the window end; when the monitor sends no
      pulse, the heart rate measured on the ECG (quality ≥ :data:`MIN_QUALITY`) stands in for it.
    * Plus :data:`RHYTHM_POINTS` for the worst rhythm condition in the window, and :data:`IRREGULAR_POINTS`
      when the RR intervals are irregular (:func:`models.signal.rr_features`, ``irregular``), both only when
      the ECG quality reaches :data:`MIN_QUALITY` (the detections themselves are always reported) -- except
      asystole and VF (:data:`UNGATED_RHYTHMS`), whose points count at any quality.
    * ``pulse_rate_bpm``: the pulse rate of an arterial-pressure or pleth channel when the monitor sends one
      with a clean pulse (:func:`window_pulse_rate`), which the alert logic uses to confirm or suppress
      rhythm alarms.
    * ``risk`` is that total over :data:`MAX_RULE_SCORE`: an ordered severity in [0, 1], **not** a calibrated
      probability (the learned model provides one).
    """

    name = "rules"
    version = "1.3.0"

    def __init__(self, mains_hz: float = 50.0) -> None:
        """Make the scorer; ``mains_hz`` is the mains frequency notched out of the ECG."""
        self.mains_hz = mains_hz

    def score_batch(self, samples: Sequence[AlignedSample]) -> list[Scored]:
        """Score a batch; ECG processing is batched across the samples."""
        feats = ecg_features(
            [s.ecg for s in samples],
            self.mains_hz,
            [s.beat_reference for s in samples],
            [s.learn_reference for s in samples],
        )
        return [self._score(s, f) for s, f in zip(samples, feats, strict=True)]

    def _score(self, sample: AlignedSample, feats: EcgFeatures) -> Scored:
        latest = {name: v.value for name, v in sample.vitals.items()}
        hr = feats.rr.get("heart_rate_bpm") if feats.usable else None
        if hr is not None and "heart_rate" not in latest and "pulse_rate_oximetry" not in latest:
            latest["heart_rate"] = hr
        result: News2Result = news2(news2_inputs_from_vitals(latest))
        rhythm = max(
            (RHYTHM_POINTS.get(d.kind, 0) for d in feats.detections if feats.usable or d.kind in UNGATED_RHYTHMS),
            default=0,
        )
        irregular = IRREGULAR_POINTS if feats.usable and feats.rr.get("irregular") else 0
        total = result.total + rhythm + irregular
        scores: dict[str, float] = {
            "news2": float(result.total),
            "news2_parameters": float(len(result.subscores)),
            "news2_single_parameter_3": float(result.single_parameter_3),
            "rhythm_points": float(rhythm),
            "rule_score": float(total),
            "ecg_present_fraction": round(feats.present_fraction, 4),
        }
        for key in ("heart_rate_bpm", "rr_irregularity", "sdnn_ms", "rmssd_ms"):
            value = feats.rr.get(key)
            if value is not None and feats.usable:
                scores[key] = round(float(value), 3)
        pulse = window_pulse_rate(sample.ecg)
        if pulse is not None:
            scores["pulse_rate_bpm"] = round(pulse, 1)
        if feats.usable:
            scores["beats"] = float(len(feats.beats_s))
            scores["ventricular_beats"] = float(np.count_nonzero(feats.ventricular))
        return Scored(
            risk=round(min(total / MAX_RULE_SCORE, 1.0), 4),
            scores=scores,
            signal_quality=round(feats.quality, 4),
            detections=feats.detections,
            beat_reference=feats.reference,
        )
