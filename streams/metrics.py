"""Prometheus metrics of the worker, declared once."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "cardiowatch_events", "Input events by topic and outcome (accepted | dead_letter).", ["topic", "outcome"]
)
DEAD_LETTERS = Counter(
    "cardiowatch_dead_letters", "Input events sent to a dead-letter topic, by fault.", ["topic", "error"]
)
