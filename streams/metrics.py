"""Prometheus metrics of the worker, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "cardiowatch_events", "Input events by topic and outcome (accepted | dead_letter).", ["topic", "outcome"]
)
DEAD_LETTERS = Counter(
    "cardiowatch_dead_letters", "Input events sent to a dead-letter topic, by fault.", ["topic", "error"]
)
OUTPUTS = Counter("cardiowatch_output_events", "Events the worker wrote, by topic.", ["topic"])
CHUNKS = Counter(
    "cardiowatch_chunks",
    "Waveform chunks by windowing outcome (accepted | late | duplicate | too_late).",
    ["outcome"],
)
GAPS = Counter("cardiowatch_gaps", "Gaps in a patient's waveform (a chunk starting after the last one ended).")
GAP_SECONDS = Counter("cardiowatch_gap_seconds", "Seconds of waveform missing between chunks.")
WINDOWS = Counter("cardiowatch_windows_closed", "Windows closed, by what closed them (stream | wall).", ["closed_by"])
SIGNAL_LOST = Counter("cardiowatch_signal_lost", "Patients whose waveform stopped arriving (technical events).")
BATCH_SIZE = Histogram(
    "cardiowatch_batch_size", "Windows per scoring batch.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 60.0)
EVENT_LATENCY = Histogram(
    "cardiowatch_event_to_score_seconds",
    "Window end (event time of its last sample) to its score written to risk.scores, seconds.",
    buckets=_LATENCY_BUCKETS,
)
ARRIVAL_LATENCY = Histogram(
    "cardiowatch_arrival_to_score_seconds",
    "Arrival of a window's last chunk at the worker to its score written, seconds.",
    buckets=_LATENCY_BUCKETS,
)
SCORING_SECONDS = Histogram(
    "cardiowatch_scoring_seconds",
    "Time the scoring process took over one batch (scoring and serialising; not queueing or transfer), seconds.",
    buckets=_LATENCY_BUCKETS,
)
LOOP_LAG = Gauge("cardiowatch_event_loop_lag_seconds", "How late the event loop ran a timer that was due, seconds.")
PATIENTS = Gauge("cardiowatch_patients", "Patients with waveform state in this worker.")
BEAT_REFERENCES = Counter(
    "cardiowatch_beat_references",
    "Patients' reference beats learned and written to their table, or read back from it (learned | restored).",
    ["outcome"],
)
ALERTS = Counter(
    "cardiowatch_alerts",
    "Alert records published (changes of state), by kind, priority and state.",
    ["kind", "priority", "state"],
)
