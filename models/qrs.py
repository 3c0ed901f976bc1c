"""R-peak (QRS) detection and a rule-based ventricular-beat classifier.

The default detector, ``method="slope"``, is *window-local*: every decision about a sample depends only on
the signal within :data:`LOCALITY_S` seconds of it, so running it on a stream's sliding windows finds the
same beats as running it on the whole record, at the same samples, for every beat more than
:data:`EDGE_S` from a window edge (see :func:`ecg_detect_r_peaks_windowed`). It has no running threshold
that remembers the record's start. The steps, all vectorised NumPy/SciPy:

1. QRS band: a zero-phase Butterworth band-pass, 5-25 Hz (second order, run forward and backward), which
   keeps most QRS energy and little of the slower P and T waves and baseline wander (Pan & Tompkins 1985
   use 5-15 Hz; Thakor, Webster & Tompkins 1984 found the QRS power spectrum peaking near 10 Hz).
2. Slope envelope: ``|d/dt|`` of the band, averaged over 100 ms (a QRS-length moving window, as the
   "smoothed gradient" of NeuroKit2's ``neurokit`` method, Makowski et al. 2021); with several leads the
   envelopes are summed.
3. Candidates: local maxima of the envelope at least :data:`REFRACTORY_S` apart, the larger one kept
   (200 ms, the refractory period Pan & Tompkins also use).
4. Neighbourhood thresholds instead of a running threshold: a candidate is a beat when its envelope is
   at least :data:`CONTEXT_RATIO` (30 %) of the largest envelope within +-:data:`CONTEXT_S` (0.6 s; Pan &
   Tompkins put their threshold a quarter of the way from noise to signal peak), and at least
   :data:`NEIGHBOUR_RATIO` (62.5 %) of the largest within :data:`NEIGHBOUR_BEFORE_S` (360 ms) before it and
   :data:`NEIGHBOUR_AFTER_S` (300 ms) after it: the T wave of the beat before, or the P wave of the beat
   after, has a smaller slope than a QRS (Pan & Tompkins' T-wave rule: slope under half the preceding QRS's
   within 360 ms).
5. Amplitude floor (IEC 60601-2-27, "never count a deflection below 0.15 mV as QRS"): the peak-to-peak
   amplitude of the raw ECG within +-60 ms, after removing a straight-line baseline, must reach
   :data:`MIN_QRS_AMPLITUDE_MV` on at least one lead.
6. Fiducial point: the sample of largest absolute QRS-band amplitude (summed over leads) within +-75 ms
   of the envelope peak.

The ratios and windows were chosen once, on the 26 development MIT-BIH records (DS1 + paced), by
EC57 beat-by-beat comparison, and are the same for every record; ``python -m models.ec57`` reproduces the
numbers. The NeuroKit2 detectors (``method="neurokit"``, ``"pantompkins1985"``, ...) are available for
comparison; they are *not* window-local (adaptive thresholds from the record start, or record-wide means).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
from scipy import ndimage, signal

#: Default detection method of :func:`ecg_detect_r_peaks`.
DEFAULT_METHOD: Final = "slope"
#: NeuroKit2 detectors accepted as ``method`` (cleaned with ``nk.ecg_clean`` of the same name where it
#: has one, else NeuroKit's default cleaning), for comparison. ``emrich2023`` needs ``ts2vg``, not installed.
NEUROKIT_METHODS: Final = frozenset(
    {
        "neurokit",
        "pantompkins1985",
        "hamilton2002",
        "elgendi2010",
        "engzeemod2012",
        "kalidas2017",
        "nabian2018",
        "rodrigues2021",
        "christov2004",
        "zong2003",
        "manikandan2012",
        "khamis2016",
        "emrich2023",
    }
)
#: QRS pass band (Hz) of the detection feature.
QRS_BAND_HZ: Final = (5.0, 25.0)
#: Width (s) of the moving average that turns the absolute slope into an envelope.
SLOPE_SMOOTH_S: Final = 0.10
#: Minimum spacing (s) of two beats.
REFRACTORY_S: Final = 0.20
#: Half-width (s) of the context whose largest envelope sets the coarse threshold.
CONTEXT_S: Final = 0.6
#: Fraction of the context's largest envelope a beat must reach.
CONTEXT_RATIO: Final = 0.3
#: Reach (s) before and after a candidate of the T-/P-wave rule.
NEIGHBOUR_BEFORE_S: Final = 0.36
NEIGHBOUR_AFTER_S: Final = 0.30
#: Fraction of the largest envelope within that reach a beat must reach.
NEIGHBOUR_RATIO: Final = 0.625
#: Smallest peak-to-peak QRS amplitude (mV) counted as a beat (IEC 60601-2-27).
MIN_QRS_AMPLITUDE_MV: Final = 0.15
#: Half-width (s) of the segment whose peak-to-peak amplitude is compared with the floor.
AMPLITUDE_HALF_WINDOW_S: Final = 0.06
#: Half-width (s) of the search for the fiducial point around the envelope peak.
LOCATE_HALF_WINDOW_S: Final = 0.075
#: How far (s) a decision of the ``slope`` method can see: context, smoothing and location windows.
LOCALITY_S: Final = CONTEXT_S + SLOPE_SMOOTH_S / 2 + LOCATE_HALF_WINDOW_S
#: Margin (s) from a window's edges beyond which windowed detection equals whole-record detection
#: (:data:`LOCALITY_S` plus 0.2 s for the band-pass filter's edge transient to die out).
EDGE_S: Final = 1.0
#: Lowest sampling rate the ``slope`` method accepts (its band reaches 25 Hz).
MIN_SAMPLING_RATE_HZ: Final = 100.0


@functools.lru_cache(maxsize=32)
def _band_design(band_hz: tuple[float, float], sampling_rate: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Second-order Butterworth band-pass sections, their steady-state initial conditions and pad length."""
    sos = signal.butter(2, band_hz, btype="bandpass", fs=sampling_rate, output="sos")
    zi = signal.sosfilt_zi(sos)  # (sections, 2)
    pad = 3 * (2 * sos.shape[0] + 1)  # scipy.signal.sosfiltfilt's default pad length
    return sos, zi, pad


def _bandpass(leads: np.ndarray, band_hz: tuple[float, float], sampling_rate: float) -> np.ndarray:
    """Zero-phase band-pass of ``(leads, time)``: ``scipy.signal.sosfiltfilt`` with its set-up cached.

    Same result as ``sosfiltfilt(butter(2, band_hz, "bandpass", fs=sampling_rate, output="sos"), leads)``
    (odd extension, steady-state initial conditions), without redesigning the filter on every window.
    """
    sos, zi, pad = _band_design(band_hz, sampling_rate)
    pad = min(pad, leads.shape[-1] - 1)
    ext = np.concatenate(
        [2.0 * leads[:, :1] - leads[:, pad:0:-1], leads, 2.0 * leads[:, -1:] - leads[:, -2 : -pad - 2 : -1]], axis=1
    )
    fwd, _ = signal.sosfilt(sos, ext, axis=-1, zi=zi[:, None, :] * ext[None, :, :1])
    back, _ = signal.sosfilt(sos, fwd[:, ::-1], axis=-1, zi=zi[:, None, :] * fwd[None, :, -1:])
    return back[:, ::-1][:, pad : ext.shape[-1] - pad]


def _as_leads(x: np.ndarray) -> np.ndarray:
    leads = np.asarray(x, dtype=np.float64)
    if leads.ndim == 1:
        leads = leads[None, :]
    if leads.ndim != 2:
        raise ValueError(f"ECG must be (time,) or (leads, time), got shape {leads.shape}")
    if not np.all(np.isfinite(leads)):
        raise ValueError("ECG contains NaN or infinite samples; pass missing samples as zeros")
    return leads


def _half(seconds: float, sampling_rate: float) -> int:
    return max(1, int(round(seconds * sampling_rate)))


def _window_max(values: np.ndarray, before: int, after: int) -> np.ndarray:
    """Largest of ``values[..., i - before : i + after + 1]`` for every ``i`` (clipped to the ends), per row."""
    size = before + after + 1
    # maximum_filter1d covers [i - size // 2 - origin, i - size // 2 - origin + size - 1]: origin moves it.
    return ndimage.maximum_filter1d(values, size, axis=-1, mode="nearest", origin=before - size // 2)


def _qrs_amplitude(leads: np.ndarray, lead_rows: np.ndarray, peaks: np.ndarray, half: int) -> np.ndarray:
    """Per peak, the largest over its leads of the peak-to-peak amplitude (mV) within +-half samples.

    A straight line through the segment is removed first. ``lead_rows`` holds each peak's rows of ``leads``
    (``(peaks, k)``, -1 for none).
    """
    offsets = np.arange(-half, half + 1)
    idx = np.clip(peaks[:, None] + offsets[None, :], 0, leads.shape[-1] - 1)
    seg = leads[lead_rows.clip(0)[:, :, None], idx[:, None, :]]  # (peaks, k, 2 * half + 1)
    t = offsets.astype(np.float64)
    slope = (seg * t).sum(axis=-1, keepdims=True) / (t * t).sum()
    residual = seg - slope * t
    return np.where(lead_rows >= 0, residual.max(axis=-1) - residual.min(axis=-1), -np.inf).max(axis=-1)


def _detect_slope(
    leads: np.ndarray, sampling_rate: float, min_amplitude_mv: float, groups: list[list[int]] | None = None
) -> list[np.ndarray]:
    """The ``slope`` method on each group of rows of ``leads`` (all rows one group by default).

    A group is one patient's leads: their envelopes are summed and a beat needs the amplitude floor on one of
    them. The filtering and the envelopes' running maxima run on every row at once, so many windows cost
    little more than one; only finding the envelope's local maxima is per group, the tests of the candidates
    run on all of them at once.
    """
    n = leads.shape[-1]
    groups = [list(range(leads.shape[0]))] if groups is None else groups
    if not groups:
        return []
    if n < 2 * _half(SLOPE_SMOOTH_S, sampling_rate) + 16:  # too short for a QRS and the filter's padding
        return [np.zeros(0, dtype=np.int64) for _ in groups]
    band = _bandpass(leads, QRS_BAND_HZ, sampling_rate)
    per_row = ndimage.uniform_filter1d(
        np.abs(np.gradient(band, axis=-1)), _half(SLOPE_SMOOTH_S, sampling_rate), axis=-1, mode="nearest"
    )
    envelopes = np.stack([per_row[rows].sum(axis=0) for rows in groups])
    context = _half(CONTEXT_S, sampling_rate)
    before, after = _half(NEIGHBOUR_BEFORE_S, sampling_rate), _half(NEIGHBOUR_AFTER_S, sampling_rate)
    context_max = _window_max(envelopes, context, context)
    neighbour_max = _window_max(envelopes, before, after)
    distance = _half(REFRACTORY_S, sampling_rate)
    amplitude_half = _half(AMPLITUDE_HALF_WINDOW_S, sampling_rate)
    locate = np.arange(-_half(LOCATE_HALF_WINDOW_S, sampling_rate), _half(LOCATE_HALF_WINDOW_S, sampling_rate) + 1)
    found = [signal.find_peaks(envelope, distance=distance)[0] for envelope in envelopes]
    group = np.repeat(np.arange(len(groups)), [len(c) for c in found])
    cand = np.concatenate(found)
    level = envelopes[group, cand]
    keep = (level >= CONTEXT_RATIO * context_max[group, cand]) & (level >= NEIGHBOUR_RATIO * neighbour_max[group, cand])
    group, cand = group[keep & (level > 0.0)], cand[keep & (level > 0.0)]
    # every candidate's leads as rows of a padded table (-1 = no lead), so the last steps run on all at once
    width = max((len(rows) for rows in groups), default=1)
    table = np.full((len(groups), width), -1, dtype=np.int64)
    for g, rows in enumerate(groups):
        table[g, : len(rows)] = rows
    lead_rows = table[group]  # (candidates, width)
    if min_amplitude_mv > 0.0 and cand.size:
        big = _qrs_amplitude(leads, lead_rows, cand, amplitude_half) >= min_amplitude_mv
        group, cand, lead_rows = group[big], cand[big], lead_rows[big]
    idx = np.clip(cand[:, None] + locate[None, :], 0, n - 1)  # (candidates, search)
    # Candidates are >= 200 ms apart and each search spans 150 ms, so the peaks stay strictly increasing.
    strength = np.where(lead_rows[:, :, None] >= 0, np.abs(band[lead_rows.clip(0)[:, :, None], idx[:, None, :]]), 0.0)
    located = idx[np.arange(cand.size), np.argmax(strength.sum(axis=1), axis=1)].astype(np.int64)
    return np.split(located, np.cumsum(np.bincount(group, minlength=len(groups)))[:-1])


def _detect_neurokit(ecg: np.ndarray, sampling_rate: float, method: str) -> np.ndarray:
    import neurokit2 as nk  # imported here: slow to import, only needed for comparisons

    rate = int(round(sampling_rate))
    try:
        cleaned = nk.ecg_clean(ecg, sampling_rate=rate, method=method)
    except ValueError:  # NeuroKit has no cleaning of that name: use its default
        cleaned = nk.ecg_clean(ecg, sampling_rate=rate, method="neurokit")
    info = nk.ecg_findpeaks(cleaned, sampling_rate=rate, method=method)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def ecg_detect_r_peaks(
    x: np.ndarray,
    sampling_rate: float,
    method: str = DEFAULT_METHOD,
    min_amplitude_mv: float = MIN_QRS_AMPLITUDE_MV,
) -> np.ndarray:
    """Detect R peaks (QRS complexes) in one ECG lead or several leads of one patient.

    With ``method="slope"`` (default; see the module docstring) several leads are combined by summing
    their slope envelopes, and a beat needs :data:`MIN_QRS_AMPLITUDE_MV` on at least one lead. The
    NeuroKit2 methods (:data:`NEUROKIT_METHODS`) use the first lead only and ignore the amplitude floor.

    Args:
        x: ECG, shape ``(time,)`` or ``(leads, time)``, mV, finite (missing samples as zeros; a lead that
            is all zeros adds nothing).
        sampling_rate: Rate of ``x`` in Hz (at least 100 Hz for ``slope``; the pipeline uses 250 Hz).
        method: ``"slope"`` or one of :data:`NEUROKIT_METHODS`.
        min_amplitude_mv: Amplitude floor in mV (0 disables it); IEC 60601-2-27 requires 0.15 mV.

    Returns:
        Sample indices of the R peaks, sorted, int64, shape ``(beats,)``.

    Raises:
        ValueError: An unknown method, a rate too low, or non-finite samples.

    Example:
        >>> fs = 250.0
        >>> ecg = np.zeros(2500)
        >>> for beat in range(100, 2500, 200):  # 75 bpm of 1 mV, 40 ms wide triangles
        ...     ecg[beat - 5 : beat + 6] = 1.0 - np.abs(np.arange(-5, 6)) / 5
        >>> ecg_detect_r_peaks(ecg, fs)[:3].tolist()
        [100, 300, 500]
    """
    leads = _as_leads(x)
    if method == DEFAULT_METHOD:
        if sampling_rate < MIN_SAMPLING_RATE_HZ:
            raise ValueError(f"method 'slope' needs at least {MIN_SAMPLING_RATE_HZ} Hz, got {sampling_rate}")
        return _detect_slope(leads, float(sampling_rate), float(min_amplitude_mv))[0]
    if method in NEUROKIT_METHODS:
        return _detect_neurokit(leads[0], sampling_rate, method)
    raise ValueError(f"unknown method {method!r}: use {DEFAULT_METHOD!r} or one of {sorted(NEUROKIT_METHODS)}")


def ecg_detect_r_peaks_batch(
    x: np.ndarray, sampling_rate: float, min_amplitude_mv: float = MIN_QRS_AMPLITUDE_MV
) -> list[np.ndarray]:
    """The ``slope`` method on every row of ``(rows, time)`` alone, filtering all rows at once.

    Row ``r``'s beats equal ``ecg_detect_r_peaks(x[r], sampling_rate)``; the live pipeline passes every
    lead of a batch of windows here.
    """
    leads = _as_leads(x)
    if sampling_rate < MIN_SAMPLING_RATE_HZ:
        raise ValueError(f"method 'slope' needs at least {MIN_SAMPLING_RATE_HZ} Hz, got {sampling_rate}")
    return _detect_slope(leads, float(sampling_rate), float(min_amplitude_mv), [[r] for r in range(len(leads))])


def ecg_detect_r_peaks_windowed(
    x: np.ndarray,
    sampling_rate: float,
    window_s: float = 10.0,
    hop_s: float = 2.0,
    edge_s: float = EDGE_S,
    min_amplitude_mv: float = MIN_QRS_AMPLITUDE_MV,
) -> np.ndarray:
    """Detect R peaks the way the live stream does: on sliding windows, each beat reported once.

    Every ``hop_s`` a window of the last ``window_s`` seconds is passed to :func:`ecg_detect_r_peaks`;
    from it the stream keeps the beats in ``[end - edge_s - hop_s, end - edge_s)`` (``end`` = the window's
    last sample), the newest stretch of the window that is at least ``edge_s`` from both edges, so each
    beat is reported ``edge_s`` after its window ends, exactly once. The first window also reports
    everything before its kept stretch (its left edge is the recording's start) and the last window
    everything after. Because the ``slope`` method is window-local (:data:`EDGE_S`), the result equals
    ``ecg_detect_r_peaks(x, sampling_rate)`` on the whole record.

    Args:
        x: ECG, shape ``(time,)`` or ``(leads, time)``, mV.
        sampling_rate: Rate of ``x`` in Hz.
        window_s: Window length in seconds.
        hop_s: Step between windows in seconds; at most ``window_s - 2 * edge_s``.
        edge_s: Margin in seconds; at least :data:`EDGE_S` for the equality to hold.
        min_amplitude_mv: Amplitude floor in mV, as in :func:`ecg_detect_r_peaks`.

    Returns:
        Sample indices of the R peaks in the whole of ``x``, sorted, int64.

    Raises:
        ValueError: ``hop_s`` larger than the window's interior.

    Example:
        >>> ecg = np.zeros(7500)
        >>> ecg[100::200] = 1.0
        >>> bool(np.array_equal(ecg_detect_r_peaks_windowed(ecg, 250.0), ecg_detect_r_peaks(ecg, 250.0)))
        True
    """
    leads = _as_leads(x)
    n = leads.shape[-1]
    window, hop, edge = (int(round(s * sampling_rate)) for s in (window_s, hop_s, edge_s))
    if hop <= 0 or hop > window - 2 * edge:
        raise ValueError(f"hop_s {hop_s} must be in (0, window_s - 2 * edge_s = {window_s - 2 * edge_s}]")
    if n <= window:
        return ecg_detect_r_peaks(leads, sampling_rate, min_amplitude_mv=min_amplitude_mv)
    found: list[np.ndarray] = []
    end = window
    while True:
        last = end >= n
        start = max(0, min(end, n) - window)
        peaks = ecg_detect_r_peaks(leads[:, start : min(end, n)], sampling_rate, min_amplitude_mv=min_amplitude_mv)
        peaks = peaks + start
        lo = 0 if start == 0 else end - edge - hop
        hi = n if last else end - edge
        found.append(peaks[(peaks >= lo) & (peaks < hi)])
        if last:
            break
        end += hop
    return np.concatenate(found).astype(np.int64)


#: Ventricular-beat rule (:func:`ecg_classify_beats`): beat segment around the R peak (s before, after).
BEAT_SEGMENT_S: Final = (0.10, 0.15)
#: Half-width (s) of the QRS part of the segment whose equivalent width is measured.
QRS_HALF_WIDTH_S: Final = 0.10
#: Band (Hz) the beat shapes are compared in.
MORPHOLOGY_BAND_HZ: Final = (1.0, 30.0)
#: Beats within this many seconds of a beat form its dominant-beat template (a 10 s window's worth).
TEMPLATE_S: Final = 5.0
#: A beat whose RR interval is below this fraction of the neighbourhood's median RR is premature and
#: left out of the template (so that bigeminy does not turn the template ventricular).
PREMATURE_RR_RATIO: Final = 0.95
#: Correlation with the template below which a beat is ventricular whatever its width.
UNLIKE_CORRELATION: Final = 0.5
#: Correlation below which a beat is ventricular when it is also wide.
SIMILAR_CORRELATION: Final = 0.9
#: QRS equivalent width, relative to the template's, above which a beat is wide.
WIDE_QRS_RATIO: Final = 1.3


#: The patient's reference beat (:func:`reference_beat`) is learned only from a window of at least this many
#: beats, at a mean rate within :data:`REFERENCE_RATE_BPM` and RR intervals differing by less than
#: :data:`REFERENCE_RR_SPREAD_S`: a regular rhythm at a normal sinus rate, where every beat is conducted.
REFERENCE_MIN_BEATS: Final = 5
#: Normal sinus rate, beats/min (60-100 /min; e.g. Goldberger, *Clinical Electrocardiography*).
REFERENCE_RATE_BPM: Final = (60.0, 100.0)
#: Largest RR spread (s) of a regular rhythm: sinus arrhythmia is a PP variation above 0.12 s (Goldberger, as
#: above), and a premature beat breaks it too.
REFERENCE_RR_SPREAD_S: Final = 0.12


#: Beats whose templates are built at once (bounds memory: block x neighbours x segment floats).
_TEMPLATE_BLOCK: Final = 256


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median along axis 1 of ``values`` (rows, k, ...) over the entries where ``mask`` (rows, k) is True.

    NaN for a row without entries. Vectorised: masked entries sort to the end as +inf.
    """
    extra = (1,) * (values.ndim - 2)
    keep = mask.reshape(*mask.shape, *extra)
    ordered = np.sort(np.where(keep, values, np.inf), axis=1)
    count = np.count_nonzero(mask, axis=1).reshape(-1, 1, *extra)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=1)
    high = np.take_along_axis(ordered, np.maximum(count, 1) // 2 - (count == 0), axis=1)
    median = (low + high)[:, 0] / 2.0
    return np.where(count[:, 0] > 0, median, np.nan)


def _equivalent_width(segments: np.ndarray, centre: int, half: int, n_leads: int) -> np.ndarray:
    """QRS equivalent width in samples: area of |deviation| over the QRS window / its peak, summed over leads.

    ``segments`` is ``(..., n_leads * length)``, leads concatenated, each lead's median already removed.
    For a triangular QRS of base ``W`` this is ``W / 2``; it grows with the QRS duration.
    """
    length = segments.shape[-1] // n_leads
    per_lead = np.abs(segments.reshape(*segments.shape[:-1], n_leads, length)[..., centre - half : centre + half + 1])
    return per_lead.sum(axis=(-2, -1)) / np.maximum(per_lead.max(axis=-1).sum(axis=-1), 1e-12)


def _beat_geometry(sampling_rate: float) -> tuple[int, int, int]:
    """Samples before and after the R peak in a beat segment, and the half-width of its QRS part."""
    before, after = (_half(s, sampling_rate) for s in BEAT_SEGMENT_S)
    return before, after, min(_half(QRS_HALF_WIDTH_S, sampling_rate), before, after)


def _segments(band: np.ndarray, beats: np.ndarray, before: int, after: int) -> np.ndarray:
    """Each beat's segment ``[-before, +after]`` of ``band`` (leads, time), median removed, leads concatenated.

    Returns ``(beats, leads * length)``.
    """
    n_leads, n = band.shape
    padded = np.pad(band, ((0, 0), (before, after)), mode="edge")
    offsets = np.arange(-before, after + 1)
    seg = padded[:, np.clip(beats, 0, n - 1)[:, None] + before + offsets[None, :]]  # (leads, beats, length)
    seg = seg - np.median(seg, axis=-1, keepdims=True)
    return seg.transpose(1, 0, 2).reshape(beats.size, -1)


def _correlation(seg: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``seg`` with its row of ``templates`` (1 where either is flat)."""
    centred = seg - seg.mean(axis=-1, keepdims=True)
    template_centred = templates - templates.mean(axis=-1, keepdims=True)
    denom = np.linalg.norm(centred, axis=-1) * np.linalg.norm(template_centred, axis=-1)
    return np.where(denom > 0, (centred * template_centred).sum(axis=-1) / np.where(denom > 0, denom, 1.0), 1.0)


def _unlike(seg: np.ndarray, templates: np.ndarray, before: int, half: int, n_leads: int) -> np.ndarray:
    """The ventricular-beat rule of :func:`ecg_classify_beats`: each row of ``seg`` against its template."""
    rho = _correlation(seg, templates)
    wide = _equivalent_width(seg, before, half, n_leads) > WIDE_QRS_RATIO * _equivalent_width(
        templates, before, half, n_leads
    )
    return (rho < UNLIKE_CORRELATION) | ((rho < SIMILAR_CORRELATION) & wide)


def is_reference_rhythm(beats_s: np.ndarray) -> bool:
    """Whether a window's beat times (s) qualify it to teach the patient's reference beat (:func:`reference_beat`)."""
    if len(beats_s) < REFERENCE_MIN_BEATS:
        return False
    rr = np.diff(beats_s)
    low, high = REFERENCE_RATE_BPM
    return bool(low <= 60.0 / rr.mean() <= high and rr.max() - rr.min() < REFERENCE_RR_SPREAD_S)


def reference_beat(
    x: np.ndarray, sampling_rate: float, peaks: np.ndarray, band: np.ndarray | None = None
) -> np.ndarray:
    """The patient's reference beat: the median shape of a window's beats, for :func:`ecg_classify_beats`.

    Learn it only from a window where :func:`is_reference_rhythm` holds (every beat conducted); it is what the
    patient's dominant beat looks like in that lead, kept by the caller across windows.

    Args:
        x: ECG, shape ``(time,)`` or ``(leads, time)``, mV; the lead(s) the beats will later be classed on.
        sampling_rate: Rate of ``x`` in Hz.
        peaks: R-peak sample indices, sorted.
        band: ``morphology_band(x, sampling_rate)`` when the caller has it, else None.

    Returns:
        The shape, ``(leads * length,)`` float64, in the layout :func:`ecg_classify_beats` compares.
    """
    leads = _as_leads(x)
    before, after, _ = _beat_geometry(sampling_rate)
    band = morphology_band(leads, sampling_rate) if band is None else np.asarray(band, np.float64)
    seg = _segments(band.reshape(leads.shape), np.asarray(peaks, dtype=np.int64), before, after)
    return np.median(seg, axis=0)


def morphology_band(x: np.ndarray, sampling_rate: float) -> np.ndarray:
    """The band :func:`ecg_classify_beats` compares beat shapes in, for every row of ``(rows, time)`` at once.

    Each row alone, zero-phase band-passed to :data:`MORPHOLOGY_BAND_HZ`, float64: many windows' leads in one call.
    """
    leads = _as_leads(x)
    return _bandpass(leads, MORPHOLOGY_BAND_HZ, float(sampling_rate)) if leads.shape[-1] > 1 else leads


def ecg_classify_beats(
    x: np.ndarray,
    sampling_rate: float,
    peaks: np.ndarray,
    band: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Label each detected beat ventricular (True) or not, by a fixed morphology rule.

    Each beat is compared with the *dominant-beat template* of its neighbourhood: the sample-wise median
    of the beats within :data:`TEMPLATE_S` seconds whose preceding RR interval is not premature (at least
    :data:`PREMATURE_RR_RATIO` of the neighbourhood's median RR; all neighbours if fewer than three
    qualify). Shapes are 1-30 Hz band-passed segments from -100 to +150 ms around the R peak, leads
    concatenated. A beat is ventricular when

    * its correlation with the template is below :data:`UNLIKE_CORRELATION` (0.5), or
    * its correlation is below :data:`SIMILAR_CORRELATION` (0.9) and its QRS equivalent width (area over
      peak of the +-100 ms QRS part) exceeds :data:`WIDE_QRS_RATIO` (1.3) times the template's.

    This encodes the textbook criteria of a ventricular ectopic beat: a QRS of abnormal shape, wider than
    the conducted beats (QRS of 120 ms or more against 80-100 ms; e.g. Goldberger, *Clinical
    Electrocardiography: A Simplified Approach*), measured relative to the patient's own dominant beat so
    that bundle-branch block is not called ventricular. Prematurity only keeps ectopic beats out of the
    template. The thresholds are round values picked among a few (0.5/0.6/0.7, 0.8/0.85/0.9, 1.2/1.3/1.5)
    on the MIT-BIH DS1 records; they are the same for every record. Limits: in a stretch that is all
    ventricular for longer than :data:`TEMPLATE_S` (VT, idioventricular rhythm) the template is
    ventricular and the beats are called non-ventricular, unless the caller knows the patient's
    ``reference`` beat (below); aberrantly conducted supraventricular beats and intermittent pre-excitation
    look ventricular; noise lowers the correlation. Unlike the detector this rule is not window-local: a
    beat's label depends on the beats within :data:`TEMPLATE_S`.

    With a ``reference`` (:func:`reference_beat`, learned from an earlier window of regular sinus rhythm), the
    window's own dominant beat (the median of the beats not called ventricular, or of all beats when fewer than
    three are not) is first judged against it by the same two thresholds, unlike (:data:`UNLIKE_CORRELATION`)
    *and* wide (:data:`WIDE_QRS_RATIO`): when it is, the window's dominant rhythm is not the patient's
    conducted one (sustained ventricular tachycardia, where every beat is ventricular) and each beat is also
    judged against the reference by the rule above. A patient whose conducted beats are wide (bundle-branch
    block) learns a wide reference, so their own beats are not called ventricular against it.

    Args:
        x: ECG, shape ``(time,)`` or ``(leads, time)``, mV.
        sampling_rate: Rate of ``x`` in Hz (at least 100 Hz).
        peaks: R-peak sample indices, e.g. from :func:`ecg_detect_r_peaks`, shape ``(beats,)``.
        band: ``morphology_band(x, sampling_rate)`` when the caller has it already (the live pipeline
            band-passes the leads of a whole batch of windows at once), else None.
        reference: The patient's reference beat in these leads (:func:`reference_beat`), else None.

    Returns:
        Bool array, shape ``(beats,)``: True for ventricular beats (AAMI class V).

    Raises:
        ValueError: Unsorted peaks, a rate below 100 Hz, or non-finite samples.

    Example:
        >>> fs, t = 250.0, np.arange(2500) / 250.0
        >>> def beat(at, width):
        ...     return np.exp(-0.5 * ((t - at) / width) ** 2)
        >>> narrow = [0.5, 1.3, 2.1, 2.9, 3.7, 5.3, 6.1, 6.9, 7.7, 8.5, 9.3]
        >>> ecg = sum(beat(s, 0.012) for s in narrow) - beat(4.5, 0.04)  # one wide, inverted beat at 4.5 s
        >>> peaks = ecg_detect_r_peaks(ecg, fs)
        >>> (peaks[ecg_classify_beats(ecg, fs, peaks)] / fs).round(1).tolist()
        [4.5]
    """
    leads = _as_leads(x)
    beats = np.asarray(peaks, dtype=np.int64)
    if beats.size == 0:
        return np.zeros(0, dtype=bool)
    if sampling_rate < MIN_SAMPLING_RATE_HZ:
        raise ValueError(f"ecg_classify_beats needs at least {MIN_SAMPLING_RATE_HZ} Hz, got {sampling_rate}")
    n_leads, n = leads.shape
    before, after, half = _beat_geometry(sampling_rate)
    if band is None:
        band = morphology_band(leads, sampling_rate)
    seg = _segments(np.asarray(band, dtype=np.float64).reshape(n_leads, n), beats, before, after)

    times = beats / sampling_rate
    order = np.argsort(times, kind="stable")
    if not np.array_equal(order, np.arange(beats.size)):
        raise ValueError("peaks must be sorted")
    # Beats are sorted, so each neighbourhood is a contiguous index range [lo, hi).
    lo = np.searchsorted(times, times - TEMPLATE_S, side="left")
    hi = np.searchsorted(times, times + TEMPLATE_S, side="right")
    span = int((hi - lo).max())
    members = lo[:, None] + np.arange(span)[None, :]  # (beats, span), valid where < hi
    valid = members < hi[:, None]
    members = np.minimum(members, beats.size - 1)
    # RR interval ending at each beat (NaN for the first); the neighbourhood's RRs end at its beats but its first.
    rr_before = np.concatenate([[np.nan], np.diff(times)])
    rr_valid = valid & (members > lo[:, None])
    median_rr = _masked_median(rr_before[members], rr_valid)
    regular = ~(rr_before < PREMATURE_RR_RATIO * median_rr)  # NaN (first beat, lone beat) counts as regular

    use = valid & regular[members]
    too_few = np.count_nonzero(use, axis=1) < 3
    use[too_few] = valid[too_few]
    templates = np.empty_like(seg)
    for start in range(0, beats.size, _TEMPLATE_BLOCK):  # bounded memory on whole records
        block = slice(start, start + _TEMPLATE_BLOCK)
        templates[block] = _masked_median(seg[members[block]], use[block])
    ventricular = _unlike(seg, templates, before, half, n_leads)
    if reference is not None:
        ventricular |= _against_reference(seg, ventricular, reference, before, half, n_leads)
    return ventricular


def _against_reference(
    seg: np.ndarray, ventricular: np.ndarray, reference: np.ndarray, before: int, half: int, n_leads: int
) -> np.ndarray:
    """Beats ventricular against the reference, when the dominant beat (of those not ``ventricular``) is unlike it.

    A reference of another length (learned at another rate or from other leads) is not compared: none.
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(1, -1)
    if reference.shape[1] != seg.shape[1]:
        return np.zeros(len(seg), dtype=bool)
    dominant = np.median(seg[~ventricular] if np.count_nonzero(~ventricular) >= 3 else seg, axis=0)[None, :]
    if _unlike_and_wider(dominant, reference, before, half, n_leads):
        return _unlike(seg, np.broadcast_to(reference, seg.shape), before, half, n_leads)
    return np.zeros(len(seg), dtype=bool)


def _unlike_and_wider(beat: np.ndarray, reference: np.ndarray, before: int, half: int, n_leads: int) -> bool:
    """Whether a beat shape (1, length) is unlike (:data:`UNLIKE_CORRELATION`) and wider than the reference."""
    wide = _equivalent_width(beat, before, half, n_leads) > WIDE_QRS_RATIO * _equivalent_width(
        reference, before, half, n_leads
    )
    return bool(_correlation(beat, reference)[0] < UNLIKE_CORRELATION and wide[0])


def is_ventricular_reference(beat: np.ndarray, reference: np.ndarray, sampling_rate: float) -> bool:
    """Whether a newly learned reference beat is unlike and wider than the patient's current one.

    Such a beat is not the conducted one (a regular accelerated idioventricular rhythm, a slow ventricular
    tachycardia) and must not replace it; a narrower or similar beat may. Both are :func:`reference_beat`
    shapes of one lead at ``sampling_rate``; shapes of different lengths are never called ventricular.
    """
    before, after, half = _beat_geometry(sampling_rate)
    beat, reference = (np.asarray(a, dtype=np.float64).reshape(1, -1) for a in (beat, reference))
    if beat.shape != reference.shape:
        return False
    return _unlike_and_wider(beat, reference, before, half, beat.shape[1] // (before + after + 1))


def ventricular_against_reference(
    x: np.ndarray,
    sampling_rate: float,
    peaks: np.ndarray,
    reference: np.ndarray,
    ventricular: np.ndarray,
    band: np.ndarray | None = None,
) -> np.ndarray:
    """The beats another lead shows ventricular against the patient's reference beat in that lead.

    The reference part of :func:`ecg_classify_beats` alone, on a lead other than the one the beats were
    classed on (``ventricular``, its labels): a sustained ventricular rhythm can look like the conducted beat
    in one lead and not in another, and the lead with the best signal is not always the one that shows it.

    Args:
        x: ECG of that lead (or leads), shape ``(time,)`` or ``(leads, time)``, mV.
        sampling_rate: Rate of ``x`` in Hz.
        peaks: R-peak sample indices, sorted (the beats classed).
        reference: The patient's reference beat in that lead (:func:`reference_beat`).
        ventricular: The beats' labels from :func:`ecg_classify_beats`.
        band: ``morphology_band(x, sampling_rate)`` when the caller has it, else None.

    Returns:
        Bool array, shape ``(beats,)``: True where the beat is ventricular against the reference.
    """
    leads = _as_leads(x)
    beats = np.asarray(peaks, dtype=np.int64)
    if beats.size == 0:
        return np.zeros(0, dtype=bool)
    before, after, half = _beat_geometry(sampling_rate)
    band = morphology_band(leads, sampling_rate) if band is None else np.asarray(band, np.float64)
    seg = _segments(band.reshape(leads.shape), beats, before, after)
    return _against_reference(seg, np.asarray(ventricular, dtype=bool), reference, before, half, leads.shape[0])
