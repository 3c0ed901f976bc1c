"""Every Kafka topic name of cardiowatch, declared once.

All topics share one partition count and are keyed by patient id, so one patient's events have the same
partition number on every topic (co-partitioned) and no repartition hop is needed.
"""

from __future__ import annotations

from typing import Final

ECG_WAVEFORM: Final = "ecg.waveform"
VITALS: Final = "vitals"
IMAGING: Final = "imaging.events"
NOTES: Final = "clinical.notes"
RISK_SCORES: Final = "risk.scores"
#: Scores of a shadow model, scored beside the live one; no alert agent reads them.
RISK_SCORES_SHADOW: Final = "risk.scores.shadow"
ALERTS: Final = "alerts"
ALERTS_ACK: Final = "alerts.ack"

#: Topics that monitors and gateways write; each has a dead-letter topic.
INPUT_TOPICS: Final = (ECG_WAVEFORM, VITALS, IMAGING, NOTES)
#: Topics that cardiowatch writes or its consumers answer on.
OUTPUT_TOPICS: Final = (RISK_SCORES, RISK_SCORES_SHADOW, ALERTS, ALERTS_ACK)


def dlq(topic: str) -> str:
    """Name of the dead-letter topic of an input topic."""
    return f"{topic}.dlq"


DLQ_TOPICS: Final = tuple(dlq(t) for t in INPUT_TOPICS)
ALL_TOPICS: Final = INPUT_TOPICS + OUTPUT_TOPICS + DLQ_TOPICS

#: The worker's changelogged tables (declared in :mod:`streams.tables`); Faust backs each with a topic.
VITALS_TABLE: Final = "vitals-state"
CONTEXT_TABLE: Final = "context-state"
BEATS_TABLE: Final = "beat-references"
#: Declared by the alert agent (:mod:`alerts.agents`): patient id -> alert state.
ALERTS_TABLE: Final = "alert-state"
TABLES: Final = (VITALS_TABLE, CONTEXT_TABLE, BEATS_TABLE, ALERTS_TABLE)


def changelog(app_id: str, table: str) -> str:
    """Name Faust gives the changelog topic of a table (``<app id>-<table>-changelog``)."""
    return f"{app_id}-{table}-changelog"


def all_topics(app_id: str) -> tuple[str, ...]:
    """Every topic a deployment with this application id needs, changelogs included."""
    return ALL_TOPICS + tuple(changelog(app_id, t) for t in TABLES)
