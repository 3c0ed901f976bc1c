"""The Faust application, built by :func:`create_app`: app -> topics -> agents -> web views.

Nothing is read or connected at import: Faust configures an app as soon as a topic is declared on it, so the
app, its topics and its agents are all made when the worker starts, from its settings.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import topics
from streams.errors import InvalidEvent
from streams.ingest import Ingest, dead_letter
from streams.metrics import DEAD_LETTERS, EVENTS
from streams.settings import Settings

log = logging.getLogger(__name__)


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust settings from cardiowatch settings."""
    credentials: Any = None
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {
        "broker": ";".join(f"kafka://{s}" for s in settings.bootstrap_servers.split(",")),
        "broker_credentials": credentials,
        "broker_session_timeout": settings.session_timeout_ms / 1000,
        "broker_heartbeat_interval": max(settings.session_timeout_ms / 6000, 0.5),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": False,  # topics are created by `cardiowatch topics` with one partition count
        "consumer_auto_offset_reset": "earliest",
        "store": "memory://",
        "datadir": settings.data_dir,
        "web_port": settings.web_port,
        "web_bind": settings.web_host,
        "web_enabled": True,
        "autodiscover": False,
    }


def process(ingest: Ingest, topic: str, key: bytes | None, value: bytes | None) -> tuple[bool, Any]:
    """Validate one input message: ``(True, record)`` or ``(False, InvalidEvent)``; never raises."""
    try:
        return True, ingest.decode(topic, key, value)
    except InvalidEvent as err:
        return False, err
    except Exception as err:  # a decoder bug must cost one event, never the stream
        log.exception("decoder failed on %s", topic)
        return False, InvalidEvent("internal_error", f"decoder failed: {type(err).__name__}: {err}")


def create_app(settings: Settings) -> faust.App:
    """The worker's Faust app with its topics, agents and web views."""
    # -------------------------------------------------------------------------------------------- app
    app = faust.App(settings.app_id, **faust_options(settings))
    ingest = Ingest(max_future_s=settings.max_future_s)

    # ----------------------------------------------------------------------------------------- topics
    inputs = app.topic(*topics.INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    dead_letters = {
        name: app.topic(topics.dlq(name), key_serializer="raw", value_serializer="raw") for name in topics.INPUT_TOPICS
    }

    # ----------------------------------------------------------------------------------------- agents
    async def validate(stream: faust.StreamT) -> None:
        """Validate every input event where it enters; route the bad ones to ``<topic>.dlq``."""
        event: EventT
        async for event in stream.events():
            msg = event.message
            ok, result = process(ingest, msg.topic, msg.key, msg.value)
            if ok:
                EVENTS.labels(msg.topic, "accepted").inc()
                continue
            letter = dead_letter(
                msg.topic,
                msg.partition,
                msg.offset,
                int(msg.timestamp * 1000) if msg.timestamp else None,
                msg.key,
                msg.value,
                result,
            )
            await dead_letters[msg.topic].send(key=msg.key, value=letter.model_dump_json(by_alias=True).encode())
            EVENTS.labels(msg.topic, "dead_letter").inc()
            DEAD_LETTERS.labels(msg.topic, result.code).inc()
            log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, result.reason)

    app.agent(inputs, name="validate")(validate)

    # -------------------------------------------------------------------------------------- web views
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus metrics."""
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health(web: Any, request: Any) -> Any:
        """200 once the worker has joined its group and consumes its partitions."""
        ready = app.consumer is not None and not app.rebalancing
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()) if ready else []
        return web.json({"status": "ok" if ready else "starting", "assigned": assigned}, status=200 if ready else 503)

    app.page("/metrics")(metrics)
    app.page("/health")(health)
    return app
