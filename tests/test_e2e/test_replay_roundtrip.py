"""Replay through the real embedded broker: every sample arrives, in order, exactly as recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import wfdb

from streams import topics
from streams.broker import EmbeddedBroker
from streams.capture import capture, capture_events
from streams.kafka import consumer, ensure_topics, producer
from streams.replay import parse_start, recording_events, replay
from streams.settings import Settings
from streams.sources import read_recording
from streams.waveform import WaveformDecoder

START = "2026-01-01T00:00:00Z"


def consume_patients(
    settings: Settings, wanted: set[str], expected: int, topic=topics.ECG_WAVEFORM, timeout_s: float = 120.0
) -> dict[str, list]:
    """Every chunk of the wanted patients on the topic, in partition order, decoded."""
    decoder = WaveformDecoder(max_future_s=None)
    out: dict[str, list] = defaultdict(list)
    cons = consumer(settings, topic, auto_offset_reset="earliest")
    deadline, got = time.monotonic() + timeout_s, 0
    try:
        while got < expected and time.monotonic() < deadline:
            for messages in cons.poll(timeout_ms=500, max_records=5000).values():
                for m in messages:
                    patient = m.key.decode()
                    if patient in wanted:
                        out[patient].append(decoder.decode(m.value, m.key))
                        got += 1
    finally:
        cons.close()
    return out


def test_replaying_record_101_as_fast_as_possible_delivers_every_sample_in_order(settings, data_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "replay",
            str(data_dir / "mitdb" / "101"),
            "--speed",
            "max",
            "--start",
            START,
            "--patient-map",
            "/dev/null",
            "--no-progress",
        ],
        env={"CARDIOWATCH_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "patients      1" in result.stdout and "failed sends  0" in result.stdout
    record = wfdb.rdrecord(str(data_dir / "mitdb" / "101"), physical=False)
    expected_chunks = -(-record.sig_len // 360)
    chunks = consume_patients(settings, {"mitdb-101"}, expected_chunks)["mitdb-101"]
    assert len(chunks) == expected_chunks
    assert [c.seq for c in chunks] == list(range(expected_chunks))
    start_us = int(parse_start(START).timestamp() * 1e6)
    assert [c.start_time_us for c in chunks] == [start_us + k * 1_000_000 for k in range(expected_chunks)]
    received = np.concatenate([c.samples for c in chunks], axis=1)
    np.testing.assert_array_equal(received, record.d_signal.T)
    assert [c.name for c in chunks[0].channels] == ["MLII", "V1"]


def test_twenty_patients_replayed_concurrently_arrive_complete_and_in_order(settings, data_dir):
    names = (data_dir / "mitdb" / "RECORDS").read_text().split()[:20]
    recordings = {f"twenty-{n}": read_recording(data_dir / "mitdb" / n, max_duration_s=300) for n in names}
    start = parse_start(START)
    with producer(settings) as prod:
        summary = replay(
            prod,
            [recording_events(r, p, start, 1.0) for p, r in recordings.items()],
            float("inf"),
            patients=len(recordings),
            progress=False,
        )
    assert summary.failed == 0 and summary.events[topics.ECG_WAVEFORM] == 20 * 300
    got = consume_patients(settings, set(recordings), 20 * 300)
    assert set(got) == set(recordings)
    for patient, rec in recordings.items():
        chunks = got[patient]
        assert [c.seq for c in chunks] == list(range(300)), patient
        np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks], axis=1), rec.segments[0].samples)


def test_numerics_of_a_bedside_record_become_vitals_events(settings, data_dir):
    path = data_dir / "waveform_streams" / "multi-segment" / "s25047" / "s25047-2704-05-04-10-44"
    rec = read_recording(path, max_duration_s=600)
    with producer(settings) as prod:
        summary = replay(
            prod, [recording_events(rec, "vitals-s25047", parse_start(START), 1.0)], float("inf"), progress=False
        )
    assert summary.events[topics.VITALS] == len(rec.vitals) == 10
    cons = consumer(settings, topics.VITALS, auto_offset_reset="earliest")
    docs, deadline = [], time.monotonic() + 30
    while len(docs) < 10 and time.monotonic() < deadline:
        for messages in cons.poll(timeout_ms=500).values():
            docs += [json.loads(m.value) for m in messages if m.key == b"vitals-s25047"]
    cons.close()
    assert [d["seq"] for d in docs] == list(range(10))
    assert docs[1]["time"] == "2026-01-01T00:01:00Z"
    heart_rates = [o["value"] for d in docs for o in d["observations"] if o["code"] == "8867-4"]
    numerics = wfdb.rdrecord(str(path) + "n", sampto=10)
    expected = numerics.p_signal[:, numerics.sig_name.index("HR")]
    np.testing.assert_allclose(heart_rates, expected, atol=1e-3)


def test_a_capture_plays_back_byte_for_byte(data_dir, tmp_path: Path):
    rec = read_recording(data_dir / "waveform_streams" / "a103l", max_duration_s=60)
    with EmbeddedBroker(port=0) as first:
        conf = Settings(bootstrap_servers=first.bootstrap_servers)
        ensure_topics(conf)
        with producer(conf) as prod:
            replay(prod, [recording_events(rec, "cap-a103l", parse_start(START), 1.0)], float("inf"), progress=False)
        cons = consumer(conf, topics.ECG_WAVEFORM, auto_offset_reset="earliest")
        count = capture(cons, tmp_path / "incident.jsonl", [topics.ECG_WAVEFORM], max_messages=60, idle_s=10)
        cons.close()
        assert count == 60
        original = [(o.key, o.value) for o in capture_events(tmp_path / "incident.jsonl")]
    with EmbeddedBroker(port=0) as second:
        conf = Settings(bootstrap_servers=second.bootstrap_servers)
        ensure_topics(conf)
        with producer(conf) as prod:
            summary = replay(prod, [capture_events(tmp_path / "incident.jsonl")], float("inf"), progress=False)
        assert summary.events[topics.ECG_WAVEFORM] == 60
        cons = consumer(conf, topics.ECG_WAVEFORM, auto_offset_reset="earliest")
        replayed, deadline = [], time.monotonic() + 30
        while len(replayed) < 60 and time.monotonic() < deadline:
            for messages in cons.poll(timeout_ms=500).values():
                replayed += [(m.key, m.value) for m in messages]
        cons.close()
    assert replayed == original  # one patient, one partition: same bytes in the same order
