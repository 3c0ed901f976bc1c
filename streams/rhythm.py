"""Life-threatening arrhythmia conditions of the PhysioNet/CinC Challenge 2015, as pure functions over beats.

The Challenge defines its alarm types in one table (Clifford et al. 2015, Table 1; Clifford et al. 2016):

===========================  ==========================================================
Asystole                     No QRS for at least 4 seconds
Extreme bradycardia          Heart rate lower than 40 bpm for 5 consecutive beats
Extreme tachycardia          Heart rate higher than 140 bpm for 17 consecutive beats
Ventricular tachycardia      5 or more ventricular beats with heart rate higher than 100 bpm
===========================  ==========================================================

Ventricular flutter/fibrillation ("fibrillatory or flutter waveform for at least 4 s" in the same table) is a
waveform condition, not a beat condition: :func:`detect_fibrillation` finds it on the ECG itself with the
VF filter of Kuo & Dillman (:func:`models.signal.vf_filter_leakage`).

Sources:
    G. D. Clifford, I. Silva, B. Moody, Q. Li, D. Kella, A. Shahin, T. Kooistra, D. Perry, R. G. Mark,
    "The PhysioNet/Computing in Cardiology Challenge 2015: Reducing false arrhythmia alarms in the ICU",
    Computing in Cardiology 42:273-276 (2015); and G. D. Clifford et al., "False alarm reduction in critical
    care", Physiological Measurement 37(8):E5-E23 (2016).

How this module reads the table (the choices the table leaves open):

* **Heart rate over n consecutive beats** is the mean rate of the run: ``60 * (n - 1) / (t_last - t_first)``
  bpm, i.e. over its ``n - 1`` RR intervals, the way Challenge entries computed it (e.g. Eerikäinen et al.
  2015, "minimum heart rate of 5 consecutive beats"). A run qualifies when that rate is beyond the threshold,
  strictly (``< 40``, ``> 140``, ``> 100``); exactly 40, 140 or 100 bpm does not qualify. So extreme
  bradycardia is any 5 consecutive beats spanning more than 6 s (4 RR intervals, mean RR > 1.5 s), extreme
  tachycardia any 17 consecutive beats spanning less than 16 x 60 / 140 = 6.857 s, and ventricular
  tachycardia any 5 consecutive ventricular beats (no other beat between them) spanning less than 2.4 s.
  Runs are tested in sliding windows of exactly that many beats; overlapping qualifying windows (sharing a
  beat) merge into one episode, whose onset is the first beat of its first qualifying window and whose end
  is the last beat of its last one.
* **Asystole** is a pause of at least 4 s: between two consecutive beats, or between the start of the span
  and the first beat, or the last beat and the end of the span (a pause open at either end of the span is
  measured only as far as the span reaches, so it is a lower bound; ``evidence`` says which ends bound it).
* **Missing signal is never asystole, and no run crosses it.** A pause is measured only over observed
  signal: the span minus the missing intervals is cut into observed stretches, and a pause runs from a beat,
  the span start or the end of a gap (``"signal_resumed"``) to the next beat, the span end or the start of a
  gap (``"signal_lost"``). A pause that touches a gap is therefore cut at the gap's edge: it is asystole only
  if its observed part alone lasts 4 s or more; the gap never counts towards it and a pause is never bridged
  across a gap, however short the gap. Likewise an RR interval that overlaps a gap (a beat may be lost in
  it) breaks every bradycardia, tachycardia or VT run that would contain it.
* **A detection within the refractory period after a beat is not a beat** (:data:`MIN_RR_S`, 200 ms): it
  is dropped before any condition is looked for, as Pan & Tompkins' detector drops it. Noise that the
  detector takes for extra beats otherwise makes a run of ordinary beats fast enough for tachycardia, and a
  run of (noise-labelled) ventricular beats fast enough for VT; dropped, it leaves the beats around it (a
  bradycardia or a tachycardia with one spike in it is still found), and a real run at up to 300 bpm keeps
  every beat.
* **Floating point.** Rates are compared after rounding to 0.001 bpm and pauses after rounding to 1 us, so
  beats placed exactly at a threshold (every 60/140 s, say, on an epoch-seconds time axis) land on the
  threshold rather than a rounding error either side of it.

The functions run on each analysis window of each patient (a 10-s window every 2 s for up to 1000 patients),
so they are vectorised with NumPy: cost is a handful of array operations per call, whatever the beat count.

Example:
    >>> import numpy as np
    >>> beats = np.array([0.5, 1.0, 1.5, 7.0])
    >>> [d.kind for d in detect_rhythms(beats, None, span=(0.0, 10.0))]
    ['asystole']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from models.qrs import REFRACTORY_S
from models.signal import VF_MAX_LEAKAGE, VF_RATE_BPM, VF_SEGMENT_S, VF_STEP_S, vf_filter_leakage

RhythmKind = Literal[
    "asystole", "extreme_bradycardia", "extreme_tachycardia", "ventricular_tachycardia", "ventricular_fibrillation"
]

#: Asystole: no QRS for at least this long (s).
ASYSTOLE_PAUSE_S: Final = 4.0
#: Extreme bradycardia: heart rate below this (bpm) over ``BRADYCARDIA_BEATS`` consecutive beats.
BRADYCARDIA_BPM: Final = 40.0
BRADYCARDIA_BEATS: Final = 5
#: Extreme tachycardia: heart rate above this (bpm) over ``TACHYCARDIA_BEATS`` consecutive beats.
TACHYCARDIA_BPM: Final = 140.0
TACHYCARDIA_BEATS: Final = 17
#: Ventricular tachycardia: at least ``VT_BEATS`` consecutive ventricular beats above ``VT_BPM`` (bpm).
VT_BPM: Final = 100.0
VT_BEATS: Final = 5
#: Shortest RR interval (s): no QRS can follow another within 200 ms (the refractory period, Pan & Tompkins
#: 1985, IEEE Trans. Biomed. Eng. 32:230-236), the detector's own (:data:`models.qrs.REFRACTORY_S`), so a
#: detection that close after a beat is noise or a second peak of the same complex, and is dropped
#: (:func:`refractory`).
MIN_RR_S: Final = REFRACTORY_S

_RATE_DECIMALS: Final = 3  # bpm compared to 0.001 bpm
_PAUSE_DECIMALS: Final = 6  # pauses compared to 1 us
_EVIDENCE_DECIMALS: Final = 3

# Labels of the points that bound a pause (see ``_pauses``).
_BEAT, _SPAN_START, _SPAN_END, _GAP_START, _GAP_END = 0, 1, 2, 3, 4
_OPENS: Final = {_BEAT: "beat", _SPAN_START: "span_start", _GAP_END: "signal_resumed"}
_CLOSES: Final = {_BEAT: "beat", _SPAN_END: "span_end", _GAP_START: "signal_lost"}


@dataclass(frozen=True)
class Detection:
    """One episode of an alarm condition found in a window of beats or of ECG.

    Attributes:
        kind: ``"asystole"``, ``"extreme_bradycardia"``, ``"extreme_tachycardia"``,
            ``"ventricular_tachycardia"`` or ``"ventricular_fibrillation"``.
        onset_s: Start, in seconds on the caller's time axis: the first beat of the first qualifying run, the
            start of the pause (the last beat before it, the span start, or the end of a gap), or the start of
            the first fibrillatory segment.
        end_s: End: the last beat of the last qualifying run, the end of the pause, or the end of the last
            fibrillatory segment.
        evidence: Plain JSON values that justify the detection (heart rate, beat count, pause length,
            criterion); see :func:`detect_rhythms`.
    """

    kind: RhythmKind
    onset_s: float
    end_s: float
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The detection as a dict of plain JSON values (``json.dumps`` takes it as is).

        Returns:
            ``{"kind": ..., "onset_s": ..., "end_s": ..., "evidence": {...}}``.
        """
        return {"kind": self.kind, "onset_s": self.onset_s, "end_s": self.end_s, "evidence": dict(self.evidence)}


def detect_rhythms(
    beats_s: NDArray[np.floating[Any]] | Sequence[float],
    ventricular: NDArray[np.bool_] | Sequence[bool] | None,
    span: tuple[float, float],
    missing: Sequence[tuple[float, float]] = (),
) -> list[Detection]:
    """Find asystole, extreme bradycardia, extreme tachycardia and ventricular tachycardia in a window of beats.

    Definitions after the PhysioNet/CinC Challenge 2015 (Clifford et al. 2015, 2016); how the table is read
    (mean rate over a run, strict thresholds, missing signal) is in the module docstring.

    Args:
        beats_s: Beat (QRS) times in seconds, shape ``(n,)``, strictly increasing. Beats outside ``span`` are
            ignored, and so is a detection within :data:`MIN_RR_S` after the beat before it (:func:`refractory`).
        ventricular: Per beat, shape ``(n,)``: True for a ventricular beat (AAMI class V: premature
            ventricular contraction or ventricular escape). None when beats cannot be classed: then no
            ventricular tachycardia is looked for.
        span: ``(start_s, end_s)`` of the analysed signal, on the same time axis as ``beats_s``.
        missing: Intervals ``(start_s, end_s)`` without signal (lead off, dropped chunks). They may overlap
            each other and reach outside the span.

    Returns:
        The detections, ordered by onset (then kind). Evidence by kind: asystole ``pause_s``, ``starts_at``
        (``"beat"``, ``"span_start"``, ``"signal_resumed"``), ``ends_at`` (``"beat"``, ``"span_end"``,
        ``"signal_lost"``); the rate conditions ``heart_rate_bpm`` (the most extreme rate of any qualifying run:
        the lowest for bradycardia, the highest otherwise), ``episode_rate_bpm`` (mean over the whole episode,
        which may be less extreme than the threshold when qualifying runs overlap slower beats), ``beats``
        (beats in the episode; for VT all ventricular), ``rr_min_s``, ``rr_max_s``, ``threshold_bpm``; every
        kind ``criterion``, the rule in words.

    Raises:
        ValueError: Beat times not finite or not strictly increasing, ``ventricular`` of another length,
            ``span`` empty or not finite, or a missing interval with its end before its start.

    Example:
        >>> rr = 60 / 150  # 150 bpm
        >>> beats = np.arange(20) * rr
        >>> d = detect_rhythms(beats, np.ones(20, bool), span=(0.0, 10.0))
        >>> [(x.kind, x.evidence["beats"]) for x in d]
        [('extreme_tachycardia', 20), ('ventricular_tachycardia', 20)]
    """
    start, end = float(span[0]), float(span[1])
    if not (np.isfinite(start) and np.isfinite(end) and start < end):
        raise ValueError(f"span {span!r} must be two finite times with start < end")
    beats = np.asarray(beats_s, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(beats)):
        raise ValueError("beat times must be finite")
    if np.any(np.diff(beats) <= 0):
        raise ValueError("beat times must be strictly increasing")
    vent: NDArray[np.bool_] | None = None
    if ventricular is not None:
        vent = np.asarray(ventricular, dtype=bool).reshape(-1)
        if vent.shape != beats.shape:
            raise ValueError(f"ventricular has {vent.size} flags for {beats.size} beats")
    inside = (beats >= start) & (beats <= end)
    if not inside.all():
        beats = beats[inside]
        vent = None if vent is None else vent[inside]
    keep = refractory(beats)
    if not keep.all():
        beats = beats[keep]
        vent = None if vent is None else vent[keep]
    gaps = _merge_gaps(missing, start, end)

    found = _asystole(beats, start, end, gaps)
    rr = np.diff(beats)
    rr_ok = ~_overlaps_gaps(beats[:-1], beats[1:], gaps)
    found += _rate_runs(beats, rr, rr_ok, "extreme_bradycardia", BRADYCARDIA_BEATS, BRADYCARDIA_BPM, above=False)
    found += _rate_runs(beats, rr, rr_ok, "extreme_tachycardia", TACHYCARDIA_BEATS, TACHYCARDIA_BPM, above=True)
    if vent is not None:
        # An interval belongs to a ventricular run only when both of its beats are ventricular.
        vt_ok = rr_ok & vent[:-1] & vent[1:]
        found += _rate_runs(beats, rr, vt_ok, "ventricular_tachycardia", VT_BEATS, VT_BPM, above=True)
    return sorted(found, key=lambda d: (d.onset_s, d.kind))


def refractory(beats_s: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Per detection (times increasing), False when it falls within :data:`MIN_RR_S` after the last beat kept."""
    keep = np.ones(len(beats_s), dtype=bool)
    if not (np.round(np.diff(beats_s), _PAUSE_DECIMALS) < MIN_RR_S).any():
        return keep
    last = float(beats_s[0])
    for i in range(1, len(beats_s)):  # only reached when two detections are that close (noise): a short loop
        if np.round(beats_s[i] - last, _PAUSE_DECIMALS) < MIN_RR_S:  # rounded as the check above
            keep[i] = False
        else:
            last = float(beats_s[i])
    return keep


def _merge_gaps(missing: Sequence[tuple[float, float]], start: float, end: float) -> NDArray[np.float64]:
    """Missing intervals clipped to the span, sorted and merged: shape ``(m, 2)``, disjoint, increasing."""
    gaps = np.asarray(missing, dtype=np.float64).reshape(-1, 2)
    if gaps.size == 0:
        return gaps
    if not np.all(np.isfinite(gaps)) or np.any(gaps[:, 1] < gaps[:, 0]):
        raise ValueError("missing intervals must be finite (start_s, end_s) pairs with start_s <= end_s")
    gaps = np.clip(gaps, start, end)
    gaps = gaps[gaps[:, 1] > gaps[:, 0]]
    if len(gaps) < 2:
        return gaps
    gaps = gaps[np.argsort(gaps[:, 0], kind="stable")]
    # A gap starts a new merged gap when it begins after every earlier gap has ended.
    reach = np.maximum.accumulate(gaps[:, 1])
    first = np.concatenate(([True], gaps[1:, 0] > reach[:-1]))
    group_end = np.maximum.reduceat(gaps[:, 1], np.flatnonzero(first))
    return np.column_stack((gaps[first, 0], group_end))


def _overlaps_gaps(lo: NDArray[np.float64], hi: NDArray[np.float64], gaps: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Per interval ``(lo, hi)``: whether it shares a stretch of positive length with a (merged) gap."""
    if len(gaps) == 0:
        return np.zeros(lo.shape, dtype=bool)
    # The first gap ending after lo is the only one that can overlap (lo, hi) without an earlier one doing so.
    idx = np.searchsorted(gaps[:, 1], lo, side="right")
    hit = idx < len(gaps)
    hit[hit] = gaps[idx[hit], 0] < hi[hit]
    return hit


def intervals_across_gaps(
    beats_s: NDArray[np.float64], missing: Sequence[tuple[float, float]], span: tuple[float, float]
) -> NDArray[np.bool_]:
    """Per RR interval of ``beats_s``, whether it overlaps missing signal (a beat may be lost in it)."""
    beats = np.asarray(beats_s, dtype=np.float64)
    return _overlaps_gaps(beats[:-1], beats[1:], _merge_gaps(missing, *span))


def _asystole(beats: NDArray[np.float64], start: float, end: float, gaps: NDArray[np.float64]) -> list[Detection]:
    """Pauses of at least ``ASYSTOLE_PAUSE_S`` over observed signal (never across or inside a gap)."""
    points = np.concatenate(([start, end], gaps[:, 0], gaps[:, 1], beats))
    labels = np.concatenate(
        (
            [_SPAN_START, _SPAN_END],
            np.full(len(gaps), _GAP_START),
            np.full(len(gaps), _GAP_END),
            np.full(len(beats), _BEAT),
        )
    )
    # At equal times a stretch of observed signal begins before a beat and ends after it, so a beat on a
    # boundary closes or opens the pause beside it (its evidence then says "beat").
    rank = np.select([labels == _BEAT, (labels == _SPAN_START) | (labels == _GAP_END)], [1, 0], 2)
    order = np.lexsort((rank, points))
    points, labels = points[order], labels[order]
    lo, hi = points[:-1], points[1:]
    pause = np.round(hi - lo, _PAUSE_DECIMALS)
    long = pause >= ASYSTOLE_PAUSE_S
    if long.any() and len(gaps):
        # Every gap edge is a point, so a stretch between consecutive points is wholly inside or outside a gap.
        long &= ~_overlaps_gaps(lo, hi, gaps)
    return [
        Detection(
            "asystole",
            float(lo[i]),
            float(hi[i]),
            {
                "pause_s": round(float(hi[i] - lo[i]), _EVIDENCE_DECIMALS),
                "starts_at": _OPENS[int(labels[i])],
                "ends_at": _CLOSES[int(labels[i + 1])],
                "criterion": f"no QRS for >= {ASYSTOLE_PAUSE_S:g} s",
            },
        )
        for i in np.flatnonzero(long)
    ]


def _rate_runs(
    beats: NDArray[np.float64],
    rr: NDArray[np.float64],
    rr_ok: NDArray[np.bool_],
    kind: RhythmKind,
    n_beats: int,
    threshold_bpm: float,
    *,
    above: bool,
) -> list[Detection]:
    """Episodes where the mean rate over ``n_beats`` consecutive beats is beyond ``threshold_bpm``.

    Args:
        beats: Beat times, shape ``(n,)``.
        rr: Their RR intervals, shape ``(n - 1,)``.
        rr_ok: Per RR interval, whether a run may contain it (no gap in it; for VT, both beats ventricular).
        kind: Detection kind to emit.
        n_beats: Beats per run (``n_beats - 1`` RR intervals).
        threshold_bpm: Rate threshold, bpm; the comparison is strict.
        above: True for rate > threshold, False for rate < threshold.
    """
    n_rr = n_beats - 1
    n_windows = len(beats) - n_rr
    if n_windows <= 0:
        return []
    span = beats[n_rr:] - beats[:n_windows]
    rate = np.round(60.0 * n_rr / span, _RATE_DECIMALS)
    bad = np.concatenate(([0], np.cumsum(~rr_ok)))
    clean = (bad[n_rr:] - bad[:n_windows]) == 0
    qualifies = clean & ((rate > threshold_bpm) if above else (rate < threshold_bpm))
    first = np.flatnonzero(qualifies)
    if first.size == 0:
        return []
    # Qualifying windows that share a beat (start indices at most n_rr apart) form one episode.
    breaks = np.flatnonzero(np.diff(first) > n_rr) + 1
    criterion = f"mean heart rate {'>' if above else '<'} {threshold_bpm:g} bpm over {n_beats} consecutive beats"
    if kind == "ventricular_tachycardia":
        criterion = f">= {n_beats} consecutive ventricular beats at mean heart rate > {threshold_bpm:g} bpm"
    out = []
    for group in np.split(first, breaks):
        i, j = int(group[0]), int(group[-1]) + n_rr  # first and last beat of the episode
        episode_rr = rr[i:j]
        extreme = rate[group].max() if above else rate[group].min()
        out.append(
            Detection(
                kind,
                float(beats[i]),
                float(beats[j]),
                {
                    "heart_rate_bpm": round(float(extreme), _EVIDENCE_DECIMALS),
                    "episode_rate_bpm": round(60.0 * (j - i) / float(beats[j] - beats[i]), _EVIDENCE_DECIMALS),
                    "beats": j - i + 1,
                    "rr_min_s": round(float(episode_rr.min()), _EVIDENCE_DECIMALS),
                    "rr_max_s": round(float(episode_rr.max()), _EVIDENCE_DECIMALS),
                    "threshold_bpm": threshold_bpm,
                    "criterion": criterion,
                },
            )
        )
    return out


def detect_fibrillation(
    ecg: NDArray[np.floating[Any]], sampling_rate: float, missing: NDArray[np.bool_]
) -> list[Detection]:
    """Ventricular flutter/fibrillation in one ECG lead: :func:`detect_fibrillation_batch` of one row."""
    return detect_fibrillation_batch(np.asarray(ecg)[None, :], sampling_rate, np.asarray(missing)[None, :])[0]


def detect_fibrillation_batch(
    ecg: NDArray[np.floating[Any]], sampling_rate: float, missing: NDArray[np.bool_]
) -> list[list[Detection]]:
    """Ventricular flutter/fibrillation in ECG leads: a fibrillatory or flutter waveform for at least 4 s.

    Each lead is cut into :data:`models.signal.VF_SEGMENT_S` segments every :data:`models.signal.VF_STEP_S`;
    a segment is fibrillatory when its VF-filter leakage (Kuo & Dillman 1978) is below
    :data:`models.signal.VF_MAX_LEAKAGE` and the wave rate it implies is within
    :data:`models.signal.VF_RATE_BPM`. Segments with a missing sample are not judged (a gap is never
    fibrillation). Fibrillatory segments that overlap form one episode, from the start of its first segment
    to the end of its last, so every episode lasts at least the segment length, the 4 s of the definition.
    A segment whose waves are mostly fibrillatory already counts, so an episode's onset can lead the
    waveform's by up to about half a segment (2 s). All segments of all leads are filtered in one pass.

    Args:
        ecg: Leads, band-passed, mV, shape ``(leads, time)`` (one lead per window, say).
        sampling_rate: Hz.
        missing: Per sample, True where it is missing, shape ``(leads, time)``.

    Returns:
        Per lead, its episodes, ordered by onset, times in seconds from the start of ``ecg``; evidence
        ``leakage`` (the lowest of the episode's segments), ``wave_rate_bpm`` (median over its fibrillatory
        segments), ``segments``, ``threshold``, ``criterion``.
    """
    seg, step = round(VF_SEGMENT_S * sampling_rate), round(VF_STEP_S * sampling_rate)
    out: list[list[Detection]] = [[] for _ in range(len(ecg))]
    if ecg.shape[1] < seg:
        return out
    segments = np.lib.stride_tricks.sliding_window_view(ecg, seg, axis=1)[:, ::step]  # (leads, k, seg)
    judged = ~np.lib.stride_tricks.sliding_window_view(missing, seg, axis=1)[:, ::step].any(axis=2)
    if not judged.any():
        return out
    leakage = np.ones(judged.shape)
    rate = np.zeros(judged.shape)
    leakage[judged], rate[judged] = vf_filter_leakage(segments[judged].astype(np.float64), sampling_rate)
    fibrillatory = judged & (leakage < VF_MAX_LEAKAGE) & (rate >= VF_RATE_BPM[0]) & (rate <= VF_RATE_BPM[1])
    criterion = (
        f"VF-filter leakage < {VF_MAX_LEAKAGE:g} at {VF_RATE_BPM[0]:g}-{VF_RATE_BPM[1]:g} waves/min "
        f"over {VF_SEGMENT_S:g} s"
    )
    for lead in np.flatnonzero(fibrillatory.any(axis=1)):
        found = np.flatnonzero(fibrillatory[lead])
        # segments overlap when their starts are less than a segment apart
        for group in np.split(found, np.flatnonzero(np.diff(found) * step >= seg) + 1):
            out[lead].append(
                Detection(
                    "ventricular_fibrillation",
                    float(group[0] * step / sampling_rate),
                    float((group[-1] * step + seg) / sampling_rate),
                    {
                        "leakage": round(float(leakage[lead, group].min()), _EVIDENCE_DECIMALS),
                        "wave_rate_bpm": round(float(np.median(rate[lead, group])), 1),
                        "segments": int(len(group)),
                        "threshold": VF_MAX_LEAKAGE,
                        "criterion": criterion,
                    },
                )
            )
    return out
