"""Kafka plumbing shared by every command: wait for the cluster, create the topics, make clients."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams import topics
from streams.errors import BrokerUnavailable
from streams.settings import Settings

log = logging.getLogger(__name__)


def wait_for_kafka(settings: Settings) -> KafkaAdminClient:
    """Connect an admin client, retrying with a logged, bounded back-off.

    Raises:
        BrokerUnavailable: Kafka did not answer within ``settings.connect_timeout_s``.
    """
    deadline = time.monotonic() + settings.connect_timeout_s
    delay = 0.1
    while True:
        try:
            return KafkaAdminClient(**settings.client_kwargs(), request_timeout_ms=5000)
        except KafkaError as err:
            if time.monotonic() + delay > deadline:
                raise BrokerUnavailable(
                    f"Kafka at {settings.bootstrap_servers} did not answer within "
                    f"{settings.connect_timeout_s:g} s: {err}"
                ) from err
            log.info("waiting for Kafka at %s (%s); retrying in %.1f s", settings.bootstrap_servers, err, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def ensure_topics(settings: Settings, names: tuple[str, ...] | None = None) -> list[str]:
    """Create the topics that do not exist yet, all with the same partition count; return those created.

    By default every topic of :func:`streams.topics.all_topics`; table changelogs are compacted.
    """
    if names is None:
        names = topics.all_topics(settings.app_id)
    compact = {topics.changelog(settings.app_id, t) for t in topics.TABLES}
    admin = wait_for_kafka(settings)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # created meanwhile by another worker: the goal holds
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(
                            n,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs={"cleanup.policy": "compact"} if n in compact else {},
                        )
                        for n in missing
                    ]
                )
            log.info("created topics %s with %d partitions", ", ".join(missing), settings.partitions)
        return missing
    finally:
        admin.close()


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer that keeps each source's order (one request in flight, idempotent)."""
    kwargs: dict[str, Any] = dict(
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        compression_type=None,
    )
    kwargs.update(overrides)
    return KafkaProducer(**settings.client_kwargs(), **kwargs)


def consumer(settings: Settings, *topic_names: str, **overrides: Any) -> KafkaConsumer:
    """A kafka-python consumer with the short session timeout and fetch wait the settings give."""
    kwargs: dict[str, Any] = dict(
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 6, 500),
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        enable_auto_commit=False,
    )
    kwargs.update(overrides)
    return KafkaConsumer(*topic_names, **settings.client_kwargs(), **kwargs)
