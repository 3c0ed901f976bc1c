"""Alarm evaluation through the live pipeline: annotated recordings in, alarms per kind judged against them.

``cardiowatch evaluate-alarms --data DIR --out DIR`` starts the embedded broker and a worker (with the alert
agent), replays every annotated recording of ``DIR`` as one patient each (as fast as the pipeline takes
them), reads back ``risk.scores`` and ``alerts``, and judges the alarms of the rhythm kinds:

* **Reference episodes** come from the recordings' own annotations. MIT-BIH-style ``.atr`` files: the rhythm labels
  ``(AFIB`` (atrial fibrillation), ``(VT`` (ventricular tachycardia) and ``(VFL`` or the ``[``/``]`` marks
  (ventricular flutter/fibrillation), each until the next rhythm label (in the CPSC 2021 records ``(AFIB`` comes 150
  ms before an AF episode's first beat and ``(N`` 150 ms after its last); and the PhysioNet/CinC 2015 definitions
  (asystole, extreme bradycardia, extreme tachycardia, ventricular tachycardia) applied by
  :func:`streams.rhythm.detect_rhythms` to the *reference* beats and their classes (AAMI V = ventricular), with
  flutter/fibrillation treated as unobserved (it has no beats). An annotated episode is *expected* to raise an alarm
  when it meets the alarm's definition: ventricular tachycardia only where the reference beats hold 5 or more
  ventricular beats above 100 /min (a ``(VT`` label on a 3-beat run is annotated VT but below the 2015 alarm
  definition), atrial fibrillation only for labelled episodes of at least :data:`AF_MIN_EPISODE_S` (the ESC definition
  of a clinical AF episode), every flutter/fibrillation episode, and every episode the beat rules find.
* **Alarms**: each announcement of an alert episode of a rhythm kind (its opening, and its condition
  returning after it latched: nobody acknowledges during the run), from its onset to the end of its condition
  (``latched`` or ``resolved``), raised at the event time of the window that announced it
  (:func:`alarm_spans`).
* **Matching**: an alarm is true when it overlaps an annotated episode of its kind, widened by
  :data:`MATCH_TOLERANCE_S` on both sides; an alarm of a life-threatening rhythm raised during reference
  flutter/fibrillation is also true (it calls for the same response), and so is a flutter/fibrillation
  alarm during reference ventricular tachycardia (any annotated VT run, also one below the 2015 definition:
  a fast monomorphic VT is a sinusoid-like waveform too, and the response is the same); otherwise false. An
  expected episode is detected when a true alarm of its kind overlaps it (flutter/fibrillation: any
  life-threatening rhythm alarm; ventricular tachycardia: also a flutter/fibrillation alarm); its delay is
  from the episode's onset to the first such alarm being raised (zero when one was already on). Sensitivity
  = detected / reference episodes; positive predictive value = true / all alarms; alarms and false alarms
  per patient-hour.
* **Naive baseline** (beside the policy, from the same ``risk.scores``): every rhythm detection of the
  scorer is an alarm as soon as it appears, with no quality gating, pulse corroboration, minimum duration or
  clearing delay (consecutive windows with the detection are one alarm); atrial fibrillation from a single
  irregular window (:data:`alerts.policy.AF_IRREGULARITY`).
* **PhysioNet/CinC 2015 score**, where the data holds Challenge records (a WFDB header whose comments name the
  alarm type and ``True alarm`` / ``False alarm``): the record is replayed up to the alarm at 5 minutes
  (:data:`CHALLENGE_ALARM_S`, the real-time category) and the pipeline's verdict is "true" when it raises an
  alarm of that kind in the 10 s before it (the Challenge's event window); score
  ``(TP + TN) / (TP + TN + FP + 5 FN)`` (Clifford et al. 2015).

Sources: G. D. Clifford et al., "The PhysioNet/Computing in Cardiology Challenge 2015: Reducing false
arrhythmia alarms in the ICU", CinC 42:273-276 (2015); IEC 60601-2-27 (heart-rate alarms within 10 s of
the condition: :data:`ALARM_DELAY_LIMIT_S`); MIT-BIH annotation codes (Moody & Mark 2001, PhysioNet).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import wfdb

from alerts.policy import AF_IRREGULARITY
from models.ec57 import BEAT_SYMBOLS, VENTRICULAR_SYMBOLS, VF_OFF, VF_ON
from streams import topics
from streams.kafka import consumer, producer
from streams.replay import parse_start, recording_events, replay
from streams.rhythm import detect_rhythms
from streams.settings import Settings
from streams.sources import Recording, default_patient_id, expand, read_recording
from streams.stack import local_stack

log = logging.getLogger(__name__)

#: Alarm kinds judged, in report order. A flutter/fibrillation episode counts as detected through any
#: life-threatening rhythm alarm (they call for the same immediate response).
KINDS: Final = (
    "asystole",
    "ventricular_fibrillation",
    "ventricular_tachycardia",
    "extreme_bradycardia",
    "extreme_tachycardia",
    "atrial_fibrillation",
)
#: The PhysioNet/CinC 2015 alarm types: life-threatening, each calls for an immediate response.
LETHAL: Final = frozenset(KINDS[:5])
#: MIT-BIH rhythm labels (``aux_note`` of ``+`` annotations) and the alarm kind each is the reference for.
RHYTHM_LABELS: Final = {
    "(AFIB": "atrial_fibrillation",
    "(VT": "ventricular_tachycardia",
    "(VFL": "ventricular_fibrillation",
}
#: PhysioNet/CinC 2015 header comments and their alarm kinds.
CHALLENGE_KINDS: Final = {
    "Asystole": "asystole",
    "Bradycardia": "extreme_bradycardia",
    "Tachycardia": "extreme_tachycardia",
    "Ventricular_Tachycardia": "ventricular_tachycardia",
    "Ventricular_Flutter_Fib": "ventricular_fibrillation",
}
#: The Challenge's alarms go off 5 minutes into each record; the event is in the 10 s before (Clifford 2015).
CHALLENGE_ALARM_S: Final = 300.0
CHALLENGE_EVENT_S: Final = 10.0
#: Alarms and reference episodes this close count as overlapping: beat-time differences between the
#: reference and the detector, and the window's hop, move an episode's edges by a few seconds.
MATCH_TOLERANCE_S: Final = 5.0
#: Shortest annotated atrial fibrillation expected to raise an alarm: an AF episode is clinically defined as
#: lasting at least 30 s (ESC 2020 guidelines for atrial fibrillation, Hindricks et al., Eur Heart J 2021).
AF_MIN_EPISODE_S: Final = 30.0
#: Replay speed (x real time): 26 MIT-BIH records (13 patient-hours) in about 90 s, about half of what one
#: worker on a 2-core machine consumes.
DEFAULT_SPEED: Final = 20.0
#: IEC 60601-2-27: heart-rate alarms within 10 s of the condition (REFERENCES.md).
ALARM_DELAY_LIMIT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Span:
    """A reference episode or an alarm on one recording: kind and seconds from the recording's start.

    For an alarm, ``raised`` is when it was raised (the end of the window that opened it). A reference episode
    is ``expected`` when it meets the alarm's own definition (see :func:`reference_spans`): only those count
    towards sensitivity, while an alarm overlapping any annotated episode of its kind is true.
    """

    kind: str
    start: float
    end: float
    raised: float | None = None
    expected: bool = True


@dataclass
class Tally:
    """One system's figures for one alarm kind."""

    reference: int = 0
    below_definition: int = 0
    detected: int = 0
    alarms: int = 0
    true_alarms: int = 0
    delays_s: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Accumulate another recording's tally."""
        self.reference += other.reference
        self.below_definition += other.below_definition
        self.detected += other.detected
        self.alarms += other.alarms
        self.true_alarms += other.true_alarms
        self.delays_s += other.delays_s

    def summary(self, hours: float) -> dict[str, Any]:
        """The figures of the report: counts, Se, PPV, delays, alarms per patient-hour."""
        false = self.alarms - self.true_alarms

        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "reference_episodes": self.reference,
            "annotated_below_definition": self.below_definition,
            "detected": self.detected,
            "missed": self.reference - self.detected,
            "alarms": self.alarms,
            "true_alarms": self.true_alarms,
            "false_alarms": false,
            "sensitivity": ratio(self.detected, self.reference),
            "ppv": ratio(self.true_alarms, self.alarms),
            "median_delay_s": round(statistics.median(self.delays_s), 1) if self.delays_s else None,
            "max_delay_s": round(max(self.delays_s), 1) if self.delays_s else None,
            "within_limit": sum(d <= ALARM_DELAY_LIMIT_S for d in self.delays_s),
            "alarms_per_patient_hour": round(self.alarms / hours, 2) if hours else None,
            "false_alarms_per_patient_hour": round(false / hours, 2) if hours else None,
        }


# ----------------------------------------------------------------------------------------------- reference
def _label_spans(times: np.ndarray, symbols: Sequence[str], aux: Sequence[str], duration: float) -> list[Span]:
    """Episodes of the rhythm labels (each lasts until the next rhythm label) and of ``[`` ... ``]``."""
    spans: list[Span] = []
    current: tuple[str, float] | None = None
    vf_on: float | None = None
    for t, sym, note in zip(times, symbols, aux, strict=True):
        if sym == "+":
            if current is not None:
                spans.append(Span(current[0], current[1], float(t)))
            kind = RHYTHM_LABELS.get((note or "").rstrip("\x00").strip())
            current = (kind, float(t)) if kind else None
        elif sym == VF_ON:
            vf_on = float(t)
        elif sym == VF_OFF and vf_on is not None:
            spans.append(Span("ventricular_fibrillation", vf_on, float(t)))
            vf_on = None
    if current is not None:
        spans.append(Span(current[0], current[1], duration))
    if vf_on is not None:
        spans.append(Span("ventricular_fibrillation", vf_on, duration))
    return spans


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping or touching spans of one kind merged into one (expected if any part is), by kind and start."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.kind, s.start)):
        if out and out[-1].kind == s.kind and s.start <= out[-1].end:
            last = out[-1]
            out[-1] = Span(s.kind, last.start, max(last.end, s.end), expected=last.expected or s.expected)
        else:
            out.append(s)
    return out


def reference_spans(path: Path, duration_s: float) -> list[Span] | None:
    """Reference episodes of a record from its ``.atr`` annotations (None when it has none).

    Only the first ``duration_s`` seconds are read (the part that is replayed).
    """
    if not path.with_suffix(".atr").exists():
        return None
    ann = wfdb.rdann(str(path), "atr")
    times = np.asarray(ann.sample, dtype=np.float64) / float(ann.fs)
    keep = times <= duration_s
    symbols = [s for s, k in zip(ann.symbol, keep, strict=True) if k]
    aux = [a for a, k in zip(ann.aux_note or [""] * len(keep), keep, strict=True) if k]
    times = times[keep]
    labelled = _label_spans(times, symbols, aux, duration_s)
    vf = [(s.start, s.end) for s in labelled if s.kind == "ventricular_fibrillation"]
    is_beat = np.array([s in BEAT_SYMBOLS for s in symbols], dtype=bool)
    ventricular = np.array([s in VENTRICULAR_SYMBOLS for s in symbols], dtype=bool)[is_beat]
    beats = times[is_beat]
    unique = np.concatenate([[True], np.diff(beats) > 0])  # two beat labels on one sample: keep the first
    found = detect_rhythms(beats[unique], ventricular[unique], span=(0.0, duration_s), missing=vf)
    labelled = [_expected_by_label(s) for s in labelled]
    return merge([*labelled, *(Span(d.kind, d.onset_s, d.end_s) for d in found)])


def _expected_by_label(span: Span) -> Span:
    """A labelled episode, marked expected or not by its alarm's definition (module docstring)."""
    if span.kind == "ventricular_tachycardia":  # the beat rule decides
        return Span(span.kind, span.start, span.end, expected=False)
    if span.kind == "atrial_fibrillation":
        return Span(span.kind, span.start, span.end, expected=span.end - span.start >= AF_MIN_EPISODE_S)
    return span


def challenge_label(path: Path) -> tuple[str, bool] | None:
    """A PhysioNet/CinC 2015 record's alarm kind and whether the alarm was true (None for other records)."""
    if not path.with_suffix(".hea").exists():
        return None
    comments = [c.strip() for c in wfdb.rdheader(str(path)).comments]
    kinds = [CHALLENGE_KINDS[c] for c in comments if c in CHALLENGE_KINDS]
    truth = [c == "True alarm" for c in comments if c in ("True alarm", "False alarm")]
    return (kinds[0], truth[0]) if kinds and truth else None


# ---------------------------------------------------------------------------------------- pipeline outputs
def _seconds(stamp: str, start: datetime) -> float:
    return (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - start).total_seconds()


def alarm_spans(alerts: Sequence[Mapping[str, Any]], start: datetime, end_s: float) -> list[Span]:
    """One span per announcement of an alarm of a judged kind: what a clinician hears as a new alarm.

    An episode is announced when it opens (``active``, revision 0) and again when its condition returns after
    it had latched (``active`` once more, the same id). Each announcement lasts until the episode next latches
    (the condition is over, awaiting acknowledgement) or resolves, else to ``end_s``; the first starts at the
    episode's onset, a later one when it was raised. Escalation is not a new announcement. Repeated records
    (the same id and revision, after a worker restart) count once.
    """
    episodes: dict[str, dict[int, Mapping[str, Any]]] = defaultdict(dict)
    for a in alerts:
        if a["kind"] in KINDS:
            episodes[a["alert_id"]].setdefault(a["revision"], a)
    out = []
    for revisions in episodes.values():
        opened: Span | None = None
        for _, a in sorted(revisions.items()):
            t = _seconds(a["time"], start)
            if a["state"] == "active" and opened is None:
                onset = _seconds(a["onset_time"], start) if a["revision"] == 0 else t
                opened = Span(a["kind"], onset, end_s, t)
            elif a["state"] in ("latched", "resolved") and opened is not None:
                out.append(Span(opened.kind, opened.start, t, opened.raised))
                opened = None
        if opened is not None:
            out.append(opened)
    return sorted(out, key=lambda s: (s.raised or 0.0, s.kind))


def naive_spans(scores: Sequence[Mapping[str, Any]], start: datetime) -> list[Span]:
    """The naive baseline's alarms: each run of consecutive windows with a detection is one alarm."""
    open_: dict[str, Span] = {}
    out: list[Span] = []
    for score in sorted(scores, key=lambda s: s["window_end"]):
        end = _seconds(score["window_end"], start)
        present: dict[str, float] = {}
        for d in score["detections"]:
            if d["kind"] in KINDS:
                onset = _seconds(d["onset_time"], start)
                present[d["kind"]] = min(onset, present.get(d["kind"], onset))
        irregularity = score["scores"].get("rr_irregularity")
        if "ecg" in score["modalities"] and irregularity is not None and irregularity > AF_IRREGULARITY:
            present["atrial_fibrillation"] = end
        for kind in list(open_):
            if kind not in present:
                out.append(open_.pop(kind))
        for kind, onset in present.items():
            span = open_.get(kind)
            open_[kind] = Span(kind, onset, end, end) if span is None else Span(kind, span.start, end, span.raised)
    return sorted(out + list(open_.values()), key=lambda s: (s.raised or 0.0, s.kind))


# ---------------------------------------------------------------------------------------------- matching
def _overlaps(a: Span, b: Span) -> bool:
    return a.start <= b.end + MATCH_TOLERANCE_S and a.end >= b.start - MATCH_TOLERANCE_S


def judge(reference: Sequence[Span], alarms: Sequence[Span]) -> dict[str, Tally]:
    """Per kind: reference episodes detected (with delays) and alarms true or false, on one recording."""
    vf = [r for r in reference if r.kind == "ventricular_fibrillation"]
    vt = [r for r in reference if r.kind == "ventricular_tachycardia"]
    out = {kind: Tally() for kind in KINDS}
    true_alarms: list[Span] = []
    for a in alarms:
        same = [r for r in reference if r.kind == a.kind]
        is_true = (
            any(_overlaps(a, r) for r in same)
            or (a.kind in LETHAL and any(_overlaps(a, r) for r in vf))
            or (a.kind == "ventricular_fibrillation" and any(_overlaps(a, r) for r in vt))
        )
        out[a.kind].alarms += 1
        if is_true:
            out[a.kind].true_alarms += 1
            true_alarms.append(a)
    for r in reference:
        tally = out[r.kind]
        if not r.expected:
            tally.below_definition += 1
            continue
        tally.reference += 1
        answering = {
            "ventricular_fibrillation": LETHAL,
            "ventricular_tachycardia": {"ventricular_tachycardia", "ventricular_fibrillation"},
        }.get(r.kind, {r.kind})
        hits = [a for a in true_alarms if a.kind in answering and _overlaps(a, r)]
        if hits:
            tally.detected += 1
            raised = min(a.raised if a.raised is not None else a.start for a in hits)
            tally.delays_s.append(max(0.0, raised - r.start))  # an alarm already on at the onset: no delay
    return out


def challenge_verdict(alarms: Sequence[Span], kind: str) -> bool:
    """The pipeline's verdict on a Challenge alarm: true when it raised an alarm of that kind in the event window.

    An episode raised earlier and still open does not count: the Challenge asks about the event that started in
    the 10 s before its alarm.
    """
    answering = LETHAL if kind == "ventricular_fibrillation" else {kind}
    lo, hi = CHALLENGE_ALARM_S - CHALLENGE_EVENT_S, CHALLENGE_ALARM_S
    return any(a.kind in answering and a.raised is not None and lo <= a.raised <= hi for a in alarms)


def challenge_score(tp: int, tn: int, fp: int, fn: int) -> float | None:
    """PhysioNet/CinC 2015 score: (TP + TN) / (TP + TN + FP + 5 FN)."""
    total = tp + tn + fp + 5 * fn
    return round((tp + tn) / total, 4) if total else None


# ------------------------------------------------------------------------------------------ live pipeline
@dataclass
class LiveRun:
    """What the pipeline wrote for a replay: scores and alerts per patient, and the replay's start."""

    start: datetime
    scores: dict[str, list[dict[str, Any]]]
    alerts: dict[str, list[dict[str, Any]]]
    wall_s: float


def run_live(
    settings: Settings, recordings: Mapping[str, Recording], workdir: Path, timeout_s: float, speed: float
) -> LiveRun:
    """Replay the recordings (one patient each) through broker + worker at ``speed`` x real time.

    A replay faster than the worker takes it would leave some partitions' patients without input for long
    stretches of wall time, and the worker's silence watermark would close their windows early: the default
    speed leaves the worker headroom (the report counts windows closed by silence, which should be only the
    last of each recording). Event time starts in the past (:func:`streams.replay.parse_start`) so that it
    never runs ahead of the clock, on the window grid (a multiple of the hop since the epoch), so every run
    cuts each recording into the same windows whenever it starts; the run waits until every patient has a
    score for a window reaching the end of its recording (the last windows are closed by the worker's
    silence watermark), then for the alerts to settle.
    """
    earliest = parse_start(None, speed, max(r.duration_s for r in recordings.values())).timestamp()
    start = datetime.fromtimestamp(earliest - earliest % settings.hop_s, UTC)
    scores: dict[str, list[dict[str, Any]]] = defaultdict(list)
    alerts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    last_end: dict[str, float] = {}  # latest window end scored per patient, seconds from the start
    last_seen = {"t": time.monotonic()}
    stop = threading.Event()
    wall0 = time.monotonic()
    with local_stack(settings, workdir) as conf:

        def collect() -> None:
            cons = consumer(conf, topics.RISK_SCORES, topics.ALERTS, auto_offset_reset="earliest")
            try:
                while not stop.is_set():
                    for messages in cons.poll(timeout_ms=300).values():
                        for m in messages:
                            doc = json.loads(m.value)
                            pid = doc["patient_id"]
                            if m.topic == topics.RISK_SCORES:
                                scores[pid].append(doc)
                                end = _seconds(doc["window_end"], start)
                                last_end[pid] = max(end, last_end.get(pid, end))
                            else:
                                alerts[pid].append(doc)
                            last_seen["t"] = time.monotonic()
            finally:
                cons.close()

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        with producer(conf) as prod:
            summary = replay(
                prod,
                [recording_events(rec, pid, start, 1.0) for pid, rec in recordings.items()],
                speed,
                progress=False,
            )
        log.info("replayed %d events in %.1f s", sum(summary.events.values()), summary.wall_s)

        def finished(pid: str) -> bool:
            return last_end.get(pid, -1.0) >= recordings[pid].duration_s

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(finished(p) for p in recordings):
            time.sleep(1.0)
        missing = [p for p in recordings if not finished(p)]
        if missing:
            log.warning("timed out before the last window of %s", ", ".join(missing))
        while time.monotonic() - last_seen["t"] < 3.0 and time.monotonic() < deadline:
            time.sleep(0.5)  # the alerts of the last windows
        stop.set()
        reader.join(10)
    return LiveRun(start, dict(scores), dict(alerts), time.monotonic() - wall0)


# --------------------------------------------------------------------------------------------- the report
def evaluate(
    settings: Settings,
    data: Path,
    records: Sequence[str] = (),
    max_minutes: float | None = None,
    workdir: Path = Path(".cardiowatch/evaluate-alarms"),
    timeout_s: float = 1800.0,
    speed: float = DEFAULT_SPEED,
) -> dict[str, Any]:
    """Replay the annotated recordings of ``data`` through the live pipeline and judge the alarms.

    Args:
        settings: Worker settings (window, hop, thresholds); the broker and ports are the run's own.
        data: A folder laid out like shared/data (``mitdb/`` with ``.atr`` files, ``waveform_streams/``
            with Challenge 2015 records, ``cpsc2021_sample/``); missing folders are skipped and said.
        records: Record paths relative to ``data`` (default: every annotated MIT-BIH and CPSC 2021 record and
            every Challenge 2015 record).
        max_minutes: Replay only this much of each annotated record.
        workdir: Logs of the broker and the worker.
        timeout_s: Longest wait for the pipeline to finish.
        speed: Replay speed, x real time.
    """
    paths = [data / r for r in records] if records else _default_records(data)
    annotated: dict[str, tuple[Path, list[Span]]] = {}
    challenge: dict[str, tuple[Path, str, bool]] = {}
    recordings: dict[str, Recording] = {}
    for path in paths:
        label = challenge_label(path)
        limit = CHALLENGE_ALARM_S if label else (max_minutes * 60 if max_minutes else None)
        rec = read_recording(path, max_duration_s=limit)
        pid = default_patient_id(path)
        if label:
            challenge[pid] = (path, *label)
        else:
            spans = reference_spans(path, rec.duration_s)
            if spans is None:
                log.warning("%s: no annotations and not a Challenge 2015 record: skipped", path)
                continue
            annotated[pid] = (path, spans)
        recordings[pid] = rec
    if not recordings:
        raise FileNotFoundError(f"no annotated recordings under {data}")
    run = run_live(settings, recordings, workdir, timeout_s, speed)

    hours = sum(recordings[p].duration_s for p in annotated) / 3600
    totals = {"policy": {k: Tally() for k in KINDS}, "naive": {k: Tally() for k in KINDS}}
    per_record = []
    for pid, (path, reference) in annotated.items():
        end = recordings[pid].duration_s
        systems = {
            "policy": alarm_spans(run.alerts.get(pid, []), run.start, end),
            "naive": naive_spans(run.scores.get(pid, []), run.start),
        }
        row: dict[str, Any] = {
            "record": str(path.relative_to(data)),
            "patient_id": pid,
            "hours": end / 3600,
            "windows": len(run.scores.get(pid, [])),
            "windows_closed_by_silence": sum(
                any(d["kind"] == "signal_lost" for d in sc["detections"]) for sc in run.scores.get(pid, [])
            ),
            "reference": [asdict(s) for s in reference],
        }
        for name, spans in systems.items():
            tallies = judge(reference, spans)
            for kind, tally in tallies.items():
                totals[name][kind].add(tally)
            row[name] = {k: asdict(t) for k, t in tallies.items() if t.reference or t.alarms}
            row[f"{name}_alarms"] = [asdict(s) for s in spans]
        per_record.append(row)

    challenge_rows = []
    for pid, (path, kind, truth) in challenge.items():
        end = recordings[pid].duration_s
        verdicts = {
            "policy": challenge_verdict(alarm_spans(run.alerts.get(pid, []), run.start, end), kind),
            "naive": challenge_verdict(naive_spans(run.scores.get(pid, []), run.start), kind),
        }
        challenge_rows.append({"record": str(path.relative_to(data)), "kind": kind, "true_alarm": truth, **verdicts})

    def confusion(name: str) -> dict[str, Any]:
        cells = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
        for r in challenge_rows:
            cells[("t" if r[name] == r["true_alarm"] else "f") + ("p" if r[name] else "n")] += 1
        return {**cells, "score": challenge_score(**cells)}

    return {
        "data": str(data),
        "records": len(annotated),
        "patient_hours": round(hours, 3),
        "challenge_records": len(challenge_rows),
        "window_s": settings.window_s,
        "hop_s": settings.hop_s,
        "match_tolerance_s": MATCH_TOLERANCE_S,
        "wall_s": round(run.wall_s, 1),
        "speed": speed,
        "kinds": {k: {name: totals[name][k].summary(hours) for name in totals} for k in KINDS},
        "all_rhythm_alarms": {name: _all(totals[name]).summary(hours) for name in totals},
        "challenge_2015": {"records": challenge_rows, **{name: confusion(name) for name in ("policy", "naive")}},
        "per_record": per_record,
    }


def _all(tallies: Mapping[str, Tally]) -> Tally:
    total = Tally()
    for t in tallies.values():
        total.add(t)
    return total


def _default_records(data: Path) -> list[Path]:
    paths: list[Path] = []
    for folder in ("mitdb", "cpsc2021_sample", "waveform_streams"):
        if not (data / folder).is_dir():
            log.warning("%s: not found, skipped", data / folder)
            continue
        for path in expand([data / folder]):
            if path.with_suffix(".atr").exists() or challenge_label(path):
                paths.append(path)
    return paths


def markdown(report: Mapping[str, Any]) -> str:
    """The report as a readable summary: one table row per kind and system, then the Challenge score."""
    lines = [
        f"# Alarm evaluation through the live pipeline: {report['records']} annotated records, "
        f"{report['patient_hours']:.2f} patient-hours",
        "",
        f"Data: `{report['data']}`; window {report['window_s']:g} s, hop {report['hop_s']:g} s; "
        f"match tolerance {report['match_tolerance_s']:g} s; replayed at {report['speed']:g}x real time in "
        f"{report['wall_s']:.0f} s.",
        "",
        "| kind | system | expected (+ below definition) | detected | Se | alarms | false | PPV "
        "| median / max delay (s) "
        f"| within {ALARM_DELAY_LIMIT_S:g} s | false / patient-hour |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(v: Any, fmt: str = "") -> str:
        return "-" if v is None else format(v, fmt)

    rows = [(k, report["kinds"][k]) for k in KINDS] + [("all rhythm alarms", report["all_rhythm_alarms"])]
    for kind, systems in rows:
        for name in ("policy", "naive"):
            s = systems[name]
            lines.append(
                f"| {kind} | {name} | {s['reference_episodes']} (+{s['annotated_below_definition']}) "
                f"| {s['detected']} | {cell(s['sensitivity'], '.3f')} | "
                f"{s['alarms']} | {s['false_alarms']} | {cell(s['ppv'], '.3f')} | "
                f"{cell(s['median_delay_s'])} / {cell(s['max_delay_s'])} | {s['within_limit']} | "
                f"{cell(s['false_alarms_per_patient_hour'])} |"
            )
    ch = report["challenge_2015"]
    if ch["records"]:
        lines += [
            "",
            "PhysioNet/CinC 2015 records (alarm at 5 min, real-time):",
            "",
            "| record | alarm | truth | policy says | naive says |",
            "|---|---|---|---|---|",
        ]
        for r in ch["records"]:
            lines.append(
                f"| {r['record']} | {r['kind']} | {'true' if r['true_alarm'] else 'false'} | "
                f"{'true' if r['policy'] else 'false'} | {'true' if r['naive'] else 'false'} |"
            )
        for name in ("policy", "naive"):
            c = ch[name]
            lines.append(f"\n{name}: TP {c['tp']}, TN {c['tn']}, FP {c['fp']}, FN {c['fn']}; score {cell(c['score'])}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``cardiowatch evaluate-alarms``: run, write the JSON and markdown reports, print the summary."""
    report = evaluate(settings, args.data, args.records, args.minutes, args.out / "logs", args.timeout_s, args.speed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alarms.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.out / "alarms.md").write_text(text)
    print(text)
    return 0
