"""Signal functions: resampling, filtering, signal quality and RR features, on synthetic and real ECG."""

import csv
import doctest
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import wfdb

from models.signal import (
    PROCESSING_RATE_HZ,
    ecg_filter,
    ecg_resample,
    ecg_signal_quality,
    pulse_rate,
    rr_features,
)


def sine(freq_hz: float, rate: float, seconds: float = 10.0) -> torch.Tensor:
    t = torch.arange(int(round(rate * seconds)), dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * freq_hz * t)


@pytest.mark.parametrize("rate", [360.0, 125.0, 1000.0, 500.0, 300.0, 128.5])
def test_resampling_to_250_hz_gives_250_samples_per_second_and_keeps_a_5_hz_sine(rate: float) -> None:
    y = ecg_resample(sine(5.0, rate).expand(2, 3, -1), rate)
    assert y.shape == (2, 3, math.ceil(10 * rate * PROCESSING_RATE_HZ / rate - 1e-9))
    expected = sine(5.0, PROCESSING_RATE_HZ)
    assert torch.allclose(y[0, 0, 250:-250], expected[250:-250], atol=0.01)


def test_resampling_at_the_target_rate_is_the_identity_and_integer_tensors_are_refused() -> None:
    x = torch.randn(1, 2, 100)
    assert ecg_resample(x, 250.0) is x
    with pytest.raises(ValueError, match="floating-point"):
        ecg_resample(torch.zeros(10, dtype=torch.int16), 360.0)
    with pytest.raises(ValueError, match="positive"):
        ecg_resample(x, 0.0)


@pytest.mark.parametrize(("mains_hz", "freq_hz"), [(50.0, 50.0), (60.0, 60.0)])
def test_filter_removes_mains_and_keeps_10_hz(mains_hz: float, freq_hz: float) -> None:
    interior = slice(500, -500)
    removed = ecg_filter(sine(freq_hz, 250.0), 250.0, mains_hz=mains_hz)
    kept = ecg_filter(sine(10.0, 250.0), 250.0, mains_hz=mains_hz)
    assert removed[interior].abs().max() < 0.05
    assert torch.allclose(kept[interior], sine(10.0, 250.0)[interior], atol=0.02)


def test_filter_removes_baseline_wander_below_the_band() -> None:
    assert ecg_filter(sine(0.1, 250.0, 30.0), 250.0)[2500:-2500].abs().max() < 0.05


def test_filtering_a_batch_equals_filtering_each_lead_alone() -> None:
    x = torch.randn(3, 2, 2500, dtype=torch.float32)
    batched = ecg_filter(x, 250.0)
    single = torch.stack([torch.stack([ecg_filter(x[b, lead], 250.0) for lead in range(2)]) for b in range(3)])
    assert batched.dtype == torch.float32
    assert torch.allclose(batched, single, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["scipy", "torchaudio"])
def test_filtering_runs_in_float64_and_returns_the_input_dtype(dtype: torch.dtype, backend: str) -> None:
    x = (torch.randn(3, 2, 700, dtype=torch.float64) * 2.0).to(dtype)
    y = ecg_filter(x, 250.0, backend=backend)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, ecg_filter(x.to(torch.float64), 250.0, backend=backend).to(dtype))


def test_scipy_and_torchaudio_backends_agree_on_real_ecg(data_dir: Path) -> None:
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "115"), sampfrom=0, sampto=360 * 60)
    leads = torch.from_numpy(rec.p_signal.T.copy())  # (2, 60 s) in mV
    x = ecg_resample(leads.reshape(2, 6, -1).permute(1, 0, 2).contiguous(), float(rec.fs))  # six 10-s windows
    for mains_hz in (50.0, 60.0, None):
        scipy_out = ecg_filter(x, 250.0, mains_hz=mains_hz, backend="scipy")
        torch_out = ecg_filter(x, 250.0, mains_hz=mains_hz, backend="torchaudio")
        assert scipy_out.shape == torch_out.shape == x.shape
        assert (scipy_out - torch_out).abs().max() < 1e-4
    assert ecg_filter(x.float(), 250.0).dtype == torch.float32
    with pytest.raises(ValueError, match="backend"):
        ecg_filter(x, 250.0, backend="cuda")


def test_filter_refuses_a_band_above_nyquist() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        ecg_filter(torch.zeros(1000), 100.0, band_hz=(0.5, 60.0))
    with pytest.raises(ValueError, match="mains_hz"):
        ecg_filter(torch.zeros(1000), 100.0, band_hz=(0.5, 40.0), mains_hz=60.0)


def synthetic_ecg(seconds: float = 10.0, rate: float = 250.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    qrs = np.exp(-0.5 * ((t[:, None] - np.arange(0.4, seconds, 0.8)) / 0.012) ** 2).sum(axis=1)
    return qrs + 0.02 * np.sin(2 * np.pi * 7.3 * t)


def test_sqi_is_zero_for_a_flat_or_all_missing_lead_and_scales_with_the_present_fraction() -> None:
    ecg = np.stack([synthetic_ecg(), np.zeros(2500), synthetic_ecg(), synthetic_ecg()])
    ecg[3] = np.clip(ecg[3], None, 0.0)  # saturated at a rail: flat
    missing = np.zeros(ecg.shape, dtype=bool)
    missing[2] = True
    assert ecg_signal_quality(ecg, 250.0, missing).tolist() == [1.0, 0.0, 0.0, 0.0]
    missing[2] = False
    missing[0, :1250] = True
    assert ecg_signal_quality(ecg[:1], 250.0, missing[:1])[0] == pytest.approx(0.5, abs=0.05)


def test_sqi_is_high_on_clean_mitdb_windows(data_dir: Path) -> None:
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "115"), sampfrom=0, sampto=360 * 120)
    x = ecg_resample(torch.from_numpy(rec.p_signal.T.copy()), 360.0).numpy()
    windows = [ecg_signal_quality(x[:, s : s + 2500], 250.0) for s in range(0, x.shape[1] - 2500, 2500)]
    assert np.mean(windows) > 0.9


def test_sqi_separates_cinc2017_noisy_recordings_from_normal_ones(data_dir: Path) -> None:
    """First 60 recordings of each class in REFERENCE.csv order (a fixed, untuned sample)."""
    folder = data_dir / "cinc2017"
    with (folder / "REFERENCE.csv").open(newline="") as fh:
        labels = [(row["data_source"], row["class"]) for row in csv.DictReader(fh)]

    def mean_sqi(cls: str) -> float:
        ids = [rid for rid, c in labels if c == cls][:60]
        return float(
            np.mean(
                [
                    ecg_signal_quality(scipy.io.loadmat(folder / f"{rid}.mat")["val"][0] / 1000.0, 300.0)[0]
                    for rid in ids
                ]
            )
        )

    normal, noisy = mean_sqi("N"), mean_sqi("~")
    assert normal > 0.8
    assert normal - noisy > 0.25


def test_rr_features_of_a_known_rr_series() -> None:
    f = rr_features(np.array([0.0, 0.8, 1.6, 2.5, 3.3]))  # RR 800, 800, 900, 800 ms
    assert f["rr_mean_ms"] == pytest.approx(825.0)
    assert f["heart_rate_bpm"] == pytest.approx(60_000 / 825)
    assert f["sdnn_ms"] == pytest.approx(50.0)
    assert f["rmssd_ms"] == pytest.approx(math.sqrt((0 + 100**2 + 100**2) / 3))
    assert f["pnn50"] == pytest.approx(200 / 3)
    assert f["rr_irregularity"] == pytest.approx(f["rmssd_ms"] / 825.0)
    assert f["irregular"] is False
    assert rr_features(np.cumsum([0.0, 0.6, 1.1, 0.5, 0.9, 0.7]))["irregular"] is True


def test_rr_features_leave_out_excluded_intervals() -> None:
    beats = np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0])  # 60 /min, one 3-s interval across a dropout
    f = rr_features(beats, excluded=np.array([False, False, True, False, False]))
    assert f["heart_rate_bpm"] == pytest.approx(60.0) and f["rmssd_ms"] == 0.0 and f["irregular"] is False
    assert rr_features(beats)["irregular"] is True  # counted, the long interval reads as irregularity
    with pytest.raises(ValueError):
        rr_features(beats, excluded=np.array([True]))


def test_rr_features_give_none_not_nan_when_too_few_beats() -> None:
    assert set(rr_features(np.array([])).values()) == {None}
    assert set(rr_features(np.array([1.0])).values()) == {None}
    two = rr_features(np.array([1.0, 1.5]))
    assert two["heart_rate_bpm"] == pytest.approx(120.0)
    assert two["sdnn_ms"] is None and two["rmssd_ms"] is None and two["rr_irregularity"] is None
    with pytest.raises(ValueError, match="increasing"):
        rr_features(np.array([1.0, 1.0, 2.0]))


def test_the_docstring_examples_of_signal_run() -> None:
    import models.signal

    result = doctest.testmod(models.signal)
    assert result.attempted > 0 and result.failed == 0


def test_no_pulse_rate_from_noise_a_flat_line_or_a_mostly_missing_channel() -> None:
    rng = np.random.default_rng(7)
    assert all(pulse_rate(rng.normal(size=2500), 250.0) is None for _ in range(50))
    assert pulse_rate(np.full(2500, 80.0), 250.0) is None
    t = np.arange(2500) / 250.0
    wave = 80 + 20 * np.sin(2 * np.pi * 1.25 * t)  # a 75 /min pulse
    assert pulse_rate(wave, 250.0) == pytest.approx(75.0, abs=0.5)
    gappy = wave.copy()
    gappy[:200] = np.nan  # 8 % missing
    assert pulse_rate(gappy, 250.0) is None
