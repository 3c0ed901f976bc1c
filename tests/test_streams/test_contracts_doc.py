"""docs/contracts.md and the code that implements the contract say the same thing.

The document is what integration engineers write gateways from, so every field of every JSON record, every
example, the worked waveform frame and every error code a reader can put in a dead letter is checked
against ``streams.records``, ``streams.waveform`` and ``streams.ingest``.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

import streams.ingest
import streams.waveform
from streams.errors import InvalidEvent
from streams.ingest import Ingest
from streams.records import (
    VITAL_CODES,
    Alert,
    AlertAck,
    DeadLetter,
    DetectionRecord,
    ImagingEvent,
    ImagingFindings,
    NoteEvent,
    Observation,
    RiskScore,
    VitalsEvent,
)
from streams.waveform import WaveformDecoder, encode_waveform

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = REPO / "docs" / "contracts.md"

#: Every JSON record model the document must describe field by field.
RECORD_MODELS: tuple[type[BaseModel], ...] = (
    VitalsEvent,
    Observation,
    ImagingEvent,
    ImagingFindings,
    NoteEvent,
    RiskScore,
    DetectionRecord,
    Alert,
    AlertAck,
    DeadLetter,
)
#: Top-level records (those with a ``schema`` field), by their schema name.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    cls.model_fields["schema_"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in RECORD_MODELS
    if "schema_" in cls.model_fields
}

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
FENCE = re.compile(r"^```(\w*)\s*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


# --- helpers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC_PATH.is_file(), f"{DOC_PATH} is missing"
    return DOC_PATH.read_text(encoding="utf-8")


def section(text: str, title_pattern: str) -> str:
    """Body of the one heading whose title matches ``title_pattern``, up to the next heading of its level
    or above."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if (m := HEADING.match(line)) and re.search(title_pattern, m.group(2))]
    assert len(starts) == 1, f"expected one heading matching {title_pattern!r} in the doc, found {len(starts)}"
    start = starts[0]
    level = len(HEADING.match(lines[start]).group(1))  # type: ignore[union-attr]
    end = len(lines)
    for j in range(start + 1, len(lines)):
        m = HEADING.match(lines[j])
        if m and len(m.group(1)) <= level:
            end = j
            break
    return "\n".join(lines[start + 1 : end])


def fenced(text: str, lang: str) -> list[str]:
    """Contents of the fenced code blocks of one language."""
    return [body for tag, body in FENCE.findall(text) if tag == lang]


def table_first_cells(text: str) -> set[str]:
    """Backticked first cells of the markdown table rows in ``text`` (``| `name` | ...``)."""
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, re.MULTILINE))


def wire_names(cls: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in cls.model_fields.items()]


# --- JSON records ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RECORD_MODELS, ids=lambda c: c.__name__)
def test_every_record_field_is_documented_in_its_record_section(doc: str, cls: type[BaseModel]) -> None:
    body = section(doc, rf"^Record `{cls.__name__}`$")
    documented = table_first_cells(body)
    missing = [name for name in wire_names(cls) if name not in documented]
    assert not missing, f"fields of {cls.__name__} missing from its table in docs/contracts.md: {missing}"
    unknown = documented - set(wire_names(cls))
    assert not unknown, f"{cls.__name__} table documents fields the model does not have: {sorted(unknown)}"


def test_schema_field_is_documented_by_its_wire_name_not_python_name(doc: str) -> None:
    for cls in SCHEMA_MODELS.values():
        documented = table_first_cells(section(doc, rf"^Record `{cls.__name__}`$"))
        assert "schema" in documented and "schema_" not in documented, cls.__name__


def test_every_json_example_with_a_known_schema_validates_against_its_model(doc: str) -> None:
    blocks = fenced(doc, "json")
    assert blocks, "no ```json blocks in docs/contracts.md"
    validated: dict[str, int] = {}
    for block in blocks:
        data = json.loads(block)  # every JSON block must at least be JSON
        if not isinstance(data, dict) or "schema" not in data:
            continue
        schema = data["schema"]
        assert schema in SCHEMA_MODELS, f"example names unknown schema {schema!r}"
        SCHEMA_MODELS[schema].model_validate_json(block)  # raises with the reason when it does not validate
        validated[schema] = validated.get(schema, 0) + 1
    without = sorted(set(SCHEMA_MODELS) - set(validated))
    assert not without, f"records without a JSON example in docs/contracts.md: {without}"


def test_dead_letter_example_carries_an_event_that_fails_with_its_stated_error(doc: str) -> None:
    letters = [json.loads(b) for b in fenced(doc, "json") if '"cardiowatch.dead_letter"' in b]
    assert len(letters) == 1
    letter = DeadLetter.model_validate(letters[0])
    key = base64.b64decode(letter.key_b64) if letter.key_b64 is not None else None
    value = base64.b64decode(letter.value_b64) if letter.value_b64 is not None else None
    with pytest.raises(InvalidEvent) as err:
        Ingest(max_future_s=300.0).decode(letter.source_topic, key, value)
    assert err.value.code == letter.error
    assert err.value.reason == letter.reason


def test_vital_codes_table_matches_vital_codes(doc: str) -> None:
    body = section(doc, r"^Accepted codes$")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\|\s*`([0-9]+-[0-9])`\s*\|.*$", body, re.MULTILINE)}
    assert set(rows) == set(VITAL_CODES), "the accepted-codes table and VITAL_CODES list different codes"
    for code, spec in VITAL_CODES.items():
        cells = [c.strip() for c in rows[code].strip("|").split("|")]
        assert cells[1] == spec.name, code
        if spec.unit is None:
            assert "value_code" in cells[2], code
            continue
        assert cells[2] == f"`{spec.unit}`", code
        assert set(re.findall(r"`([^`]+)`", cells[3])) == set(spec.aliases), code
        assert cells[4] == f"{spec.low:g} .. {spec.high:g}", code


# --- ecg.waveform worked example -----------------------------------------------------------------------


def worked_example(doc: str) -> tuple[bytes, dict[str, str], str]:
    body = section(doc, r"^\d+\.\d+ Worked example$")
    dumps = fenced(body, "hex")
    assert len(dumps) == 1, "the worked example needs exactly one ```hex block"
    data = bytearray()
    for line in dumps[0].strip().splitlines():
        m = re.fullmatch(r"([0-9a-f]{4})\s+((?:[0-9a-f]{2}\s*)+)", line.strip())
        assert m, f"not a hex dump line: {line!r}"
        assert int(m.group(1), 16) == len(data), f"offset {m.group(1)} does not follow the previous line"
        data += bytes.fromhex(m.group(2))
    values = {
        m.group(1): m.group(2) for m in re.finditer(r"^\|\s*([a-z_]+)\s*\|\s*`([^`]*)`(.*?)\|\s*$", body, re.MULTILINE)
    }
    channel_row = re.search(r"^\|\s*channel\s*\|(.*)\|\s*$", body, re.MULTILINE)
    assert channel_row, "the worked example does not state its channel"
    return bytes(data), values, channel_row.group(1)


def test_hex_example_decodes_to_the_values_the_doc_states(doc: str) -> None:
    data, values, channel = worked_example(doc)
    chunk = WaveformDecoder(max_future_s=None).decode(data, key=values["patient_id"].encode())
    assert chunk.patient_id == values["patient_id"]
    assert chunk.source_id == values["source_id"]
    assert chunk.seq == int(values["seq"])
    assert chunk.start_time_us == int(values["start_time_us"])
    assert chunk.sampling_rate == float(values["sampling_rate"])
    assert chunk.samples.tolist() == [json.loads(values["samples"])]
    assert len(chunk.channels) == 1
    c = chunk.channels[0]
    assert re.findall(r"`([^`]*)`", channel) == [c.name, c.kind, c.unit, f"{c.gain:.1f}", str(c.baseline)]
    stated = f"{len(data)} bytes"
    assert stated in section(doc, r"^\d+\.\d+ Worked example$"), f"the doc should say the frame is {stated}"


def test_hex_example_reencodes_to_the_same_bytes(doc: str) -> None:
    data, _, _ = worked_example(doc)
    chunk = WaveformDecoder(max_future_s=None).decode(data)
    assert encode_waveform(chunk) == data
    rebuilt = streams.waveform.WaveformChunk(
        chunk.patient_id,
        chunk.source_id,
        chunk.seq,
        chunk.start_time_us,
        chunk.sampling_rate,
        chunk.channels,
        np.array(chunk.samples.tolist(), np.int16),
    )
    assert encode_waveform(rebuilt) == data


def test_hex_example_annotation_covers_the_dump_byte_for_byte(doc: str) -> None:
    data, _, _ = worked_example(doc)
    body = section(doc, r"^\d+\.\d+ Worked example$")
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`([0-9a-f ]+)`\s*\|", body, re.MULTILINE)
    assert rows, "the worked example has no field-by-field table"
    joined = bytearray()
    for offset, hex_bytes in rows:
        assert int(offset) == len(joined), f"annotated offset {offset} should be {len(joined)}"
        joined += bytes.fromhex(hex_bytes)
    assert bytes(joined) == data


# --- error codes -----------------------------------------------------------------------------------------


def raised_error_codes() -> set[str]:
    """Every error code streams/ingest.py and streams/waveform.py can put in a dead letter."""
    codes: set[str] = set()
    for module in (streams.ingest, streams.waveform):
        source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
        codes |= set(re.findall(r'InvalidEvent\(\s*"([a-z_]+)"', source))
    ingest_source = Path(streams.ingest.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
    mapping = re.search(r'code = (\{[^{}]*\})\.get\(\s*\w+,\s*"([a-z_]+)"\s*\)', ingest_source)
    assert mapping, "ingest._explain no longer maps pydantic error types with a dict literal: update this test"
    mapped = re.findall(r'"[a-z_]+":\s*"([a-z_]+)"', mapping.group(1))
    assert mapped
    codes |= set(mapped) | {mapping.group(2)}  # the dict's values and the .get() default
    codes |= set(re.findall(r'^\s*code = "([a-z_]+)"', ingest_source, re.MULTILINE))
    codes |= {"implausible_value", "wrong_unit"}
    return codes


def test_error_code_collection_finds_the_codes_of_both_modules() -> None:
    codes = raised_error_codes()
    assert {"bad_magic", "unknown_lead", "not_json", "missing_field", "unknown_field", "invalid_field"} <= codes
    assert len(codes) >= 25


def test_every_error_code_raised_by_ingest_and_waveform_is_documented(doc: str) -> None:
    documented = table_first_cells(section(doc, r"^Error codes$"))
    missing = sorted(raised_error_codes() - documented)
    assert not missing, f"error codes missing from the 'Error codes' table of docs/contracts.md: {missing}"
