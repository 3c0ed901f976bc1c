"""Recording readers and replay event times, on the real data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import scipy.io
import wfdb

from streams import topics
from streams.replay import parse_start, recording_events
from streams.sources import expand, read_recording
from streams.waveform import MISSING, WaveformDecoder


def test_a_wfdb_record_is_read_in_exact_digital_units(data_dir):
    rec = read_recording(data_dir / "mitdb" / "208")
    ref = wfdb.rdrecord(str(data_dir / "mitdb" / "208"), physical=False)
    assert rec.sampling_rate == 360 and len(rec.segments) == 1
    np.testing.assert_array_equal(rec.segments[0].samples, ref.d_signal.T)
    assert [(c.name, c.gain, c.baseline) for c in rec.segments[0].channels] == [
        ("MLII", 200.0, 1024),
        ("V1", 200.0, 1024),
    ]


def test_a_multi_segment_record_is_cut_at_segment_boundaries_and_keeps_each_segment_scale(data_dir):
    path = data_dir / "waveform_streams" / "multi-segment" / "s25047" / "s25047-2704-05-04-10-44"
    rec = read_recording(path, max_duration_s=600)
    record = wfdb.rdrecord(str(path), physical=False, m2s=False, sampto=75_000)
    real = [s for s in record.segments[1:] if s is not None]
    assert len(rec.segments) == len(real)
    for segment, source in zip(rec.segments, real, strict=True):
        assert [c.gain for c in segment.channels] == list(source.adc_gain)
        digital = source.d_signal.T
        expected = np.where(digital == -128, MISSING[1], digital)  # format 80 marks invalid samples with -128
        np.testing.assert_array_equal(segment.samples, expected)
    bounds = {(s.start, s.start + s.samples.shape[1]) for s in rec.segments}
    for pos, _, samples in rec.chunks(1.0):
        assert any(lo <= pos and pos + samples.shape[1] <= hi for lo, hi in bounds)


def test_a_span_that_is_all_gap_reads_as_silence_with_its_vitals(data_dir):
    path = data_dir / "waveform_streams" / "multi-segment" / "s25047" / "s25047-2704-05-04-10-44"
    rec = read_recording(path, max_duration_s=120)  # the record opens with a 206-s gap
    assert rec.segments == [] and list(rec.chunks(1.0)) == []
    assert len(rec.vitals) == 2


def test_invalid_wfdb_samples_become_the_missing_marker(data_dir):
    rec = read_recording(data_dir / "waveform_streams" / "03700181")
    ref = wfdb.rdrecord(str(data_dir / "waveform_streams" / "03700181"), physical=False)
    invalid = ref.d_signal.T == -2048  # format 212
    assert invalid.any()
    assert (rec.segments[0].samples[invalid] == MISSING[1]).all()


def test_a_cinc_mat_without_header_reads_as_lead_i_at_300_hz(data_dir, tmp_path):
    mat = tmp_path / "A00001.mat"
    mat.write_bytes((data_dir / "cinc2017" / "A00001.mat").read_bytes())
    rec = read_recording(mat)
    expected = scipy.io.loadmat(str(data_dir / "cinc2017" / "A00001.mat"))["val"]
    assert rec.sampling_rate == 300 and rec.segments[0].channels[0].name == "I"
    np.testing.assert_array_equal(rec.segments[0].samples, expected)
    with_header = read_recording(data_dir / "cinc2017" / "A00001")
    np.testing.assert_array_equal(with_header.segments[0].samples, expected)


def test_a_csv_with_a_time_column_gives_its_rate_and_marks_empty_cells_missing(tmp_path):
    path = tmp_path / "bed.csv"
    path.write_text("time_s,II,V5\n0.000,0.125,-0.5\n0.004,0.250,\n0.008,0.375,nan\n")
    rec = read_recording(path)
    assert rec.sampling_rate == 250
    assert rec.segments[0].samples.tolist() == [[125, 250, 375], [-500, MISSING[1], MISSING[1]]]


def test_folders_expand_to_their_records_without_numerics_companions(data_dir):
    listed = expand([data_dir / "mitdb"])
    assert len(listed) == len((data_dir / "mitdb" / "RECORDS").read_text().split())
    names = {p.name for p in expand([data_dir / "waveform_streams"])}
    assert {"a103l", "v102s", "03700181"} <= names


def test_replayed_event_times_are_deterministic_from_the_start_time(data_dir):
    rec = read_recording(data_dir / "waveform_streams" / "a103l", max_duration_s=10)
    start = parse_start("2026-03-01T12:00:00Z")
    first = list(recording_events(rec, "p", start, 2.0))
    again = list(recording_events(rec, "p", start, 2.0))
    assert first == again and len(first) == 5
    decoder = WaveformDecoder(max_future_s=None)
    chunks = [decoder.decode(o.value) for o in first if o.topic == topics.ECG_WAVEFORM]
    assert [c.start_time_us for c in chunks] == [
        int((start + timedelta(seconds=2 * k)).timestamp() * 1e6) for k in range(5)
    ]
    assert all(o.send_us == c.end_time_us for o, c in zip(first, chunks, strict=True))
