"""A running worker routes every kind of malformed event to its dead-letter topic; good events keep flowing."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from streams import topics
from streams.kafka import consumer, producer
from streams.settings import Settings
from streams.waveform import Channel, WaveformChunk, encode_waveform
from tests.test_e2e.conftest import metric, start_worker

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory) -> Iterator[int]:
    running = start_worker(settings, "dlq-test", tmp_path_factory.mktemp("state"))
    try:
        yield running.port
    finally:
        running.stop()


LEAD_II = (Channel("II", "ecg", "mV", 200.0, 0),)


def ecg(patient: str, seq: int, channels=LEAD_II, n: int = 250, start: datetime = NOW) -> bytes:
    samples = np.arange(len(channels) * n, dtype=np.int16).reshape(len(channels), n) % 100
    return encode_waveform(WaveformChunk(patient, "mon", seq, int(start.timestamp() * 1e6), 250.0, channels, samples))


def vitals(patient: str, **obs) -> bytes:
    observation = {"code": "8867-4", "value": 70, "unit": "/min", **obs}
    return json.dumps(
        {
            "schema": "cardiowatch.vitals",
            "version": 1,
            "patient_id": patient,
            "source_id": "mon",
            "seq": 0,
            "time": NOW.isoformat(),
            "observations": [observation],
        }
    ).encode()


def bad_events(patient: str) -> list[tuple[str, bytes, str]]:
    """(topic, value, expected error code) for every kind of malformed input."""
    good = ecg(patient, 0)
    version2 = bytearray(good)
    version2[4] = 2
    note = {
        "schema": "cardiowatch.note",
        "version": 1,
        "patient_id": patient,
        "source_id": "ehr",
        "note_id": "n",
        "time": NOW.isoformat(),
        "author_role": "nurse",
        "text": "t",
    }
    return [
        (topics.ECG_WAVEFORM, b"\x00\x01\x02 not a frame", "truncated"),
        (topics.ECG_WAVEFORM, b'{"patient_id": "dlq-patient", "samples": [0.1, 0.2, 0.3, 0.4]}', "bad_magic"),
        (topics.ECG_WAVEFORM, bytes(version2), "unknown_version"),
        (topics.ECG_WAVEFORM, good[:-7], "length_mismatch"),
        (topics.ECG_WAVEFORM, ecg(patient, 1, channels=(Channel("Q7", "ecg", "mV", 200.0, 0),)), "unknown_lead"),
        (topics.ECG_WAVEFORM, ecg(patient, 2, channels=(Channel("II", "ecg", "mV", 0.01, 0),)), "implausible_value"),
        (topics.ECG_WAVEFORM, ecg(patient, 3, start=NOW + timedelta(days=2)), "future_timestamp"),
        (topics.VITALS, b"{not json", "not_json"),
        (topics.VITALS, vitals(patient).replace(b'"version": 1', b'"version": 9'), "unknown_version"),
        (topics.VITALS, vitals(patient).replace(b'"seq": 0, ', b""), "missing_field"),
        (topics.VITALS, vitals(patient, value="fast"), "invalid_field"),
        (topics.VITALS, vitals(patient).replace(b'"value": 70', b'"value": NaN'), "invalid_field"),
        (topics.VITALS, vitals(patient, value=900), "implausible_value"),
        (topics.VITALS, vitals(patient, code="8310-5", value=98.6, unit="[degF]"), "wrong_unit"),
        (
            topics.NOTES,
            json.dumps({**note, "time": (NOW + timedelta(days=1)).isoformat()}).encode(),
            "future_timestamp",
        ),
        (topics.IMAGING, json.dumps({"schema": "cardiowatch.imaging", "version": 1}).encode(), "missing_field"),
    ]


def test_each_malformed_event_lands_in_its_dead_letter_topic_while_good_events_flow(settings, worker):
    patient = "dlq-patient"
    cases = bad_events(patient)
    before = {t: metric(worker, t, "accepted") for t in (topics.ECG_WAVEFORM, topics.VITALS)}
    with producer(settings) as prod:
        for i, (topic, value, _) in enumerate(cases):
            prod.send(topic, key=patient.encode(), value=value)
            prod.send(topics.ECG_WAVEFORM, key=b"good-patient", value=ecg("good-patient", 100 + i))
            prod.send(topics.VITALS, key=b"good-patient", value=vitals("good-patient"))
        prod.send(topics.VITALS, key=b"someone-else", value=vitals(patient))  # key differs from patient id
        prod.send(topics.VITALS, key=None, value=vitals(patient))
    expected = [(t, code) for t, _, code in cases] + [(topics.VITALS, "key_mismatch"), (topics.VITALS, "missing_key")]

    cons = consumer(settings, *topics.DLQ_TOPICS, auto_offset_reset="earliest")
    letters, deadline = [], time.monotonic() + 60
    while len(letters) < len(expected) and time.monotonic() < deadline:
        for messages in cons.poll(timeout_ms=500).values():
            letters += [
                (m.key, json.loads(m.value)) for m in messages if m.key in (patient.encode(), b"someone-else", None)
            ]
    cons.close()

    got = sorted((doc["source_topic"], doc["error"]) for _, doc in letters)
    assert got == sorted(expected)
    sent = {(t, v) for t, v, _ in cases}
    for key, doc in letters:
        assert doc["reason"] and doc["offset"] >= 0 and doc["partition"] >= 0
        assert doc["schema"] == "cardiowatch.dead_letter"
        if key == patient.encode():
            assert (doc["source_topic"], base64.b64decode(doc["value_b64"])) in sent  # original bytes kept
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        flowed = {t: metric(worker, t, "accepted") - before[t] for t in before}
        if all(n >= len(cases) for n in flowed.values()):
            break
        time.sleep(0.5)
    assert flowed[topics.ECG_WAVEFORM] >= len(cases) and flowed[topics.VITALS] >= len(cases)
