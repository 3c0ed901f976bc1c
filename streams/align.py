"""Multimodal alignment: a closed ECG window joined with the vitals and context known at its end.

Pure functions over plain, JSON-friendly per-patient state (the worker keeps that state in changelogged
tables, :mod:`streams.tables`):

* **Vitals** are joined *as of* the window end: per signal, the latest measurement taken at or before the
  end and no older than the signal's staleness limit (:data:`STALENESS_S`), with its age and its trend
  (least-squares slope per hour over the last ``trend_s`` seconds). A value measured after the window end is
  never used for that window, whatever order the events arrived in.
* **Imaging** findings and **notes** are context: the latest study within ``imaging_horizon_s`` and the
  latest notes within ``notes_horizon_s`` of the window end, each with its age.

The result, :class:`AlignedSample`, is the one input type a scorer takes (:mod:`streams.scoring`).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from streams.records import VITAL_CODES, ImagingEvent, NoteEvent, VitalsEvent
from streams.windows import US, EcgWindow

#: Maximum age (s) of a vital sign joined to a window. Continuous monitor numerics (heart rate, SpO2,
#: respiration, invasive pressures) are reported at least once a minute by bedside monitors, so 2 minutes
#: without one means the signal is gone; a cuff pressure is typically cycled every 15-60 minutes; temperature
#: and consciousness are nursing observations, which NEWS2 (RCP 2017, chart 2) asks for at least 12-hourly at
#: the lowest score. These limits are the project's choices from those intervals, not published thresholds.
STALENESS_S: Final[Mapping[str, float]] = {
    "heart_rate": 120,
    "pulse_rate_oximetry": 120,
    "respiratory_rate": 120,
    "spo2": 120,
    "spo2_pulse_oximetry": 120,
    "systolic_bp": 3600,
    "diastolic_bp": 3600,
    "mean_bp": 3600,
    "body_temperature": 12 * 3600,
    "oxygen_flow_rate": 4 * 3600,
    "inspired_oxygen_fraction": 4 * 3600,
    "consciousness": 12 * 3600,
}

_NAMES: Final = {code: spec.name for code, spec in VITAL_CODES.items()}


@dataclass(frozen=True, slots=True)
class AlignConfig:
    """Horizons of the join, seconds."""

    trend_s: float = 900.0
    imaging_horizon_s: float = 30 * 86400.0
    notes_horizon_s: float = 72 * 3600.0
    max_notes: int = 3
    #: Oldest point kept of each signal, before that signal's newest: the trend horizon plus a minute (so a
    #: window ending up to a minute before the newest point still gets its whole trend). A signal's newest
    #: point is always kept, so a value with a long staleness limit (a 12-hourly temperature) is never
    #: dropped by the faster signals beside it.
    keep_s: float = 900.0 + 60.0
    #: At most one stored point per signal per this many seconds (older points thinned; the newest always kept),
    #: so a patient's state stays a few dozen points per signal whatever the monitor's rate; a trend over 15
    #: minutes needs no finer steps. Also how often continuous numerics are written to the changelog.
    resolution_s: float = 60.0
    #: Points this recent (before the signal's newest) are all kept, unthinned: a window is aligned grace plus
    #: up to a chunk after its end, and a few seconds more under load, and must still find the last value
    #: measured at or before its end, not one from up to ``resolution_s`` earlier. A point this long or longer
    #: after the one before it is a sporadic reading, written to the changelog at once (:func:`changelog_due`).
    recent_s: float = 15.0


@dataclass(frozen=True, slots=True)
class VitalValue:
    """One vital sign as of a window end: value (or ACVPU letter), its age and its trend."""

    value: float | str
    age_s: float
    trend_per_h: float | None

    def __reduce__(self) -> tuple[type[VitalValue], tuple[Any, ...]]:
        # sent to the scoring process with every window: dataclasses' pickling of a frozen slotted class
        # looks up fields() per object, which cost the event loop more than the rest of the pickling
        return VitalValue, (self.value, self.age_s, self.trend_per_h)


@dataclass(frozen=True, slots=True)
class Context:
    """An imaging study or a note as context: its content and its age at the window end."""

    kind: str
    age_s: float
    data: Mapping[str, Any]

    def __reduce__(self) -> tuple[type[Context], tuple[Any, ...]]:
        return Context, (self.kind, self.age_s, self.data)  # as VitalValue.__reduce__


@dataclass(slots=True)
class AlignedSample:
    """The aligned picture of one patient at one window: the scorer's only input.

    Attributes:
        patient_id: The patient.
        start_us: Window start, microseconds since the epoch (UTC).
        end_us: Window end (exclusive).
        ecg: The waveform window, or None when there is none (vitals-only patient).
        vitals: Vital name (as in ``VITAL_CODES``) -> value as of the window end.
        imaging: The latest imaging study within its horizon, or None.
        notes: The latest notes within their horizon, newest first.
        arrival_s: Wall time the last input of the window arrived (for latency metrics).
        beat_reference: The patient's reference beat per ECG lead (:func:`models.qrs.reference_beat`) that the
            worker has learned so far; empty when none.
        learn_reference: Whether the scorer should learn a new reference beat from this window.
    """

    patient_id: str
    start_us: int
    end_us: int
    ecg: EcgWindow | None
    vitals: dict[str, VitalValue] = field(default_factory=dict)
    imaging: Context | None = None
    notes: list[Context] = field(default_factory=list)
    arrival_s: float = 0.0
    beat_reference: dict[str, np.ndarray] = field(default_factory=dict)
    learn_reference: bool = False

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in contract order."""
        present = [("ecg", self.ecg is not None), ("vitals", bool(self.vitals))]
        present += [("imaging", self.imaging is not None), ("notes", bool(self.notes))]
        return [name for name, ok in present if ok]


# ------------------------------------------------------------------------------------------- vitals state


def add_vitals(
    history: dict[str, list[list[Any]]], event: VitalsEvent, config: AlignConfig
) -> dict[str, list[list[Any]]]:
    """Fold one vitals event into a patient's history ``{name: [[time_s, value], ...]}`` sorted by time.

    Points older than ``keep_s`` before the newest are dropped (except the newest of them, which a window
    ending before the newer points may still need within the signal's staleness limit), and points more than
    ``recent_s`` before the newest that lie closer than ``resolution_s`` to a newer one are thinned (the
    newer wins), so the state stays small whatever the monitor's rate.

    Example:
        >>> from datetime import datetime, UTC
        >>> from streams.records import VitalsEvent
        >>> ev = VitalsEvent.model_validate({"schema": "cardiowatch.vitals", "version": 1, "patient_id": "p",
        ...     "source_id": "m", "seq": 0, "time": datetime(2024, 1, 1, tzinfo=UTC),
        ...     "observations": [{"code": "8867-4", "value": 72, "unit": "/min"}]})
        >>> add_vitals({}, ev, AlignConfig())
        {'heart_rate': [[1704067200.0, 72.0]]}
    """
    t = event.time.timestamp()
    for obs in event.observations:
        name = _NAMES[obs.code]
        value: Any = obs.value_code if obs.value is None else float(obs.value)
        series = history.setdefault(name, [])
        i = bisect.bisect_right(series, t, key=lambda p: p[0])
        if i and series[i - 1][0] == t:
            series[i - 1][1] = value
        else:
            series.insert(i, [t, value])
        newest = series[-1][0]
        # thin where points leave the recent stretch: one point per resolution step before it
        j = _recent_start(series, config) - 1  # the newest point before the recent stretch
        if j >= 2 and series[j - 1][0] - series[j - 2][0] < config.resolution_s:
            del series[j - 1]
        while len(series) > 1 and series[1][0] <= newest - config.keep_s:
            series.pop(0)
    return history


def changelog_due(
    history: Mapping[str, list[list[Any]]], written: Mapping[str, list[Any]], config: AlignConfig
) -> bool:
    """Whether a patient's vitals history should be written to the changelog now.

    ``written`` maps each signal to its newest point ``[time_s, value]`` in the last write. A write is due
    when a signal's newest point differs from the written one and

    * the signal is new, or its newest point lies ``resolution_s`` or more past the written one;
    * or the point is sporadic: it came ``recent_s`` or more after the point before it, or that point did
      after its own predecessor (a cuff pressure, a temperature and its correction, the first numerics
      after a pause);
    * or it corrects the written point (the same time, another value).

    A monitor's continuous numerics are therefore written about once per ``resolution_s``, not on every
    event; while they flow the changelog lags the worker's memory by less than that, which a restarted
    worker regains from the next reading. Whatever is not due here (a late point older than a signal's
    newest, a second correction, the last points before the numerics stop) the worker writes once the
    patient's vitals have paused for a few seconds (``persist_vitals`` in :func:`streams.app.create_app`).
    """
    for name, series in history.items():
        if not series:
            continue
        t, value = series[-1]
        last = written.get(name)
        if last is None:
            return True
        if t == last[0]:
            if value != last[1]:
                return True
            continue
        if t < last[0]:
            continue
        if t >= last[0] + config.resolution_s or _sporadic(series, config):
            return True
    return False


def _sporadic(series: list[list[Any]], config: AlignConfig) -> bool:
    """Whether a signal's newest point, or the one before it, came ``recent_s`` or more after its predecessor."""
    times = [p[0] for p in series[-3:]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return len(gaps) < 2 or any(g >= config.recent_s for g in gaps)


def newest_points(history: Mapping[str, list[list[Any]]]) -> dict[str, list[Any]]:
    """Each signal's newest point: what :func:`changelog_due` compares a later history with."""
    return {name: list(series[-1]) for name, series in history.items() if series}


def _recent_start(series: list[list[Any]], config: AlignConfig) -> int:
    """Index of a signal's first point within ``config.recent_s`` of its newest (the newest at the latest)."""
    return bisect.bisect_left(series, series[-1][0] - config.recent_s, key=lambda p: p[0])


def newer_than(stored: Mapping[str, list[list[Any]]], live: Mapping[str, list[list[Any]]]) -> bool:
    """True when ``stored`` holds a point newer than every point of the same signal in ``live``.

    That is, another worker wrote the patient's state while this one did not own the patient.
    """
    return any(series and (not live.get(name) or series[-1][0] > live[name][-1][0]) for name, series in stored.items())


def _spaced(series: list[list[Any]], since_s: float, step_s: float) -> list[list[Any]]:
    """The points at or after ``since_s`` that a trend is fitted to, evenly spaced however densely stored.

    Walking back from the last point, each point kept lies at least ``step_s`` before the one kept after it.
    """
    out: list[list[Any]] = []
    for p in reversed(series):
        if p[0] < since_s:
            break
        if not out or out[-1][0] - p[0] >= step_s:
            out.append(p)
    return out[::-1]


def vitals_as_of(history: Mapping[str, list[list[Any]]], end_s: float, config: AlignConfig) -> dict[str, VitalValue]:
    """Each vital's latest value at or before ``end_s`` within its staleness limit, with age and trend."""
    out: dict[str, VitalValue] = {}
    for name, series in history.items():
        i = bisect.bisect_right(series, end_s, key=lambda p: p[0])
        if not i:
            continue
        t, value = series[i - 1]
        age = end_s - t
        if age > STALENESS_S.get(name, 120.0):
            continue
        trend = None
        if not isinstance(value, str):
            recent = _spaced(series[:i], end_s - config.trend_s, config.resolution_s)
            if len(recent) >= 3:
                ts = np.array([p[0] for p in recent]) - end_s
                if np.ptp(ts) > 0:
                    trend = round(float(np.polyfit(ts / 3600.0, [p[1] for p in recent], 1)[0]), 4)
        out[name] = VitalValue(value, round(age, 3), trend)
    return out


# ------------------------------------------------------------------------------------------ context state


def add_context(context: dict[str, Any], event: ImagingEvent | NoteEvent, config: AlignConfig) -> dict[str, Any]:
    """Fold an imaging study or a note into a patient's context ``{"imaging": [...], "notes": [...]}``.

    Studies are kept newest last, at most a handful; notes the latest ``max_notes`` by time.
    """
    if isinstance(event, ImagingEvent):
        entry = {
            "time": event.study_time.timestamp(),
            "study_id": event.study_id,
            "modality": event.modality,
            "findings": event.findings.model_dump(exclude_none=True),
        }
        studies = [s for s in context.get("imaging", []) if s["study_id"] != event.study_id] + [entry]
        context["imaging"] = sorted(studies, key=lambda s: s["time"])[-8:]
    else:
        note = {
            "time": event.time.timestamp(),
            "note_id": event.note_id,
            "author_role": event.author_role,
            "text": event.text[:2000],
        }
        notes = [n for n in context.get("notes", []) if n["note_id"] != event.note_id] + [note]
        context["notes"] = sorted(notes, key=lambda n: n["time"])[-max(config.max_notes, 1) * 2 :]
    return context


def align(
    window: EcgWindow | None,
    patient_id: str,
    start_us: int,
    end_us: int,
    vitals: Mapping[str, list[list[Any]]] | None,
    context: Mapping[str, Any] | None,
    config: AlignConfig,
) -> AlignedSample:
    """Join a window with the vitals and context known at its end (see the module docstring)."""
    end_s = end_us / US
    sample = AlignedSample(patient_id, start_us, end_us, window, arrival_s=window.arrival_s if window else 0.0)
    if vitals:
        sample.vitals = vitals_as_of(vitals, end_s, config)
    if context:
        studies = [s for s in context.get("imaging", []) if 0 <= end_s - s["time"] <= config.imaging_horizon_s]
        if studies:
            s = studies[-1]
            sample.imaging = Context(
                "imaging", round(end_s - s["time"], 3), {"modality": s["modality"], **s["findings"]}
            )
        notes = [n for n in context.get("notes", []) if 0 <= end_s - n["time"] <= config.notes_horizon_s]
        sample.notes = [
            Context("note", round(end_s - n["time"], 3), {"author_role": n["author_role"], "text": n["text"]})
            for n in reversed(notes[-config.max_notes :])
        ]
    return sample
