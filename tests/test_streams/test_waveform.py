"""The ecg.waveform frame: round trip, every rejection, and fuzzing."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import InvalidEvent
from streams.waveform import Channel, WaveformChunk, WaveformDecoder, encode_waveform

NOW_US = 1_800_000_000_000_000
II = Channel("II", "ecg", "mV", 200.0, 0)
V5 = Channel("V5", "ecg", "mV", 200.0, 0)


def chunk(samples=None, channels=(II, V5), rate=360.0, start=NOW_US - 1_000_000, patient="p1") -> WaveformChunk:
    if samples is None:
        samples = (np.arange(len(channels) * 360, dtype=np.int16).reshape(len(channels), 360) % 400) - 200
    return WaveformChunk(patient, "monitor-1", 42, start, rate, tuple(channels), samples)


def decode(data: bytes, key: bytes | None = None) -> WaveformChunk:
    return WaveformDecoder().decode(data, key, now_us=NOW_US)


def test_it_round_trips_samples_and_metadata_exactly():
    original = chunk()
    back = decode(encode_waveform(original), b"p1")
    assert back.patient_id == "p1" and back.source_id == "monitor-1" and back.seq == 42
    assert back.start_time_us == original.start_time_us and back.sampling_rate == 360.0
    assert back.channels == original.channels
    assert back.samples.dtype == np.int16
    np.testing.assert_array_equal(back.samples, original.samples)


def test_it_round_trips_int32_samples_and_marks_missing_ones():
    samples = np.array([[70000, -(2**31), 5]], np.int32)
    back = decode(encode_waveform(chunk(samples, channels=(Channel("ABP", "abp", "mmHg", 1000.0, 0),))))
    np.testing.assert_array_equal(back.samples, samples)
    assert back.missing_mask().tolist() == [[False, True, False]]
    physical = back.physical()
    assert physical[0, 0] == pytest.approx(70.0) and np.isnan(physical[0, 1])


def test_it_converts_to_physical_units_with_baseline_and_gain():
    c = Channel("MLII", "ecg", "mV", 200.0, 1024)
    back = decode(encode_waveform(chunk(np.array([[1024, 1224, 824]], np.int16), channels=(c,))))
    assert back.physical().tolist() == [[0.0, 1.0, -1.0]]


def test_it_canonicalises_lead_names():
    back = decode(encode_waveform(chunk(channels=(Channel("avr", "ecg", "mV", 200.0, 0), II))))
    assert back.channels[0].name == "aVR"


def test_the_decoder_cache_returns_the_same_channels_for_repeated_sources():
    decoder = WaveformDecoder()
    data = encode_waveform(chunk())
    first, second = decoder.decode(data, now_us=NOW_US), decoder.decode(data, now_us=NOW_US)
    assert first.channels is second.channels


def expect(code: str, data: bytes, key: bytes | None = None) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(data, key)
    assert info.value.code == code, info.value.reason
    return info.value.reason


def test_it_rejects_bytes_that_are_not_a_frame():
    assert "magic" in expect("bad_magic", b"{" + encode_waveform(chunk())[1:])
    expect("truncated", b"CWWF\x01")


def test_it_rejects_an_unknown_version():
    data = bytearray(encode_waveform(chunk()))
    data[4] = 2
    assert "version 2" in expect("unknown_version", bytes(data))


def test_it_rejects_a_sample_count_that_does_not_match_the_channels():
    data = encode_waveform(chunk())
    assert "2 channels x 360 samples" in expect("length_mismatch", data[:-2])
    assert "2 channels x 360 samples" in expect("length_mismatch", data + b"\x00\x00")
    wrong_n = bytearray(data)
    struct.pack_into("<I", wrong_n, 8, 361)
    assert "361 samples" in expect("length_mismatch", bytes(wrong_n))


def test_it_rejects_unknown_lead_names_and_kinds_and_wrong_units():
    assert "'X9'" in expect("unknown_lead", encode_waveform(chunk(channels=(Channel("X9", "ecg", "mV", 200.0, 0), II))))
    expect("unknown_signal_kind", encode_waveform(chunk(channels=(Channel("EEG", "eeg", "uV", 1.0, 0), II))))
    reason = expect("wrong_unit", encode_waveform(chunk(channels=(Channel("II", "ecg", "uV", 200.0, 0), V5))))
    assert "mV" in reason


def test_it_rejects_implausible_values():
    expect("implausible_value", encode_waveform(chunk(rate=float("nan"))))
    expect("implausible_value", encode_waveform(chunk(rate=5.0)))
    expect("implausible_value", encode_waveform(chunk(channels=(Channel("II", "ecg", "mV", float("nan"), 0), V5))))
    # microvolts declared as millivolts: 1 mV = 1000 "mV" at gain 1
    too_big = chunk(np.full((2, 360), 1000, np.int16), channels=(Channel("II", "ecg", "mV", 1.0, 0), V5))
    assert "outside the possible" in expect("implausible_value", encode_waveform(too_big))


def test_it_accepts_a_lead_whose_samples_are_all_missing():
    samples = np.full((2, 360), -32768, np.int16)
    assert decode(encode_waveform(chunk(samples))).missing_mask().all()


def test_it_rejects_timestamps_far_in_the_future_and_keys_of_another_patient():
    expect("future_timestamp", encode_waveform(chunk(start=NOW_US + 3600 * 1_000_000)))
    expect("key_mismatch", encode_waveform(chunk()), key=b"p2")


def test_it_rejects_duplicate_channels_and_bad_ids():
    expect("duplicate_channel", encode_waveform(chunk(channels=(II, II))))
    expect("bad_id", encode_waveform(chunk(patient=" p1")))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_as_anything_but_invalid_event(data: bytes):
    with contextlib.suppress(InvalidEvent):
        decode(data)


VALID = encode_waveform(chunk())


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, len(VALID)),
)
def test_mutated_frames_decode_or_fail_with_a_reason(edits, cut):
    data = bytearray(VALID)
    for pos, byte in edits:
        data[pos] = byte
    try:
        decode(bytes(data[:cut]) if cut < len(VALID) // 2 else bytes(data))
    except InvalidEvent as err:
        assert err.reason and err.code


def test_a_long_lived_decoder_rejects_a_truncated_frame_that_matches_a_cached_layout():
    decoder = WaveformDecoder()
    frame = encode_waveform(chunk(channels=(II,), patient="p12"))
    decoder.decode(frame, now_us=NOW_US)  # fills the layout cache
    with pytest.raises(InvalidEvent) as err:
        decoder.decode(frame[: len(frame) // 2], now_us=NOW_US)
    assert err.value.code == "length_mismatch"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, len(VALID) - 1))
def test_a_warm_decoder_never_lets_a_cut_frame_escape(cut: int):
    decoder = WaveformDecoder()
    decoder.decode(VALID, now_us=NOW_US)
    with pytest.raises(InvalidEvent):
        decoder.decode(VALID[:cut], now_us=NOW_US)


def test_a_bytearray_value_decodes_like_bytes():
    assert decode(bytearray(VALID)).samples.tolist() == decode(VALID).samples.tolist()
