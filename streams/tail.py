"""Readable one-line renderings of the events of any topic, for ``cardiowatch tail``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from streams import topics
from streams.errors import InvalidEvent
from streams.waveform import WaveformDecoder

_decoder = WaveformDecoder(max_future_s=None)


def render(topic: str, key: bytes | None, value: bytes | None) -> str:
    """One line describing a message of ``topic``; never raises."""
    who = key.decode(errors="replace") if key else "-"
    if value is None:
        return f"{who:<14} (no value)"
    if topic == topics.ECG_WAVEFORM:
        try:
            chunk = _decoder.decode(value)
        except InvalidEvent as err:
            return f"{who:<14} INVALID {err.code}: {err.reason}"
        start = datetime.fromtimestamp(chunk.start_time_us / 1e6, UTC).strftime("%H:%M:%S.%f")[:-3]
        phys = chunk.physical()
        leads = " ".join(
            f"{c.name}[{np.nanmin(row):+.2f}..{np.nanmax(row):+.2f} {c.unit}]"
            if np.isfinite(row).any()
            else f"{c.name}[missing]"
            for c, row in zip(chunk.channels, phys, strict=True)
        )
        return f"{who:<14} #{chunk.seq:<6} {start} {chunk.sampling_rate:g} Hz x {chunk.samples.shape[1]:<5} {leads}"
    try:
        doc = json.loads(value)
    except ValueError:
        return f"{who:<14} NOT JSON ({len(value)} bytes)"
    if not isinstance(doc, dict):
        return f"{who:<14} {doc!r}"
    schema = doc.get("schema", "?")
    if schema == "cardiowatch.dead_letter":
        return (
            f"{who:<14} DLQ {doc.get('error')} from {doc.get('source_topic')}[{doc.get('partition')}]"
            f"@{doc.get('offset')}: {doc.get('reason')}"
        )
    if schema == "cardiowatch.vitals":
        obs = " ".join(
            f"{o.get('code')}={o.get('value', o.get('value_code'))}{o.get('unit') or ''}"
            for o in doc.get("observations", [])
        )
        return f"{who:<14} {doc.get('time')} vitals {obs}"
    fields = {k: v for k, v in doc.items() if k not in ("schema", "version", "patient_id")}
    return f"{who:<14} {schema.removeprefix('cardiowatch.')} {json.dumps(fields, separators=(',', ':'))[:300]}"
