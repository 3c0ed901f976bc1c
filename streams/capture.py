"""Capture: record topics to a file that replay plays back byte for byte.

The file is JSON lines. The first line is the header
``{"format": "cardiowatch.capture", "version": 1, "topics": [...], "created": "..."}``; each further line
is one message: ``topic``, ``partition``, ``offset``, ``timestamp_ms``, ``key_b64`` and ``value_b64``
(base64 of the exact bytes; ``key_b64`` is null for a message without key).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from kafka import KafkaConsumer

from streams.errors import StreamsError
from streams.replay import Outgoing

FORMAT: Final = "cardiowatch.capture"
VERSION: Final = 1


def capture(
    consumer: KafkaConsumer,
    out: Path,
    topic_names: list[str],
    max_messages: int | None = None,
    idle_s: float = 5.0,
    duration_s: float | None = None,
) -> int:
    """Write what ``consumer`` (already subscribed) receives to ``out``; return the message count.

    Stops after ``max_messages``, after ``duration_s``, or once no message arrived for ``idle_s``.
    """
    count = 0
    started = last = time.monotonic()
    with open(out, "w") as handle:
        handle.write(
            json.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "topics": topic_names,
                    "created": datetime.now(UTC).isoformat(),
                }
            )
            + "\n"
        )
        while True:
            batch = consumer.poll(timeout_ms=200)
            now = time.monotonic()
            for messages in batch.values():
                for m in messages:
                    handle.write(
                        json.dumps(
                            {
                                "topic": m.topic,
                                "partition": m.partition,
                                "offset": m.offset,
                                "timestamp_ms": m.timestamp,
                                "key_b64": None if m.key is None else base64.b64encode(m.key).decode(),
                                "value_b64": base64.b64encode(m.value or b"").decode(),
                            }
                        )
                        + "\n"
                    )
                    count += 1
                    last = now
                    if max_messages is not None and count >= max_messages:
                        return count
            if now - last > idle_s or (duration_s is not None and now - started > duration_s):
                return count


def capture_events(path: Path) -> Iterator[Outgoing]:
    """The messages of a capture file , byte for byte, in captured order."""
    with open(path) as handle:
        header = json.loads(handle.readline() or "{}")
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise StreamsError(f"{path}: not a cardiowatch capture (version 1)")
        for line in handle:
            rec = json.loads(line)
            yield Outgoing(
                int(rec["timestamp_ms"]) * 1000,
                rec["topic"],
                base64.b64decode(rec["key_b64"]) if rec["key_b64"] is not None else b"",
                base64.b64decode(rec["value_b64"]),
            )
