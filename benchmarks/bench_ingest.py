"""Ingest benchmark: raw aiokafka consumption vs consumption + decode + validate, same broker, same run.

Replays MIT-BIH records as 1-s, 2-lead, 360 Hz chunks into a fresh embedded broker, then consumes the
same messages several times: (a) raw aiokafka, nothing decoded; (b) aiokafka plus the project's decode +
validate (:class:`streams.ingest.Ingest`). Prints both rates (messages/s) and their ratio; the goal is a
ratio of at least 0.5.

Both sides are measured the same way, so that the ratio reflects the cost of decoding and nothing else:

- the same consumer settings and the same loop over every message, which hands ``topic, key, value`` to a
  handler: :meth:`Ingest.decode` for (b), a function that does nothing for (a);
- set-up objects frozen out of the garbage collector's sight (as a worker's are after start-up), and a
  collection before every timed pass, so that no pass pays for the garbage of the one before;
- one untimed warm-up pair first (imports, connections, caches);
- then ``--rounds`` rounds, each a raw and a decoding pass back to back, in alternating order (raw first,
  then decode first, ...), so that a drift in machine load falls on both sides alike.

The headline ratio is the median of the per-round ratios (each of two passes that ran seconds apart);
the ratio of the median rates is printed beside it. The consuming process's CPU time per message is
printed too: on a busy machine it varies far less than wall-clock rates, so the difference between the two
sides is a steadier estimate of what decode + validate costs.

Usage: python benchmarks/bench_ingest.py [--data ../shared/data] [--records 10] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics
from streams.broker import EmbeddedBroker
from streams.ingest import Ingest
from streams.kafka import ensure_topics, producer
from streams.replay import parse_start, recording_events, replay
from streams.settings import Settings
from streams.sources import read_recording

Handler = Callable[[str, bytes | None, bytes | None], object]


class Pass(NamedTuple):
    """One timed pass over every message."""

    rate: float  # messages per second, wall clock
    cpu_us: float  # CPU time of this process per message, microseconds


def ignore(topic: str, key: bytes | None, value: bytes | None) -> None:
    """The raw side's handler: receives every message exactly as the decoding side's does, and drops it."""


async def consume(bootstrap: str, expected: int, decode: bool) -> Pass:
    """Messages per second to read every message of ecg.waveform (and decode + validate each if asked)."""
    cons = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await cons.start()
    try:
        parts = [
            TopicPartition(topics.ECG_WAVEFORM, p)
            for p in cons.partitions_for_topic(topics.ECG_WAVEFORM)
            or (await cons._client.fetch_all_metadata()).partitions_for_topic(topics.ECG_WAVEFORM)
        ]
        cons.assign(parts)
        await cons.seek_to_beginning(*parts)
        handle: Handler = Ingest(max_future_s=300.0).decode if decode else ignore
        seen = 0
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        while seen < expected:
            batches = await cons.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                for m in messages:
                    handle(m.topic, m.key, m.value)  # Ingest.decode raises on an invalid event
                seen += len(messages)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await cons.stop()
    if seen != expected:
        raise SystemExit(f"read {seen} of {expected} messages")
    return Pass(expected / elapsed, cpu / expected * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--records", type=int, default=10, help="MIT-BIH records to replay (30 min each)")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds, after one untimed warm-up round")
    args = parser.parse_args()
    names = (args.data / "mitdb" / "RECORDS").read_text().split()[: args.records]
    with EmbeddedBroker(port=0) as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(settings)
        start = parse_start(None, float("inf"), 1900)
        recordings = [
            recording_events(read_recording(args.data / "mitdb" / n), f"bench-{n}", start, 1.0) for n in names
        ]
        with producer(settings) as prod:
            summary = replay(prod, recordings, float("inf"), progress=False)
        expected = summary.events[topics.ECG_WAVEFORM]
        print(
            f"{expected} chunks (1 s, 2 leads, 360 Hz, {summary.bytes / expected:.0f} bytes each) "
            f"from {len(names)} MIT-BIH records"
        )
        # Set-up objects (recordings, producer) are long-lived: move them out of the collector's sight, as
        # a worker does after start-up, so that neither side pays for scanning them.
        gc.collect()
        gc.freeze()

        def run(decode: bool) -> Pass:
            return asyncio.run(consume(broker.bootstrap_servers, expected, decode))

        run(False)  # warm-up pair, not counted
        run(True)
        raw, full = [], []
        for i in range(args.rounds):
            if i % 2 == 0:
                raw.append(run(False))
                full.append(run(True))
            else:
                full.append(run(True))
                raw.append(run(False))
    r, f = statistics.median(p.rate for p in raw), statistics.median(p.rate for p in full)
    cpu_r, cpu_f = statistics.median(p.cpu_us for p in raw), statistics.median(p.cpu_us for p in full)
    ratios = [b.rate / a.rate for a, b in zip(raw, full, strict=True)]
    print(f"raw aiokafka consumption      {r:10,.0f} msg/s   (rounds: {', '.join(f'{p.rate:,.0f}' for p in raw)})")
    print(f"consume + decode + validate   {f:10,.0f} msg/s   (rounds: {', '.join(f'{p.rate:,.0f}' for p in full)})")
    print(
        f"consumer CPU per message      {cpu_r:10.1f} us raw, {cpu_f:.1f} us with decode + validate "
        f"(medians): {cpu_f - cpu_r:.1f} us for decode + validate"
    )
    print(f"ratio, median of rounds       {statistics.median(ratios):10.2f}       (goal >= 0.50)")
    print(f"ratio of median rates         {f / r:10.2f}       (per round: {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
