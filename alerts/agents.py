"""The alert agent: runs the policy (:mod:`alerts.policy`) in the worker, over ``risk.scores`` and ``alerts.ack``.

Both topics are keyed by patient id and co-partitioned with the inputs, so one agent sees a patient's scores
and acknowledgements in order. Per event: read the patient's state from the changelogged ``alert-state``
table, apply the policy, publish every change of state to ``alerts`` (keyed by patient), write the state
back. A timer advances the clock of every patient this worker holds (escalations, silences ending, re-alerts)
by the wall time elapsed since the patient's last event, so that the clock stays on event time when past
recordings are replayed faster than real time; it also raises ``pipeline_stalled`` when input events still
arrive but no score has for :data:`STALL_AFTER_HOPS` hops beyond the window's closing delay.

A worker killed at any point re-reads, on restart, the scores and acknowledgements after its last committed
offset; the policy ignores windows it has already handled (their state was restored from the changelog) and
repeats, with the same id and revision, any record whose state had not reached the changelog: consumers keep
the highest revision per ``alert_id``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust
import pydantic
from faust.types import EventT

from alerts.policy import PatientAlerts, Thresholds, on_ack, on_score, on_tick
from streams import metrics, topics
from streams.records import Alert, AlertAck, RiskScore
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Hops without a score, beyond the window's closing delay (grace), after which the pipeline counts as stalled
#: while input events still arrive. The project's choice: long enough that a slow batch does not raise it.
STALL_AFTER_HOPS = 5


def install(app: faust.App, settings: Settings, heartbeat: Any) -> None:
    """Declare the alert table, topics, agent and timer on ``app``.

    Args:
        app: The worker's app (:func:`streams.app.create_app`).
        settings: The worker's settings (hop, grace, model-risk thresholds).
        heartbeat: Object whose ``last_input_s`` is the wall time the worker last consumed an input event.
    """
    table = app.Table(topics.ALERTS_TABLE, default=dict, key_type=str)
    source = app.topic(topics.RISK_SCORES, topics.ALERTS_ACK, key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(topics.ALERTS, key_serializer="raw", value_serializer="raw")
    thresholds = Thresholds(risk_high=(settings.risk_high, settings.risk_clear))
    stall_s = settings.grace_s + STALL_AFTER_HOPS * settings.hop_s
    last_score = {"wall": 0.0}

    async def publish(changes: list[Alert]) -> None:
        for alert in changes:
            await alerts_topic.send(key=alert.patient_id.encode(), value=alert.model_dump_json(by_alias=True).encode())
            metrics.ALERTS.labels(alert.kind, alert.priority.value, alert.state.value).inc()
        if changes:
            metrics.OUTPUTS.labels(topics.ALERTS).inc(len(changes))

    async def alert_events(stream: faust.StreamT) -> None:
        """Apply every score and acknowledgement to its patient's alert state."""
        event: EventT
        async for event in cast(faust.Stream, stream).events():
            msg = event.message
            if msg.value is None:
                continue
            try:
                record: RiskScore | AlertAck = (
                    RiskScore.model_validate_json(msg.value)
                    if msg.topic == topics.RISK_SCORES
                    else AlertAck.model_validate_json(msg.value)
                )
            except (pydantic.ValidationError, ValueError) as err:
                log.warning("ignored %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, err)
                continue
            state = PatientAlerts.from_json(record.patient_id, table.get(record.patient_id))
            if isinstance(record, RiskScore):
                last_score["wall"] = time.time()
                state, changes = on_score(state, record, thresholds)
            else:
                state, changes = on_ack(state, record)
            state.clock_wall = time.time()
            await publish(changes)
            table[record.patient_id] = state.to_json()

    async def tick() -> None:
        """Advance every held patient's clock; raise or end ``pipeline_stalled``."""
        now = time.time()
        quiet = now - last_score["wall"]
        stalled = last_score["wall"] > 0 and quiet > stall_s and now - heartbeat.last_input_s < stall_s
        for patient_id, data in list(table.data.items()):
            state = PatientAlerts.from_json(patient_id, data)
            clock = state.clock + (now - state.clock_wall) if state.clock_wall else now
            state, changes = on_tick(state, clock, last_score["wall"] if stalled else None)
            state.clock_wall = now
            if changes:
                await publish(changes)
                value = state.to_json()
                table.data[patient_id] = value
                # outside a stream there is no current event to take the partition from: the key's partition
                # (the default partitioner, as every producer of patient-keyed events uses) is the same
                table.send_changelog(None, patient_id, value)

    app.agent(source, name="alerts")(alert_events)
    app.timer(interval=max(settings.hop_s / 2, 0.5))(tick)
