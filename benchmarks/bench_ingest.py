"""Ingest benchmark: raw aiokafka consumption vs consumption + decode + validate, same broker, same run.

Replays MIT-BIH records as 1-s, 2-lead, 360 Hz chunks into a fresh embedded broker, then consumes the
same messages several times, alternating: (a) raw aiokafka, nothing decoded; (b) aiokafka plus the
project's decode + validate (:class:`streams.ingest.Ingest`). Prints both rates (messages/s) and their
ratio; the goal is a ratio of at least 0.5.

Usage: python benchmarks/bench_ingest.py [--data ../shared/data] [--records 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics
from streams.broker import EmbeddedBroker
from streams.ingest import Ingest
from streams.kafka import ensure_topics, producer
from streams.replay import parse_start, recording_events, replay
from streams.settings import Settings
from streams.sources import read_recording


async def consume(bootstrap: str, expected: int, decode: bool) -> float:
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
        ingest = Ingest(max_future_s=300.0)
        seen = accepted = 0
        started = time.perf_counter()
        while seen < expected:
            batches = await cons.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                seen += len(messages)
                if decode:
                    for m in messages:
                        ingest.decode(m.topic, m.key, m.value)
                        accepted += 1
        elapsed = time.perf_counter() - started
    finally:
        await cons.stop()
    if decode and accepted != expected:
        raise SystemExit(f"decoded {accepted} of {expected} messages")
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--records", type=int, default=10, help="MIT-BIH records to replay (30 min each)")
    parser.add_argument("--rounds", type=int, default=3)
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
        raw, full = [], []
        # Set-up objects (recordings, producer) are long-lived: move them out of the collector's sight, as
        # a worker does after start-up, so that neither run pays for scanning them (applies to both runs).
        gc.collect()
        gc.freeze()
        for _ in range(args.rounds):
            raw.append(asyncio.run(consume(broker.bootstrap_servers, expected, decode=False)))
            full.append(asyncio.run(consume(broker.bootstrap_servers, expected, decode=True)))
    r, f = statistics.median(raw), statistics.median(full)
    print(f"raw aiokafka consumption      {r:10,.0f} msg/s   (rounds: {', '.join(f'{x:,.0f}' for x in raw)})")
    print(f"consume + decode + validate   {f:10,.0f} msg/s   (rounds: {', '.join(f'{x:,.0f}' for x in full)})")
    print(f"ratio                         {f / r:10.2f}       (goal >= 0.50)")


if __name__ == "__main__":
    main()
