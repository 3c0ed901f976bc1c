"""Replay: recordings (or a capture) into Kafka as live streams, at real time, N x, or as fast as possible.

Event times are deterministic: chunk ``k`` of a recording starting at ``start`` begins at
``start + first_sample / sampling_rate`` and is sent when its last sample has been "measured", as a
monitor would send it. Numerics become ``vitals`` events at their own minute.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from kafka import KafkaProducer
from tqdm import tqdm

from streams import topics
from streams.errors import StreamsError
from streams.sources import Recording
from streams.waveform import WaveformChunk, encode_waveform

log = logging.getLogger(__name__)


class Outgoing(NamedTuple):
    """One message to send, at ``send_us`` on the event-time axis."""

    send_us: int
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class Summary:
    """What a replay did."""

    patients: int = 0
    events: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    failed: int = 0
    wall_s: float = 0.0
    span_s: float = 0.0

    @property
    def speedup(self) -> float:
        """Event time covered per wall second."""
        return self.span_s / self.wall_s if self.wall_s > 0 else float("inf")

    def lines(self) -> list[str]:
        """The summary as readable lines."""
        per_topic = ", ".join(f"{t} {n}" for t, n in sorted(self.events.items()))
        return [
            f"patients      {self.patients}",
            f"events        {sum(self.events.values())} ({per_topic})",
            f"bytes         {self.bytes} ({self.bytes / 1e6:.1f} MB)",
            f"failed sends  {self.failed}",
            f"event time    {self.span_s:.1f} s",
            f"wall time     {self.wall_s:.2f} s",
            f"speed-up      {self.speedup:.1f}x real time",
        ]


def parse_start(text: str | None, speed: float = 1.0, longest_s: float = 0.0) -> datetime:
    """The replay start time: ISO 8601 with offset; by default now (whole second) at real time or slower.

    Faster than real time, event time would run ahead of the clock (and be rejected as "in the future"),
    so the default start is then ``longest_s`` (the longest recording) before now.
    """
    if text is None:
        now = datetime.now(UTC).replace(microsecond=0)
        return now if speed <= 1.0 else now - timedelta(seconds=math.ceil(longest_s))
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise StreamsError(f"start time {text!r} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    return when.astimezone(UTC)


def recording_events(
    rec: Recording, patient_id: str, start: datetime, chunk_s: float, source_id: str | None = None
) -> Iterator[Outgoing]:
    """The messages of one recording, in send order: waveform chunks and, if any, vitals."""
    source_id = source_id or f"replay:{rec.name}"
    start_us = int(start.timestamp() * 1_000_000)
    key = patient_id.encode()

    def chunks() -> Iterator[Outgoing]:
        for seq, (pos, channels, samples) in enumerate(rec.chunks(chunk_s)):
            chunk = WaveformChunk(
                patient_id,
                source_id,
                seq,
                start_us + round(pos * 1e6 / rec.sampling_rate),
                rec.sampling_rate,
                channels,
                samples,
            )
            yield Outgoing(chunk.end_time_us, topics.ECG_WAVEFORM, key, encode_waveform(chunk))

    def vitals() -> Iterator[Outgoing]:
        for seq, sample in enumerate(rec.vitals):
            when = start + timedelta(seconds=sample.offset_s)
            doc = {
                "schema": "cardiowatch.vitals",
                "version": 1,
                "patient_id": patient_id,
                "source_id": f"{source_id}:numerics",
                "seq": seq,
                "time": when.isoformat().replace("+00:00", "Z"),
                "observations": [
                    {"code": code, "value": value, "unit": unit, **({"method": method} if method else {})}
                    for code, value, unit, method in sample.observations
                ],
            }
            yield Outgoing(int(when.timestamp() * 1_000_000), topics.VITALS, key, json.dumps(doc).encode())

    return heapq.merge(chunks(), vitals(), key=lambda o: o.send_us)


def event_count(rec: Recording, chunk_s: float) -> int:
    """How many messages :func:`recording_events` yields for a recording."""
    return sum(1 for _ in rec.chunks(chunk_s)) + len(rec.vitals)


def replay(
    producer: KafkaProducer,
    streams: Iterable[Iterator[Outgoing]],
    speed: float = 1.0,
    total: int | None = None,
    patients: int = 0,
    progress: bool = True,
) -> Summary:
    """Send the merged streams, paced at ``speed`` x real time (``inf``: as fast as the broker takes them).

    Args:
        producer: A kafka-python producer.
        streams: One iterator of :class:`Outgoing` per patient (or capture), each in send order.
        speed: Event seconds per wall second.
        total: Message count, for the progress bar.
        patients: Patient count, for the summary.
        progress: Show a progress bar on a terminal.
    """
    if not speed > 0:
        raise StreamsError(f"speed must be positive, got {speed}")
    summary = Summary(patients=patients)

    def failed(_err: Exception) -> None:
        summary.failed += 1

    first_us: int | None = None
    last_us = 0
    wall0 = time.monotonic()
    with tqdm(total=total, unit="ev", disable=not progress or None, smoothing=0.1, mininterval=0.5) as bar:
        for out in heapq.merge(*streams, key=lambda o: o.send_us):
            if first_us is None:
                first_us = out.send_us
            if speed != float("inf"):
                delay = wall0 + (out.send_us - first_us) / 1e6 / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(out.topic, key=out.key or None, value=out.value).add_errback(failed)
            summary.events[out.topic] += 1
            summary.bytes += len(out.value)
            last_us = out.send_us
            bar.update(1)
        producer.flush()
    summary.wall_s = time.monotonic() - wall0
    summary.span_s = (last_us - first_us) / 1e6 if first_us is not None else 0.0
    return summary
