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
ALERTS: Final = "alerts"
ALERTS_ACK: Final = "alerts.ack"

#: Topics that monitors and gateways write; each has a dead-letter topic.
INPUT_TOPICS: Final = (ECG_WAVEFORM, VITALS, IMAGING, NOTES)
#: Topics that cardiowatch writes or its consumers answer on.
OUTPUT_TOPICS: Final = (RISK_SCORES, ALERTS, ALERTS_ACK)


def dlq(topic: str) -> str:
    """Name of the dead-letter topic of an input topic."""
    return f"{topic}.dlq"


DLQ_TOPICS: Final = tuple(dlq(t) for t in INPUT_TOPICS)
ALL_TOPICS: Final = INPUT_TOPICS + OUTPUT_TOPICS + DLQ_TOPICS
