"""Validation of input events where they enter, and the dead letters of those that fail.

:func:`Ingest.decode` turns the raw bytes of any input topic into its record or raises
:class:`~streams.errors.InvalidEvent`; :func:`dead_letter` keeps a failed event whole (original bytes,
topic, partition, offset) with the reason. Neither ever lets another exception out: every input is
either a record or a dead letter.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Final

import pydantic

from streams import topics
from streams.errors import InvalidEvent
from streams.records import DeadLetter, ImagingEvent, NoteEvent, Record, VitalsEvent
from streams.waveform import WaveformChunk, WaveformDecoder

#: Record class and schema name of every JSON input topic.
JSON_INPUTS: Final[dict[str, type[Record]]] = {
    topics.VITALS: VitalsEvent,
    topics.IMAGING: ImagingEvent,
    topics.NOTES: NoteEvent,
}
SCHEMA_NAMES: Final = {
    cls: cls.model_fields["schema_"].annotation.__args__[0]  # type: ignore[union-attr]
    for cls in JSON_INPUTS.values()
}


class Ingest:
    """Decodes and validates the events of every input topic.

    Args:
        max_future_s: Events timed further than this ahead of the wall clock are rejected.
    """

    def __init__(self, max_future_s: float = 300.0) -> None:
        self.max_future_s = max_future_s
        self.waveform = WaveformDecoder(max_future_s=max_future_s)

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> WaveformChunk | Record:
        """Return the validated record of one input message, or raise :class:`InvalidEvent`."""
        if value is None:
            raise InvalidEvent("empty", "message has no value (a tombstone is not an event)")
        if key is None:
            raise InvalidEvent("missing_key", "message has no key; key every event by its patient id")
        if topic == topics.ECG_WAVEFORM:
            return self.waveform.decode(value, key)
        cls = JSON_INPUTS.get(topic)
        if cls is None:
            raise InvalidEvent("unknown_topic", f"topic {topic!r} is not an input topic")
        record = _decode_json(cls, value)
        patient_id: str = record.patient_id  # type: ignore[attr-defined]  # every JSON input record has one
        if key != patient_id.encode():
            raise InvalidEvent(
                "key_mismatch",
                f"message key {key!r} differs from patient id {patient_id!r}; key every event by its patient id",
            )
        when: datetime = getattr(record, "time", None) or record.study_time  # type: ignore[attr-defined]
        ahead = when.timestamp() - time.time()
        if ahead > self.max_future_s:
            raise InvalidEvent(
                "future_timestamp",
                f"event is timed {ahead:.0f} s in the future (limit {self.max_future_s:.0f} s); check the device clock",
            )
        return record


def _decode_json(cls: type[Record], value: bytes) -> Record:
    try:
        return cls.model_validate_json(value)
    except pydantic.ValidationError as err:
        raise _explain(cls, value, err) from err


def _explain(cls: type[Record], value: bytes, err: pydantic.ValidationError) -> InvalidEvent:
    errors = err.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return InvalidEvent("not_json", f"value is not valid JSON: {first['msg']}")
    if kind == "model_type":
        return InvalidEvent("not_object", "value is JSON but not an object")
    loc = {tuple(e["loc"]) for e in errors}
    if ("schema",) in loc or ("version",) in loc:
        try:
            doc = json.loads(value)
        except ValueError:
            doc = {}
        expected = SCHEMA_NAMES[cls]
        if isinstance(doc, dict) and doc.get("schema") == expected and ("version",) in loc:
            return InvalidEvent(
                "unknown_version",
                f"{expected} version {doc.get('version')!r} is unknown; this reader accepts version 1",
            )
        if isinstance(doc, dict) and ("schema",) in loc:
            return InvalidEvent(
                "wrong_schema", f"schema {doc.get('schema')!r} does not belong on this topic; expected {expected!r}"
            )
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "event"
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field", "value_error": "invalid_value"}.get(
        kind, "invalid_field"
    )
    if any("physiologically impossible" in e["msg"] for e in errors):
        code = "implausible_value"
    elif any("in unit" in e["msg"] for e in errors):
        code = "wrong_unit"
    return InvalidEvent(code, "; ".join(parts) + more)


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    error: InvalidEvent,
) -> DeadLetter:
    """The dead-letter record of an input message that failed validation."""
    return DeadLetter(
        schema="cardiowatch.dead_letter",
        version=1,
        source_topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        key_b64=_b64(key),
        value_b64=_b64(value),
        error=error.code,
        reason=error.reason,
        detected_at=datetime.now(UTC),
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()
