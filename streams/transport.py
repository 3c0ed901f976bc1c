"""Faust's Kafka transport with the consumer's fetch wait taken from the settings.

faust-streaming's aiokafka driver builds the worker's consumer with a hard-coded ``fetch_max_wait_ms=1500``
(``AIOKafkaConsumerThread._create_worker_consumer``); no Faust setting reaches it. Apache Kafka answers a
fetch as soon as data arrives, so the constant costs nothing there, but the embedded Tansu broker holds an
idle fetch for half the client's maximum wait, which adds up to 750 ms per hop to every event. This module
subclasses the three classes on that path and sets the wait on the consumer before it starts (aiokafka reads
``_fetch_max_wait_ms`` when it builds its fetcher in ``start()``). :class:`App` uses it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """aiokafka transport whose worker consumer honours :attr:`App.fetch_max_wait_ms`."""

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
