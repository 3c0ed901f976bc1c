"""R-peak detection and ventricular-beat classification on synthetic ECG and MIT-BIH records."""

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from models.ec57 import read_reference, score_record
from models.qrs import (
    EDGE_S,
    MIN_QRS_AMPLITUDE_MV,
    ecg_classify_beats,
    ecg_detect_r_peaks,
    ecg_detect_r_peaks_windowed,
    is_reference_rhythm,
    is_ventricular_reference,
    morphology_band,
    reference_beat,
)
from models.signal import PROCESSING_RATE_HZ, ecg_resample
from streams.rhythm import detect_rhythms

FS = float(PROCESSING_RATE_HZ)


def spikes(amplitude_mv: float, seconds: float = 10.0, rr_s: float = 0.8, width_s: float = 0.012) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return amplitude_mv * np.exp(-0.5 * ((t[:, None] - np.arange(0.4, seconds, rr_s)) / width_s) ** 2).sum(axis=1)


def mitdb_at_250_hz(data_dir: Path, record: str, leads: list[int]) -> np.ndarray:
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / record), channels=leads)
    return ecg_resample(torch.from_numpy(rec.p_signal.T.copy()), rec.fs).numpy()


def test_it_finds_every_beat_of_a_regular_synthetic_ecg_at_its_peak() -> None:
    peaks = ecg_detect_r_peaks(spikes(1.0), FS)
    assert peaks.tolist() == [round((0.4 + 0.8 * k) * FS) for k in range(12)]


def test_it_ignores_deflections_below_0_15_mv_as_iec_60601_2_27_requires() -> None:
    assert ecg_detect_r_peaks(spikes(0.8 * MIN_QRS_AMPLITUDE_MV), FS).size == 0
    assert ecg_detect_r_peaks(spikes(1.3 * MIN_QRS_AMPLITUDE_MV), FS).size == 12
    assert ecg_detect_r_peaks(spikes(0.8 * MIN_QRS_AMPLITUDE_MV), FS, min_amplitude_mv=0.0).size == 12


def test_it_finds_nothing_in_a_flat_or_tiny_signal_and_refuses_bad_input() -> None:
    assert ecg_detect_r_peaks(np.zeros(2500), FS).size == 0
    assert ecg_detect_r_peaks(np.zeros(10), FS).size == 0
    with pytest.raises(ValueError, match="NaN"):
        ecg_detect_r_peaks(np.full(2500, np.nan), FS)
    with pytest.raises(ValueError, match="unknown method"):
        ecg_detect_r_peaks(np.zeros(2500), FS, method="nope")
    with pytest.raises(ValueError, match="100"):
        ecg_detect_r_peaks(np.zeros(2500), 50.0)


def test_a_missing_lead_of_zeros_does_not_change_the_beats_of_the_other() -> None:
    one = spikes(1.0)
    assert np.array_equal(ecg_detect_r_peaks(np.stack([one, np.zeros_like(one)]), FS), ecg_detect_r_peaks(one, FS))


@pytest.mark.parametrize("record", ["208", "203"])
def test_chunked_equals_whole(data_dir: Path, record: str) -> None:
    """10 s windows every 2 s at 250 Hz: beats more than 1 s from a window's edges equal the whole record's."""
    x = mitdb_at_250_hz(data_dir, record, [0])[0]
    whole = ecg_detect_r_peaks(x, FS)
    window, hop, edge = int(10 * FS), int(2 * FS), int(EDGE_S * FS)
    compared = 0
    for start in range(0, x.size - window + 1, hop):
        found = ecg_detect_r_peaks(x[start : start + window], FS) + start
        lo, hi = start + edge, start + window - edge
        inner = found[(found > lo) & (found < hi)]
        reference = whole[(whole > lo) & (whole < hi)]
        assert inner.size == reference.size, f"window at {start / FS:.0f} s"
        assert np.abs(inner - reference).max(initial=0) <= 1, f"window at {start / FS:.0f} s"
        compared += inner.size
    assert compared > 3.9 * whole.size  # each beat lies in the interior of four windows (fewer at the ends)
    assert np.array_equal(ecg_detect_r_peaks_windowed(x, FS), whole)


def test_windowed_detection_equals_whole_record_detection_on_two_leads(data_dir: Path) -> None:
    x = mitdb_at_250_hz(data_dir, "108", [0, 1])[:, : int(300 * FS)]
    assert np.array_equal(ecg_detect_r_peaks_windowed(x, FS), ecg_detect_r_peaks(x, FS))


@pytest.mark.parametrize("record", ["101", "106", "119", "208", "223"])
def test_it_meets_the_ec57_goal_on_mitdb_records(data_dir: Path, record: str) -> None:
    x = mitdb_at_250_hz(data_dir, record, [0])
    ref = read_reference(data_dir / "mitdb" / record)
    peaks = np.rint(ecg_detect_r_peaks(x, FS) * ref.sampling_rate / FS).astype(np.int64)
    qrs = score_record(record, ref.samples, peaks, ref.sampling_rate, ref.vf_episodes).qrs
    assert qrs.se >= 0.995 and qrs.ppv >= 0.995, qrs


def test_it_calls_the_pvcs_of_record_119_ventricular(data_dir: Path) -> None:
    x = mitdb_at_250_hz(data_dir, "119", [0])
    ref = read_reference(data_dir / "mitdb" / "119")
    peaks = ecg_detect_r_peaks(x, FS)
    ventricular = ecg_classify_beats(x, FS, peaks)
    at_ref_rate = np.rint(peaks * ref.sampling_rate / FS).astype(np.int64)
    veb = score_record("119", ref.samples, at_ref_rate, ref.sampling_rate, (), ref.symbols, ventricular).veb
    assert veb is not None and veb.se >= 0.95 and veb.ppv >= 0.95, veb


def test_beats_are_classed_the_same_from_a_band_filtered_for_many_windows_at_once(data_dir: Path) -> None:
    x = mitdb_at_250_hz(data_dir, "119", [0])[0, : int(60 * FS)]
    windows = x[: x.size // 2500 * 2500].reshape(-1, 2500)  # 10-s windows, as the live batch holds them
    bands = morphology_band(windows, FS)
    called = 0
    for window, band in zip(windows, bands, strict=True):
        peaks = ecg_detect_r_peaks(window, FS)
        alone = ecg_classify_beats(window, FS, peaks)
        assert np.array_equal(ecg_classify_beats(window, FS, peaks, band), alone)
        called += int(alone.sum())
    assert called > 0  # record 119's PVCs: the comparison covers ventricular calls, not only normal beats


def test_a_wide_beat_among_narrow_ones_is_ventricular_and_the_narrow_ones_are_not() -> None:
    ecg = spikes(1.0)
    t = np.arange(ecg.size) / FS
    beat = int(round(4.4 * FS))
    ecg[beat - 50 : beat + 50] = 0.0
    ecg -= 1.2 * np.exp(-0.5 * ((t - 4.4) / 0.04) ** 2)  # broad, inverted: a PVC
    peaks = ecg_detect_r_peaks(ecg, FS)
    ventricular = ecg_classify_beats(ecg, FS, peaks)
    assert (peaks[ventricular] / FS).round(1).tolist() == [4.4]
    assert ecg_classify_beats(ecg, FS, np.array([], dtype=np.int64)).size == 0


def beats_at(times_s: np.ndarray, width_s: float, sign: float = 1.0, seconds: float = 10.0) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return sign * np.exp(-0.5 * ((t[:, None] - times_s) / width_s) ** 2).sum(axis=1)


def test_sustained_wide_beats_are_ventricular_against_the_patients_reference_beat() -> None:
    sinus_times = np.arange(0.4, 10.0, 0.8)  # 75 /min, narrow: the patient's conducted beat
    sinus = beats_at(sinus_times, 0.012)
    assert is_reference_rhythm(sinus_times)
    reference = reference_beat(sinus, FS, ecg_detect_r_peaks(sinus, FS))
    vt = beats_at(np.arange(0.3, 10.0, 0.5), 0.04, -1.0)  # 120 /min, every beat wide and inverted
    peaks = ecg_detect_r_peaks(vt, FS)
    alone = ecg_classify_beats(vt, FS, peaks)
    assert not alone.any()  # the window's own template is ventricular: nothing stands out (the documented limit)
    against = ecg_classify_beats(vt, FS, peaks, reference=reference)
    assert against.all()
    assert "ventricular_tachycardia" in [d.kind for d in detect_rhythms(peaks / FS, against, (0.0, 10.0))]
    assert "ventricular_tachycardia" not in [d.kind for d in detect_rhythms(peaks / FS, alone, (0.0, 10.0))]


def test_a_wide_conducted_beat_learned_as_the_reference_stays_non_ventricular_when_the_rate_rises() -> None:
    wide = 0.03  # bundle-branch block: every conducted beat is wide
    reference = reference_beat(
        beats_at(np.arange(0.4, 10.0, 0.8), wide), FS, (np.arange(0.4, 10.0, 0.8) * FS).round().astype(np.int64)
    )
    faster = beats_at(np.arange(0.3, 10.0, 0.55), wide)  # 109 /min: sinus tachycardia, same shape
    peaks = ecg_detect_r_peaks(faster, FS)
    assert not ecg_classify_beats(faster, FS, peaks, reference=reference).any()


def test_a_dominant_beat_unlike_the_reference_but_not_wider_does_not_turn_the_reference_on() -> None:
    times = np.arange(0.4, 10.0, 0.8)
    reference = reference_beat(beats_at(times, 0.012), FS, (times * FS).round().astype(np.int64))
    inverted = beats_at(np.arange(0.3, 10.0, 0.5), 0.012, -1.0)  # 120 /min, narrow, opposite polarity
    peaks = ecg_detect_r_peaks(inverted, FS)
    assert not ecg_classify_beats(inverted, FS, peaks, reference=reference).any()
    wide = beats_at(np.arange(0.3, 10.0, 0.5), 0.04, -1.0)  # the same, wide: the reference turns on
    assert ecg_classify_beats(wide, FS, ecg_detect_r_peaks(wide, FS), reference=reference).all()


def test_a_new_reference_unlike_and_wider_than_the_known_one_is_called_ventricular() -> None:
    times = np.arange(0.4, 10.0, 0.8)
    peaks = (times * FS).round().astype(np.int64)
    narrow = reference_beat(beats_at(times, 0.012), FS, peaks)
    wide_inverted = reference_beat(beats_at(times, 0.04, -1.0), FS, peaks)
    assert is_ventricular_reference(wide_inverted, narrow, FS)
    assert not is_ventricular_reference(narrow, wide_inverted, FS)  # narrower: may replace it
    assert not is_ventricular_reference(reference_beat(beats_at(times, 0.014), FS, peaks), narrow, FS)
    assert not is_ventricular_reference(wide_inverted, narrow[:-1], FS)  # other length: not compared


def test_only_a_regular_window_at_a_sinus_rate_teaches_the_reference_beat() -> None:
    assert is_reference_rhythm(np.arange(0.4, 10.0, 0.8))  # 75 /min
    assert not is_reference_rhythm(np.arange(0.3, 10.0, 0.5))  # 120 /min
    assert not is_reference_rhythm(np.arange(0.4, 10.0, 1.2))  # 50 /min
    premature = np.sort(np.append(np.arange(0.4, 10.0, 0.8), 4.4 + 0.45))  # one beat 0.45 s after another
    assert not is_reference_rhythm(premature)
    assert not is_reference_rhythm(np.arange(0.4, 3.6, 0.8))  # four beats are too few


def test_the_docstring_examples_of_qrs_run() -> None:
    import models.qrs

    result = doctest.testmod(models.qrs)
    assert result.attempted > 0 and result.failed == 0
