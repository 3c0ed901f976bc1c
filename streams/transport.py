"""Faust's Kafka transport: the consumer's fetch wait from the settings, and no commit past a held event.

* **Fetch wait.** faust-streaming's aiokafka driver builds the worker's consumer with a hard-coded
  ``fetch_max_wait_ms=1500`` (``AIOKafkaConsumerThread._create_worker_consumer``); no Faust setting reaches
  it. Apache Kafka answers a fetch as soon as data arrives, so the constant costs nothing there, but the
  embedded Tansu broker holds an idle fetch for half the client's maximum wait, which adds up to 750 ms per
  hop to every event. This module subclasses the three classes on that path and sets the wait on the
  consumer before it starts (aiokafka reads ``_fetch_max_wait_ms`` when it builds its fetcher in
  ``start()``). :class:`App` uses it.
* **Commits.** The worker holds events unacknowledged on purpose (waveform chunks until their windows' scores
  are published, a patient's first unwritten vitals event until the changelog write: :mod:`streams.app`).
  Faust commits the run of acknowledged offsets that follows the committed one, but lets one missing offset
  at its head pass (taken for a compacted or transaction-marker gap), so an unacknowledged event sitting
  exactly at the committed offset is committed over as soon as the event after it is acknowledged, and lost
  to a restart (faust-streaming issue #606). :class:`_Consumer` never commits a partition past the smallest
  offset of an event it delivered that is still unacknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


def in_flight_heads(messages: Iterable[Any], committed: Mapping[TP, int | None]) -> dict[TP, int]:
    """Per partition, the smallest offset of the delivered, unacknowledged ``messages`` at or past its commit."""
    heads: dict[TP, int] = {}
    for m in list(messages):
        floor = committed.get(m.tp)
        if not m.acked and (floor is None or m.offset >= floor) and m.offset < heads.get(m.tp, m.offset + 1):
            heads[m.tp] = m.offset
    return heads


class _Consumer(faust_aiokafka.Consumer):
    _in_flight: dict[TP, int] = {}  # noqa: RUF012 (set per commit by _filter_committable_offsets)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        self._in_flight = in_flight_heads(self._unacked_messages, self._committed_offset)
        return super()._filter_committable_offsets(tps)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's offset to commit, from the acknowledged offsets below the partition's in-flight head only."""
        head = self._in_flight.get(tp)
        if head is None:
            return super()._new_offset(tp)
        acked = self._acked[tp]
        later = [o for o in acked if o >= head]
        acked[:] = [o for o in acked if o < head]
        try:
            return super()._new_offset(tp)
        finally:
            acked.extend(later)  # committed once the head is acknowledged (Faust sorts them again)


class Transport(faust_aiokafka.Transport):
    """aiokafka transport: the worker consumer's fetch wait from the app, no commit past a held event."""

    Consumer = _Consumer


class App(faust.App):
    """A Faust app whose worker consumer waits at most ``fetch_max_wait_ms`` on an idle fetch."""

    fetch_max_wait_ms: int = 1500

    def __init__(self, id: str, *, fetch_max_wait_ms: int, **options: Any) -> None:
        """Make the app; ``fetch_max_wait_ms`` goes to the worker's consumer, the rest to Faust."""
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
