"""The main job on one machine: embedded broker + worker + replay of real recordings + live scores and alerts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams import topics
from streams.errors import InvalidEvent, StreamsError
from streams.kafka import consumer, producer
from streams.replay import recording_events, replay
from streams.settings import Settings
from streams.sources import default_patient_id, read_recording
from streams.stack import local_stack
from streams.waveform import WaveformDecoder

log = logging.getLogger(__name__)

#: Recordings the demo replays (relative to the data folder); those absent are skipped.
DEMO_RECORDS = (
    "mitdb/101",
    "mitdb/208",
    "mitdb/203",
    "waveform_streams/a103l",
    "waveform_streams/v102s",
    "waveform_streams/03700181",
    "waveform_streams/multi-segment/s25047/s25047-2704-05-04-10-44",
    "cinc2017/A00004",
)


@dataclass
class _Patient:
    chunks: int = 0
    leads: str = ""
    last_event: datetime | None = None
    vitals: str = ""
    dead_letters: int = 0
    windows: int = 0
    heart_rate: float | None = None
    news2: float | None = None
    risk: float | None = None
    af: float | None = None
    ectopy: float | None = None
    scorer: str = ""
    quality: float | None = None
    detections: str = ""
    window_end: datetime | None = None
    alerts: dict[str, str] = field(default_factory=dict)  # alert id -> "kind state"


def run_demo(settings: Settings, data: Path, speed: float, duration_s: float) -> int:
    """Run the demo for ``duration_s`` wall seconds; return the exit status."""
    paths = [data / r for r in DEMO_RECORDS if (data / r).with_suffix(".hea").exists()]
    if not paths:
        raise StreamsError(f"no demo recordings under {data}; pass --data pointing at a shared/data-like folder")
    workdir = Path(".cardiowatch")
    with local_stack(settings, workdir) as conf:
        print(f"broker: Tansu on {conf.bootstrap_servers} (embedded, memory only)", flush=True)
        print(
            f"worker: metrics on http://127.0.0.1:{conf.web_port}/metrics, log in {workdir / 'worker.log'}",
            flush=True,
        )
        return _run(conf, paths, speed, duration_s)


def _run(conf: Settings, paths: list[Path], speed: float, duration_s: float) -> int:
    span_s = duration_s * speed
    recordings = [(default_patient_id(p), read_recording(p, max_duration_s=span_s)) for p in paths]
    # Faster than real time, event time runs ahead of the clock: start in the past so that it ends now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=span_s - duration_s)
    print(f"replay: {len(recordings)} recordings at {speed:g}x real time, from {start.isoformat()}", flush=True)
    patients: dict[str, _Patient] = {pid: _Patient() for pid, _ in recordings}
    stop = threading.Event()
    viewer = threading.Thread(target=_watch, args=(conf, patients, stop), daemon=True)
    viewer.start()

    def send() -> None:
        with producer(conf) as prod:
            _inject_bad_events(prod, recordings[0][0], start)
            summary = replay(
                prod,
                [recording_events(rec, pid, start, 1.0) for pid, rec in recordings],
                speed,
                patients=len(recordings),
                progress=False,
            )
        print("replay finished:\n  " + "\n  ".join(summary.lines()), flush=True)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + duration_s
    finished_at: float | None = None
    while time.monotonic() < deadline:
        time.sleep(min(3.0, max(0.0, deadline - time.monotonic())))
        _print_table(patients)
        if not sender.is_alive():
            finished_at = finished_at or time.monotonic()
            if time.monotonic() - finished_at > 5:  # let the worker drain, then stop early
                break
    stop.set()
    viewer.join(5)
    _print_table(patients)
    _print_worker_metrics(conf)
    return 0


def _inject_bad_events(prod: object, patient: str, start: datetime) -> None:
    """Three deliberately broken events, so the demo shows dead-letter routing."""
    stamp = start.isoformat().replace("+00:00", "Z")
    bad_vitals = {
        "schema": "cardiowatch.vitals",
        "version": 1,
        "patient_id": patient,
        "source_id": "demo-bad",
        "seq": 0,
        "time": stamp,
        "observations": [{"code": "8310-5", "value": 98.6, "unit": "[degF]"}],
    }
    future = {
        "schema": "cardiowatch.note",
        "version": 1,
        "patient_id": patient,
        "source_id": "demo-bad",
        "note_id": "n1",
        "time": (start + timedelta(days=1)).isoformat(),
        "author_role": "nurse",
        "text": "x",
    }
    for topic, value in (
        (topics.VITALS, json.dumps(bad_vitals).encode()),
        (topics.NOTES, json.dumps(future).encode()),
        (topics.ECG_WAVEFORM, b"CWWF\x01\x01\x02\x00"),
    ):
        prod.send(topic, key=patient.encode(), value=value)  # type: ignore[attr-defined]
    print(
        f"demo: injected 3 malformed events for {patient} (Fahrenheit temperature, note from tomorrow, "
        f"truncated ECG frame): watch them reach the dead-letter topics",
        flush=True,
    )


def _watch(conf: Settings, patients: dict[str, _Patient], stop: threading.Event) -> None:
    cons = consumer(
        conf,
        topics.ECG_WAVEFORM,
        topics.VITALS,
        topics.RISK_SCORES,
        topics.ALERTS,
        *topics.DLQ_TOPICS,
        auto_offset_reset="earliest",
    )
    decoder = WaveformDecoder(max_future_s=None)
    acknowledged = False
    try:
        while not stop.is_set():
            for messages in cons.poll(timeout_ms=300).values():
                for m in messages:
                    p = patients.setdefault(m.key.decode(errors="replace") if m.key else "-", _Patient())
                    if m.topic == topics.ECG_WAVEFORM:
                        try:
                            chunk = decoder.decode(m.value)
                        except InvalidEvent:
                            continue  # the worker dead-letters it; counted from the DLQ topic
                        p.chunks += 1
                        p.leads = ",".join(c.name for c in chunk.channels)
                        p.last_event = datetime.fromtimestamp(chunk.end_time_us / 1e6, UTC)
                    elif m.topic == topics.VITALS:
                        doc = json.loads(m.value)
                        names = {"8867-4": "HR", "59408-5": "SpO2", "9279-1": "RR", "8480-6": "SBP"}
                        p.vitals = " ".join(
                            f"{names[o['code']]} {o['value']:g}" for o in doc["observations"] if o["code"] in names
                        )
                    elif m.topic == topics.RISK_SCORES:
                        _take_score(p, json.loads(m.value))
                    elif m.topic == topics.ALERTS:
                        doc = json.loads(m.value)
                        _take_alert(p, doc)
                        if not acknowledged and doc["priority"] == "high" and doc["state"] == "active":
                            acknowledged = True
                            threading.Thread(target=_acknowledge, args=(conf, doc["alert_id"]), daemon=True).start()
                    else:
                        p.dead_letters += 1
                        doc = json.loads(m.value)
                        print(f"  DLQ {m.topic}: {doc['error']}: {doc['reason']}", flush=True)
    finally:
        cons.close()


def _take_score(p: _Patient, doc: dict) -> None:
    """Keep the latest score of a patient for the table."""
    p.windows += 1
    p.risk, p.quality = doc["risk"], doc["signal_quality"]
    p.heart_rate = doc["scores"].get("heart_rate_bpm")
    p.af, p.ectopy = doc["scores"].get("model_af"), doc["scores"].get("model_ectopy")
    p.scorer = f"{doc['scorer']} {doc['scorer_version']}"
    p.news2 = doc["scores"].get("news2") if "vitals" in doc["modalities"] else None
    p.detections = ",".join(sorted({d["kind"] for d in doc["detections"]}))
    p.window_end = datetime.fromisoformat(doc["window_end"])


def _take_alert(p: _Patient, doc: dict) -> None:
    """Print an alert record as it arrives and keep the patient's open episodes for the table."""
    evidence = " ".join(f"{k}={v}" for k, v in doc["evidence"].items() if not isinstance(v, dict | list))
    print(
        f"  ALERT {doc['priority'].upper():<6} {doc['patient_id']} {doc['kind']} {doc['state']} r{doc['revision']}: "
        f"{doc['message']} [{evidence[:120]}] id={doc['alert_id']}",
        flush=True,
    )
    if doc["state"] == "resolved":
        p.alerts.pop(doc["alert_id"], None)
    else:
        p.alerts[doc["alert_id"]] = f"{doc['kind']}:{doc['state']}"


def _acknowledge(conf: Settings, alert_id: str) -> None:
    """Acknowledge the first high-priority alarm with the ``cardiowatch alerts`` command, as a nurse would."""
    command = ["cardiowatch", "alerts", "--ack", alert_id, "--user", "demo.nurse", "--reason", "seen at the bedside"]
    print(f"demo: acknowledging from the command line: {' '.join(command[:4])} ...", flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", *command[1:]],
        env={**os.environ, "CARDIOWATCH_BOOTSTRAP_SERVERS": conf.bootstrap_servers},
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(f"demo: {(out.stdout or out.stderr).strip()}", flush=True)


def _print_table(patients: dict[str, _Patient]) -> None:
    now = datetime.now(UTC)
    head = (
        f"{'patient':<40} {'leads':<12} {'chunks':>6} {'behind':>6} {'scores':>6} {'HR':>5} {'NEWS2':>5} "
        f"{'risk':>5} {'P(AF)':>5} {'P(VE)':>5} {'SQI':>4} {'window end':>10}  detections | vitals"
    )
    scorers = sorted({p.scorer for p in patients.values() if p.scorer})
    lines = (
        [
            f"scored by {', '.join(scorers)}; risk = calibrated cardiac-risk probability, P(AF) atrial fibrillation, "
            "P(VE) ventricular ectopy or non-sinus rhythm in the window",
            head,
        ]
        if scorers
        else [head]
    )

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for pid, p in sorted(patients.items()):
        behind = f"{(now - p.last_event).total_seconds():+.0f}s" if p.last_event else "-"
        lines.append(
            f"{pid[:40]:<40} {p.leads[:12]:<12} {p.chunks:>6} {behind:>6} {p.windows:>6} {num(p.heart_rate, '.0f'):>5} "
            f"{num(p.news2, '.0f'):>5} {num(p.risk, '.2f'):>5} {num(p.af, '.2f'):>5} {num(p.ectopy, '.2f'):>5} "
            f"{num(p.quality, '.2f'):>4} "
            f"{p.window_end.strftime('%H:%M:%S') if p.window_end else '-':>10}  {p.detections or '-'} | {p.vitals}"
            + (f" | alerts {', '.join(sorted(p.alerts.values()))}" if p.alerts else "")
        )
    print("\n".join(lines) + "\n", flush=True)


def _print_worker_metrics(conf: Settings) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{conf.web_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError as err:
        print(f"worker metrics unavailable: {err}")
        return
    prefixes = (
        "cardiowatch_events_total",
        "cardiowatch_windows_closed_total",
        "cardiowatch_chunks_total",
        "cardiowatch_output_events_total",
        "cardiowatch_event_to_score_seconds_count",
        "cardiowatch_event_to_score_seconds_sum",
        "cardiowatch_alerts_total",
    )
    rows = [line for line in text.splitlines() if line.startswith(prefixes)]
    print("worker metrics:\n  " + "\n  ".join(rows or ["(nothing yet)"]), flush=True)
