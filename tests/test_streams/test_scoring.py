"""Batched ECG features and the rule scorer on real recordings at the rates bedside monitors use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from streams.align import AlignedSample, VitalValue
from streams.rhythm import Detection
from streams.scoring import (
    BRIDGED_GAP_S,
    MIN_QUALITY,
    BeatReferences,
    EcgFeatures,
    RuleScorer,
    _unbridged,
    ecg_features,
    window_pulse_rate,
)
from streams.windows import US, EcgWindow

BEATS = list("NLRejAaJSVEF/fQ")


def mitdb_window(data_dir: Path, record: str, start_s: float, rate: float, seconds: float = 10.0) -> EcgWindow:
    """Ten seconds of an MIT-BIH record (both leads, mV), resampled to ``rate`` with scipy."""
    rec = wfdb.rdrecord(
        str(data_dir / "mitdb" / record), sampfrom=int(start_s * 360), sampto=int((start_s + seconds) * 360)
    )
    x = rec.p_signal.T.astype(np.float64)
    if rate != 360:
        x = resample_poly(x, int(rate), 360, axis=1)
    return EcgWindow(
        f"mitdb-{record}",
        0,
        int(seconds * US),
        float(rate),
        tuple((name, "ecg") for name in rec.sig_name),
        x.astype(np.float32),
        "stream",
        0.0,
    )


def reference_hr(data_dir: Path, record: str, start_s: float, seconds: float = 10.0) -> float:
    ann = wfdb.rdann(
        str(data_dir / "mitdb" / record), "atr", sampfrom=int(start_s * 360), sampto=int((start_s + seconds) * 360)
    )
    beats = ann.sample[np.isin(ann.symbol, BEATS)] / 360.0
    return 60.0 / float(np.mean(np.diff(beats)))


@pytest.mark.parametrize("rate", [125, 250, 360, 500, 1000])
def test_heart_rate_is_measured_within_iec_accuracy_at_every_monitor_rate(data_dir: Path, rate: int) -> None:
    windows = [mitdb_window(data_dir, r, 600.0, rate) for r in ("101", "115", "209")]
    feats = ecg_features(windows)
    for w, f in zip(windows, feats, strict=True):
        ref = reference_hr(data_dir, w.patient_id.split("-")[1], 600.0)
        assert f.usable, (w.patient_id, f.lead_quality)
        # IEC 60601-2-27: heart rate within 10 % or 5 bpm, whichever is greater
        assert abs(f.rr["heart_rate_bpm"] - ref) <= max(0.1 * ref, 5.0), (w.patient_id, rate, f.rr, ref)


def test_batched_features_equal_one_window_at_a_time(data_dir: Path) -> None:
    windows = [mitdb_window(data_dir, "101", 300.0 + 10 * k, 360) for k in range(3)]
    windows.append(mitdb_window(data_dir, "208", 300.0, 250))
    together = ecg_features(windows)
    alone = [ecg_features([w])[0] for w in windows]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.beats_s, b.beats_s)
        assert a.lead == b.lead and a.quality == pytest.approx(b.quality, abs=1e-6)


def test_missing_samples_are_never_beats_and_a_gap_is_not_asystole(data_dir: Path) -> None:
    w = mitdb_window(data_dir, "101", 600.0, 360)
    w.samples[:, 3 * 360 : 8 * 360] = np.nan  # five seconds lost from both leads
    (f,) = ecg_features([w])
    assert not ((f.beats_s > 3.05) & (f.beats_s < 7.95)).any()
    assert f.present_fraction == pytest.approx(0.5, abs=0.01)
    assert not [d for d in f.detections if d.kind == "asystole"]


def test_a_window_without_ecg_channels_or_samples_has_no_features(data_dir: Path) -> None:
    w = mitdb_window(data_dir, "101", 600.0, 360)
    w.samples[:] = np.nan
    empty, none = ecg_features([w, None])
    assert empty.lead is None and not empty.usable and empty.detections == []
    assert none.lead is None and none.quality == 0
    for n in (0, 1, 2):  # degenerate windows score as no ECG or no beat, never raise
        tiny = EcgWindow("p", 0, 10 * US, 250.0, (("II", "ecg"),), np.zeros((1, n), np.float32), "stream", 0.0)
        assert RuleScorer().score_batch([AlignedSample("p", 0, 10 * US, tiny)])[0].detections == []


def test_the_rule_score_adds_news2_and_uses_the_ecg_rate_when_no_pulse_is_sent(data_dir: Path) -> None:
    w = mitdb_window(data_dir, "101", 600.0, 360)
    scorer = RuleScorer()
    vitals = {
        "respiratory_rate": VitalValue(26.0, 10.0, None),  # 3
        "spo2": VitalValue(97.0, 10.0, None),  # 0
        "systolic_bp": VitalValue(95.0, 100.0, None),  # 2
        "body_temperature": VitalValue(37.0, 600.0, None),  # 0
        "consciousness": VitalValue("A", 600.0, None),  # 0
    }
    ecg_only, with_vitals, vitals_only = scorer.score_batch(
        [
            AlignedSample("p", 0, 10 * US, w),
            AlignedSample("p", 0, 10 * US, w, vitals=vitals),
            AlignedSample("p", 0, 10 * US, None, vitals=vitals),
        ]
    )
    hr = ecg_only.scores["heart_rate_bpm"]
    pulse_points = 0 if 51 <= round(hr) <= 90 else 1  # record 101 rests at about 70 bpm
    assert with_vitals.scores["news2"] == 3 + 2 + pulse_points
    assert vitals_only.scores["news2"] == 5 and "heart_rate_bpm" not in vitals_only.scores
    assert 0 < vitals_only.risk <= with_vitals.risk <= 1
    assert ecg_only.signal_quality > 0.5 and vitals_only.signal_quality == 0


@pytest.mark.parametrize(
    ("kind", "points_when_unreadable"),
    [("asystole", 3), ("ventricular_fibrillation", 3), ("ventricular_tachycardia", 0), ("extreme_tachycardia", 0)],
)
def test_asystole_and_vf_score_their_points_at_any_ecg_quality(kind: str, points_when_unreadable: int) -> None:
    scorer = RuleScorer()
    sample = AlignedSample("p", 0, 10 * US, None)
    for usable, expected in ((True, 3), (False, points_when_unreadable)):
        feats = EcgFeatures(lead="II", usable=usable, quality=0.8 if usable else 0.2)
        feats.detections = [Detection(kind, 1.0, 9.0, {})]  # type: ignore[arg-type]
        scored = scorer._score(sample, feats)
        assert scored.scores["rhythm_points"] == expected, (kind, usable)
        assert scored.detections == feats.detections  # reported either way


def test_a_dropout_neither_slows_the_heart_rate_nor_makes_the_rhythm_irregular(data_dir: Path) -> None:
    whole = mitdb_window(data_dir, "101", 60.0, 360)
    cut = mitdb_window(data_dir, "101", 60.0, 360)
    cut.samples[:, int(5.0 * 360) : int(6.5 * 360)] = np.nan  # 1.5 s lost: the RR interval across it is unknown
    full, gapped = ecg_features([whole, cut])
    ref = reference_hr(data_dir, "101", 60.0)
    assert abs(gapped.rr["heart_rate_bpm"] - ref) <= max(0.1 * ref, 5.0), (gapped.rr, ref)
    assert gapped.rr["irregular"] is False and full.rr["irregular"] is False


def test_gaps_leave_no_false_beats_on_an_ecg_whose_baseline_is_off_zero() -> None:
    rate, rng = 360.0, np.random.default_rng(3)
    windows = []
    for start, length in ((1803, 1), (1803, 20), (int(4.0 * rate), int(rate))):
        # asystole on a baseline 1 mV off zero (with 20 uV of noise), samples lost from `start`
        x = (1.0 + 0.02 * rng.standard_normal((1, 3600))).astype(np.float32)
        x[0, start : start + length] = np.nan
        windows.append(EcgWindow("p", 0, 10 * US, rate, (("II", "ecg"),), x, "stream", 0.0))
    for f in ecg_features(windows):
        assert f.beats_s.size == 0, f.beats_s  # zeros in the gap would be steps the filters ring into beats
        assert f.present_fraction < 1.0  # even one lost sample stays marked missing on the processing grid
        assert {d.kind for d in f.detections} == {"asystole"}


def test_the_chunked_live_stream_finds_the_beats_of_the_whole_record(data_dir: Path) -> None:
    """Chunks -> event-time windows -> batched features give, away from the window edges, the beats that the
    same resampling, filtering and detector find on the whole record (within one sample at 250 Hz)."""
    import torch

    from models.qrs import ecg_detect_r_peaks
    from models.signal import PROCESSING_RATE_HZ, ecg_filter, ecg_resample
    from streams.sources import read_recording
    from streams.waveform import WaveformChunk
    from streams.windows import EcgBuffer, WindowConfig, add_chunk

    rec = read_recording(data_dir / "mitdb" / "101", max_duration_s=120)
    config, buf, windows = WindowConfig(), EcgBuffer("p"), []
    t0 = 1_700_000_000 * US
    for seq, (pos, channels, samples) in enumerate(rec.chunks(1.0)):
        chunk = WaveformChunk(
            "p", "m", seq, t0 + round(pos * US / rec.sampling_rate), rec.sampling_rate, channels, samples
        )
        windows += add_chunk(buf, chunk, config, 0.0).windows
    feats = ecg_features(windows)

    whole = np.concatenate([s.samples for s in rec.segments], axis=1)
    physical = WaveformChunk("p", "m", 0, 0, rec.sampling_rate, rec.segments[0].channels, whole).physical()
    x = ecg_filter(ecg_resample(torch.from_numpy(physical)[:, None, :], rec.sampling_rate), PROCESSING_RATE_HZ)
    names = [c.name for c in rec.segments[0].channels]
    references = {
        n: ecg_detect_r_peaks(x[i, 0].numpy(), PROCESSING_RATE_HZ) / PROCESSING_RATE_HZ for i, n in enumerate(names)
    }

    compared = 0
    for w, f in zip(windows, feats, strict=True):
        reference = references[f.lead]  # the window's best lead
        start = (w.start_us - t0) / US
        inner = (start + 1.0, start + config.window_s - 1.0)
        live = start + f.beats_s[(f.beats_s >= 1.0) & (f.beats_s < config.window_s - 1.0)]
        ref = reference[(reference >= inner[0] + 0.01) & (reference < inner[1] - 0.01)]
        near = np.abs(live[:, None] - ref[None, :]).min(axis=0) if len(live) else np.full(len(ref), np.inf)
        assert (near <= 1.0 / PROCESSING_RATE_HZ + 1e-9).all(), (start, live, ref)
        extra = live[(live >= inner[0] + 0.01) & (live < inner[1] - 0.01)]
        assert len(extra) == len(ref), (start, extra, ref)  # and no beat the whole record does not have
        compared += len(ref)
    assert compared > 500


@pytest.mark.parametrize("record", ["03700181", "v102s", "a103l"])
def test_the_pulse_rate_of_arterial_pressure_or_pleth_agrees_with_readable_ecg(data_dir: Path, record: str) -> None:
    """First minute of bedside records in 10-s windows: where the ECG is readable (quality >= 0.5), the pulse
    channel's rate is within the IEC 60601-2-27 heart-rate accuracy (10 % or 5 bpm) of the ECG's; the scorer
    reports it as ``pulse_rate_bpm``."""
    rec = wfdb.rdrecord(str(data_dir / "waveform_streams" / record), sampto=int(60 * 250))
    kinds = {"ABP": "abp", "PLETH": "pleth", "RESP": "resp"}
    channels = tuple((n, kinds.get(n, "ecg")) for n in rec.sig_name)
    windows = [
        EcgWindow(record, 0, 10 * US, float(rec.fs), channels,
                  rec.p_signal[int(t * rec.fs) : int((t + 10) * rec.fs)].T.astype(np.float32), "stream", 0.0)
        for t in range(0, 60, 10)
    ]  # fmt: skip
    compared = 0
    for w, feats, scored in zip(windows, ecg_features(windows), RuleScorer().score_batch(
        [AlignedSample(record, 0, 10 * US, w) for w in windows]), strict=True):  # fmt: skip
        rate, hr = window_pulse_rate(w), feats.rr.get("heart_rate_bpm")
        assert rate is not None and scored.scores["pulse_rate_bpm"] == round(rate, 1)
        if feats.usable and hr is not None:
            compared += 1
            assert abs(rate - hr) <= max(0.1 * hr, 5.0), (rate, hr)
    assert compared >= 3


def test_one_or_two_lost_samples_neither_hide_a_beat_nor_split_a_pause(data_dir: Path) -> None:
    fs = 250
    whole = mitdb_window(data_dir, "101", 60.0, fs)
    (full,) = ecg_features([whole])
    peaks = np.round(full.beats_s * fs).astype(int)
    holed = mitdb_window(data_dir, "101", 60.0, fs)
    for p in peaks:
        holed.samples[:, p : p + 2] = np.nan  # each R peak's sample and the next one lost
    (got,) = ecg_features([holed])
    assert got.present_fraction < 1.0
    assert got.beats_s.size == full.beats_s.size and np.allclose(got.beats_s, full.beats_s, atol=1.0 / fs)

    # a 7-s pause (the ECG replaced by a straight line between its ends), then samples lost at its middle
    a, b = int(1.1 * fs), int(7.5 * fs)
    paused = mitdb_window(data_dir, "101", 60.0, fs)
    paused.samples[:, a:b] = np.linspace(paused.samples[:, a], paused.samples[:, b], b - a, axis=1)
    (reference,) = ecg_features([paused])
    (pause,) = [d for d in reference.detections if d.kind == "asystole"]
    assert 6.5 <= pause.evidence["pause_s"] < 8.0  # so that either half of it is shorter than 4 s
    middle = round((pause.onset_s + pause.end_s) / 2 * fs)
    for lost, split in ((1, False), (2, False), (3, True)):  # 3 lost samples at 250 Hz: present ones 16 ms apart
        cut = EcgWindow(**{k: getattr(paused, k) for k in paused.__dataclass_fields__})
        cut.samples = paused.samples.copy()
        cut.samples[:, middle : middle + lost] = np.nan
        (f,) = ecg_features([cut])
        found = [d for d in f.detections if d.kind == "asystole"]
        assert (found == []) is split, (lost, found)
        assert split or (found[0].onset_s, found[0].end_s) == (pause.onset_s, pause.end_s)


@pytest.mark.parametrize("rate", [125, 250, 360, 500, 1000])
def test_only_isolated_gaps_within_the_nyquist_interval_of_the_monitoring_band_are_bridged(rate: int) -> None:
    for lost in range(1, 14):
        mask = np.zeros((1, rate), bool)
        mask[0, rate // 2 : rate // 2 + lost] = True
        spacing = (lost + 1) / rate  # between the present samples on either side
        assert (not _unbridged(mask, rate).any()) is (spacing <= BRIDGED_GAP_S), (rate, lost)
    degraded = np.zeros((1, rate), bool)
    degraded[0, 1::2] = True  # every other sample lost: no gap is isolated
    assert np.array_equal(_unbridged(degraded, rate), degraded)
    edge = np.zeros((1, rate), bool)
    edge[0, :1] = True  # nothing before it to bridge from
    assert np.array_equal(_unbridged(edge, rate), edge)


def test_sustained_vt_of_record_223_is_found_against_the_reference_beat_learned_before_it(data_dir: Path) -> None:
    """MIT-BIH 223 goes into sustained VT at 1043.2 s: no conducted beat in the window, whose template is ventricular.

    The windows before it are scored as the worker scores them (:class:`BeatReferences` asks for a new reference
    every :data:`REFERENCE_REFRESH_S` of event time and keeps what is learned); the VT windows are found only with
    the reference.
    """
    scorer, references = RuleScorer(), BeatReferences()
    for start in np.arange(960.0, 1044.0, 2.0):
        sample = AlignedSample(
            "mitdb-223", int(start * US), int((start + 10) * US), mitdb_window(data_dir, "223", start, 250)
        )
        references.attach(sample)
        reference = scorer.score_batch([sample])[0].beat_reference
        assert reference is None or sample.learn_reference  # learned only when asked
        references.learned(sample, reference)
    window = mitdb_window(data_dir, "223", 1044.0, 250)
    probe = AlignedSample("mitdb-223", int(1044 * US), int(1054 * US), window)
    references.attach(probe)
    learned = probe.beat_reference
    assert set(learned) == {"MLII", "V1"}

    def vt(start_s: float, known: dict[str, np.ndarray]) -> bool:
        window = mitdb_window(data_dir, "223", start_s, 250)
        scored = scorer.score_batch([AlignedSample("mitdb-223", 0, 10 * US, window, beat_reference=known)])[0]
        return "ventricular_tachycardia" in {d.kind for d in scored.detections}

    for start in (1044.0, 1046.0, 1048.0, 1050.0):
        assert vt(start, learned) and not vt(start, {}), start
    # From 1046 s the best lead is MLII, where the VT beat is like the reference; V1 shows it, and counts.
    assert ecg_features([mitdb_window(data_dir, "223", 1046.0, 250)])[0].lead == "MLII"
    assert vt(1046.0, {"V1": learned["V1"]}) and not vt(1046.0, {"MLII": learned["MLII"]})


def test_references_are_learned_and_used_per_window_in_a_mixed_batch_as_alone(data_dir: Path) -> None:
    """Rows of a batch (many windows, leads and rates) map to the right window's references and beats."""
    scorer = RuleScorer()
    teach = AlignedSample("mitdb-223", 0, 10 * US, mitdb_window(data_dir, "223", 990.0, 250), learn_reference=True)
    known = scorer.score_batch([teach])[0].beat_reference
    assert known is not None

    def batch() -> list[AlignedSample]:
        return [
            AlignedSample("a", 0, 10 * US, mitdb_window(data_dir, "101", 60.0, 360), learn_reference=True),
            AlignedSample("b", 0, 10 * US, mitdb_window(data_dir, "223", 1046.0, 250), beat_reference=known),
            AlignedSample("c", 0, 10 * US, None),
            AlignedSample("d", 0, 10 * US, mitdb_window(data_dir, "223", 990.0, 500), learn_reference=True),
            AlignedSample("e", 0, 10 * US, mitdb_window(data_dir, "223", 1048.0, 250), beat_reference=known),
        ]

    together = scorer.score_batch(batch())
    alone = [scorer.score_batch([s])[0] for s in batch()]
    assert "ventricular_tachycardia" in {d.kind for d in together[1].detections}
    assert together[0].beat_reference is not None and together[3].beat_reference is not None
    for a, b in zip(together, alone, strict=True):
        assert [(d.kind, d.onset_s) for d in a.detections] == [(d.kind, d.onset_s) for d in b.detections]
        assert (a.beat_reference is None) == (b.beat_reference is None)
        for lead in a.beat_reference or {}:
            assert np.array_equal(a.beat_reference[lead], b.beat_reference[lead])  # type: ignore[index]


def test_beat_references_keep_each_lead_and_ask_again_after_the_refresh_time() -> None:
    refs = BeatReferences(refresh_s=30.0)
    first = AlignedSample("p", 0, 10 * US, None)
    refs.attach(first)
    assert first.learn_reference and first.beat_reference == {}
    refs.learned(first, {"II": np.ones(3), "V5": np.zeros(3)})
    later = AlignedSample("p", 10 * US, 20 * US, None)
    refs.attach(later)
    assert not later.learn_reference and set(later.beat_reference) == {"II", "V5"}
    due = AlignedSample("p", 30 * US, 40 * US, None)
    refs.attach(due)
    assert due.learn_reference
    refs.learned(due, {"II": np.full(3, 2.0)})  # one lead relearned, the other kept
    refs.learned(due, None)
    after = AlignedSample("p", 40 * US, 50 * US, None)
    refs.attach(after)
    assert not after.learn_reference
    assert after.beat_reference["II"][0] == 2.0 and after.beat_reference["V5"][0] == 0.0
    refs.forget("p")
    assert len(refs) == 0


def test_beat_references_read_back_what_they_return_to_persist() -> None:
    """The record :meth:`BeatReferences.learned` returns is JSON and, loaded by a new store, gives the same beats."""
    store: dict[str, dict] = {}
    refs = BeatReferences(refresh_s=30.0, load=store.get)
    sample = AlignedSample("p", 0, 10 * US, None)
    refs.attach(sample)
    assert refs.learned(sample, None) is None
    beat = np.linspace(-1.0, 1.0, 64).astype(np.float32)
    record = refs.learned(sample, {"II": beat})
    assert record is not None
    store["p"] = json.loads(json.dumps(record))
    restarted = BeatReferences(refresh_s=30.0, load=store.get)
    later = AlignedSample("p", 10 * US, 20 * US, None)
    restarted.attach(later)
    assert not later.learn_reference  # learned 10 s of event time before, as before the restart
    assert np.allclose(later.beat_reference["II"], beat, atol=1e-6)
    other = AlignedSample("q", 0, 10 * US, None)
    restarted.attach(other)
    assert other.learn_reference and other.beat_reference == {}


def test_a_window_asked_to_learn_teaches_a_reference_only_when_its_rhythm_is_regular(data_dir: Path) -> None:
    regular = AlignedSample("p", 0, 10 * US, mitdb_window(data_dir, "101", 60.0, 250))
    regular.learn_reference = True
    af = AlignedSample("p", 0, 10 * US, mitdb_window(data_dir, "201", 120.0, 250))  # 201 opens in AF
    af.learn_reference = True
    not_asked = AlignedSample("p", 0, 10 * US, mitdb_window(data_dir, "101", 60.0, 250))
    scored = RuleScorer().score_batch([regular, af, not_asked])
    usable = {lead for lead, q in ecg_features([regular.ecg])[0].lead_quality.items() if q >= MIN_QUALITY}
    assert "MLII" in usable  # 101's V1 is below MIN_QUALITY here: learned from its usable lead only
    assert scored[0].beat_reference is not None and set(scored[0].beat_reference) == usable
    assert scored[1].beat_reference is None
    assert scored[2].beat_reference is None
