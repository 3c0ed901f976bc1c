"""Validation of the JSON input topics and the dead letters of what fails."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import topics
from streams.errors import InvalidEvent
from streams.ingest import Ingest, dead_letter
from streams.records import DeadLetter, VitalsEvent

NOW = datetime.now(UTC).replace(microsecond=0)


def vitals(**changes) -> dict:
    doc = {
        "schema": "cardiowatch.vitals",
        "version": 1,
        "patient_id": "p1",
        "source_id": "bed-3",
        "seq": 1,
        "time": NOW.isoformat(),
        "observations": [
            {"code": "8867-4", "value": 72, "unit": "/min"},
            {"code": "8480-6", "value": 118, "unit": "mm[Hg]", "method": "noninvasive"},
            {"code": "80288-4", "value_code": "A"},
        ],
    }
    doc.update(changes)
    return doc


IMAGING = {
    "schema": "cardiowatch.imaging",
    "version": 1,
    "patient_id": "p1",
    "source_id": "pacs",
    "study_id": "s1",
    "modality": "echo",
    "study_time": NOW.isoformat(),
    "findings": {"lvef_percent": 35, "cardiomegaly": True},
    "report_text": "Dilated LV, EF 35 %.",
}
NOTE = {
    "schema": "cardiowatch.note",
    "version": 1,
    "patient_id": "p1",
    "source_id": "ehr",
    "note_id": "n1",
    "time": NOW.isoformat(),
    "author_role": "nurse",
    "text": "Patient reports chest tightness.",
}


def encode(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def rejected(topic: str, value: bytes, key: bytes | None = b"p1") -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        Ingest().decode(topic, key, value)
    return info.value


def test_it_accepts_valid_events_of_every_json_topic():
    ingest = Ingest()
    record = ingest.decode(topics.VITALS, b"p1", encode(vitals()))
    assert isinstance(record, VitalsEvent) and record.observations[0].value == 72
    assert ingest.decode(topics.IMAGING, b"p1", encode(IMAGING)).findings.lvef_percent == 35
    assert ingest.decode(topics.NOTES, b"p1", encode(NOTE)).author_role == "nurse"


def test_it_accepts_unit_aliases_that_monitors_send():
    doc = vitals(observations=[{"code": "8867-4", "value": 72, "unit": "bpm"}])
    assert Ingest().decode(topics.VITALS, b"p1", encode(doc)).observations[0].unit == "bpm"


@pytest.mark.parametrize(
    ("value", "code", "words"),
    [
        (b"\xff\x00garbage", "not_json", "not valid JSON"),
        (b"[1, 2]", "not_object", "not an object"),
        (encode(vitals(version=2)), "unknown_version", "version 2"),
        (encode({**NOTE}), "wrong_schema", "cardiowatch.note"),
        (encode({k: v for k, v in vitals().items() if k != "patient_id"}), "missing_field", "patient_id"),
        (encode(vitals(seq="seven")), "invalid_field", "seq"),
        (encode(vitals(sequence=3)), "unknown_field", "sequence"),
        (
            b'{"schema":"cardiowatch.vitals","version":1,"patient_id":"p1","source_id":"b","seq":1,"time":"2026-01-01T00:00:00Z",'
            b'"observations":[{"code":"8867-4","value":NaN,"unit":"/min"}]}',
            "invalid_field",
            "finite",
        ),
        (
            encode(vitals(observations=[{"code": "8867-4", "value": 720, "unit": "/min"}])),
            "implausible_value",
            "impossible",
        ),
        (encode(vitals(observations=[{"code": "8310-5", "value": 98.6, "unit": "[degF]"}])), "wrong_unit", "Cel"),
        (encode(vitals(observations=[{"code": "1234-5", "value": 1, "unit": "/min"}])), "invalid_value", "1234-5"),
        (encode(vitals(time="2026-01-01T00:00:00")), "invalid_field", "timezone"),
        (encode(vitals(time=(NOW + timedelta(hours=2)).isoformat())), "future_timestamp", "future"),
    ],
)
def test_it_rejects_each_kind_of_bad_vitals_event_with_a_reason(value, code, words):
    err = rejected(topics.VITALS, value)
    assert err.code == code, err.reason
    assert words in err.reason


def test_it_rejects_an_event_keyed_by_another_patient():
    assert rejected(topics.NOTES, encode(NOTE), key=b"p2").code == "key_mismatch"


def test_it_rejects_an_event_without_a_key():
    assert rejected(topics.NOTES, encode(NOTE), key=None).code == "missing_key"


def test_it_rejects_a_tombstone():
    assert rejected(topics.IMAGING, None).code == "empty"  # type: ignore[arg-type]


def test_a_dead_letter_keeps_the_original_bytes_and_coordinates():
    value = b"\x00\x01not json"
    err = rejected(topics.VITALS, value)
    letter = dead_letter(topics.VITALS, 3, 1234, 1700000000000, b"p1", value, err)
    back = DeadLetter.model_validate_json(letter.model_dump_json(by_alias=True))
    assert base64.b64decode(back.value_b64) == value and base64.b64decode(back.key_b64) == b"p1"
    assert (back.source_topic, back.partition, back.offset) == ("vitals", 3, 1234)
    assert back.error == "not_json" and back.reason == err.reason


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([topics.VITALS, topics.IMAGING, topics.NOTES]), st.binary(max_size=400))
def test_random_bytes_on_json_topics_only_raise_invalid_event(topic, data):
    try:
        Ingest().decode(topic, b"p1", data)
    except InvalidEvent as err:
        assert err.reason


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([(topics.VITALS, vitals()), (topics.IMAGING, IMAGING), (topics.NOTES, NOTE)]), st.data())
def test_mutated_valid_events_decode_or_fail_with_a_reason(case, data):
    topic, doc = case
    doc = json.loads(json.dumps(doc))
    field = data.draw(st.sampled_from(sorted(doc)))
    if data.draw(st.booleans()):
        doc[field] = data.draw(JSON_VALUES)
    else:
        del doc[field]
    try:
        Ingest().decode(topic, b"p1", json.dumps(doc, allow_nan=True).encode())
    except InvalidEvent as err:
        assert err.reason
