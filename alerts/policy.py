"""The alarm policy: pure functions ``(state, event) -> (state, alerts)`` over one patient's alert state.

Events are a patient's scores (:class:`streams.records.RiskScore`, one per window and hop), acknowledgements
(:class:`streams.records.AlertAck`) and clock ticks. Outputs are :class:`streams.records.Alert` records, one per
change of state of an episode: the ``alerts`` topic is the audit trail.

**Conditions.** :func:`conditions` reads a score into the condition of every alarm kind (:data:`RULES`):

* physiological, from the rhythm detections of the score (PhysioNet/CinC 2015 definitions, Clifford et al.
  2015: asystole, extreme bradycardia, extreme tachycardia, ventricular tachycardia, ventricular
  flutter/fibrillation), from the RR irregularity
  (atrial fibrillation, :data:`AF_IRREGULARITY`), from NEWS2 (RCP 2017: total >= 5 urgent, >= 7 emergency,
  a single parameter scoring 3) and from the model's risk;
* technical: signal lost, poor ECG quality or lead off, stale vitals; the pipeline stalling is raised by
  :func:`on_tick` when the worker's own scores stop arriving.

**False-alarm reduction** (Drew et al. 2014 found 88.8 % of ICU arrhythmia alarms false; the PhysioNet/CinC
2015 winners fused the ECG with the arterial-pressure and pleth pulse and with signal quality):

* a rate alarm (extreme bradycardia, extreme tachycardia, ventricular tachycardia) found on ECG of quality
  below :data:`MIN_ECG_QUALITY` is held back until the ECG is readable again (it is raised then if the
  condition persists) — unless a pulse waveform confirms it;
* when the monitor sends an arterial-pressure or pleth waveform (``pulse_rate_bpm`` in the score), a rate
  alarm whose pulse rate disagrees (beyond the IEC 60601-2-27 heart-rate accuracy, +-10 % or 5 bpm) is
  suppressed, whatever the ECG quality -- except that a pulse below :data:`PERFUSING_PULSE_BPM` never
  suppresses a tachycardia (a fast rhythm without a perfusing pulse is the worse case);
* **asystole and ventricular fibrillation are never suppressed** by poor quality; only a pulse waveform
  showing a perfusing pulse (``pulse_rate_bpm`` >= :data:`PERFUSING_PULSE_BPM`) suppresses them.

**Episodes and states** (IEC 60601-1-8; IHE PCD ACM phases): a condition that holds for its rule's
``confirm_s`` opens an episode in state ``active``; unacknowledged past ``escalate_s`` it becomes ``escalated``
(also when it is ``latched`` by then: a high-priority alarm nobody has seen escalates though it ended);
a person acknowledges it (``acknowledged``), silences it for a time (``acknowledged`` until the silence ends,
then ``active`` again if the condition persists) or resolves it. An acknowledged episode whose condition
persists is re-announced (``active``) every ``realert_s``. When the condition has been absent for
``clear_s`` the episode is ``resolved`` — except a *latching* (high-priority) episode that nobody has
acknowledged: it becomes ``latched`` (the condition is over, the alarm stays until acknowledged, then
resolves; the condition returning makes it ``active`` again). Score-based kinds use hysteresis: raised at one
level, cleared below a lower one (in between, the condition counts as present). One NEWS2 alarm at a time: the
emergency alarm resolves an open urgent one. An episode opens at the patient's clock (the window end, or later
when scores arrive late), so escalation counts from when it was raised.

**Deterministic ids.** An episode's id is ``patient:kind:onset`` with the onset in event time, and every
change carries ``revision`` (+1 per change). The same scores give the same ids and revisions, so a worker
that restarts and re-reads scores it had already handled repeats records a consumer already has (same id and
revision) and never opens a second id for one episode; scores at or before the last window handled are
ignored. A condition that returns with the onset of an episode already resolved (a person resolved the alarm
while the pause went on, say) reopens that id at its next revision, never at revision 0.

Times are event times in epoch seconds: a score's window end, an acknowledgement's time, a tick's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from streams.records import Alert, AlertAck, Priority, RiskScore

#: ECG signal-quality index below which a rate alarm waits for readable ECG: the scorer's own gate
#: (:data:`streams.scoring.MIN_QUALITY`, bSQI after Li, Mark & Clifford 2008).
MIN_ECG_QUALITY: Final = 0.5
#: Quality at or above which a poor-quality technical alarm clears (hysteresis above :data:`MIN_ECG_QUALITY`).
GOOD_ECG_QUALITY: Final = 0.6
#: Pulse rate (/min) on an arterial-pressure or pleth waveform taken as a perfusing pulse: the extreme-
#: bradycardia limit of the PhysioNet/CinC 2015 definitions (below it the challenge itself calls the rhythm
#: life-threatening).
PERFUSING_PULSE_BPM: Final = 40.0
#: RR irregularity (normalised RMSSD, :func:`models.signal.rr_features`) above which a window counts as
#: irregular: Dash et al. (2009)'s AF threshold.
AF_IRREGULARITY: Final = 0.1
#: Relative and absolute heart-rate tolerance when a pulse rate is compared with an ECG condition: the
#: IEC 60601-2-27 heart-rate accuracy (+-10 % or +-5 bpm, whichever is greater; REFERENCES.md, [verify]).
RATE_TOLERANCE: Final = (0.10, 5.0)


@dataclass(frozen=True, slots=True)
class Rule:
    """How one alarm kind is raised, escalated and cleared.

    Attributes:
        kind: Alarm kind (the ``kind`` of its alerts).
        category: ``physiological`` or ``technical``.
        priority: IEC 60601-1-8 priority (REFERENCES.md table: harm if nobody responds, and how soon).
        confirm_s: How long the condition must hold before an episode opens (0: at once).
        clear_s: How long it must be absent before the episode resolves.
        escalate_s: Unacknowledged this long after it opened, the episode escalates.
        realert_s: An acknowledged episode whose condition persists is announced again after this long.
        latching: The episode stays until acknowledged even when the condition ends (high priority).
        message: Text for people.
    """

    kind: str
    category: str
    priority: Priority
    confirm_s: float
    clear_s: float
    escalate_s: float
    realert_s: float
    latching: bool
    message: str


def _rule(kind: str, category: str, priority: Priority, confirm_s: float, clear_s: float, message: str) -> Rule:
    high = priority is Priority.HIGH
    # Escalation and re-alert intervals: 2 min / 5 min for high priority, 5 / 15 min for medium, 15 / 60 min
    # for low. These are the project's defaults, not published figures; a site sets its own.
    escalate, realert = {Priority.HIGH: (120, 300), Priority.MEDIUM: (300, 900), Priority.LOW: (900, 3600)}[priority]
    return Rule(kind, category, priority, confirm_s, clear_s, escalate, realert, high, message)


#: Every alarm kind. Priorities from the IEC 60601-1-8 table in REFERENCES.md: the life-threatening rhythms
#: of the PhysioNet/CinC 2015 challenge (death if nobody responds at once) are HIGH, as the red alarms of
#: bedside monitors; NEWS2 >= 7 asks for an emergency response (HIGH), >= 5 for an urgent one (MEDIUM); a
#: single parameter scoring 3 for an urgent ward-based review (LOW); atrial fibrillation and a high model
#: risk are reversible harm needing a prompt response (MEDIUM). Technical alarms: signal lost and a stalled
#: pipeline leave the patient unmonitored (MEDIUM); poor quality and stale vitals degrade it (LOW).
#: ``confirm_s``: the rhythm detections already carry their own duration rules (>= 4 s pause, 5 / 17 beats), so
#: they raise at once (IEC 60601-2-27 wants heart-rate alarms within 10 s); atrial fibrillation needs 30 s of
#: irregular windows (the 30-s episode length of the ESC 2020 AF guideline); NEWS2 and the model risk a
#: minute of scores (vitals change over minutes); poor quality 10 s.
RULES: Final[Mapping[str, Rule]] = {
    r.kind: r
    for r in (
        _rule("asystole", "physiological", Priority.HIGH, 0, 10, "Asystole: no QRS for 4 s or more"),
        _rule("ventricular_fibrillation", "physiological", Priority.HIGH, 0, 10, "Ventricular fibrillation/flutter"),
        _rule("ventricular_tachycardia", "physiological", Priority.HIGH, 0, 10, "Ventricular tachycardia"),
        _rule("extreme_bradycardia", "physiological", Priority.HIGH, 0, 10, "Extreme bradycardia (< 40 /min)"),
        _rule("extreme_tachycardia", "physiological", Priority.HIGH, 0, 10, "Extreme tachycardia (> 140 /min)"),
        _rule("atrial_fibrillation", "physiological", Priority.MEDIUM, 30, 60, "Irregular rhythm: possible AF"),
        _rule("news2_emergency", "physiological", Priority.HIGH, 60, 120, "NEWS2 >= 7: emergency response"),
        _rule("news2_urgent", "physiological", Priority.MEDIUM, 60, 120, "NEWS2 5-6: urgent response"),
        _rule("news2_single_parameter", "physiological", Priority.LOW, 60, 120, "NEWS2: one parameter scores 3"),
        _rule("risk_high", "physiological", Priority.MEDIUM, 60, 120, "Model cardiac risk high"),
        _rule("signal_lost", "technical", Priority.MEDIUM, 0, 0, "ECG signal lost"),
        _rule("ecg_quality", "technical", Priority.LOW, 10, 10, "Poor ECG signal or lead off"),
        _rule("vitals_stale", "technical", Priority.LOW, 0, 0, "Vital signs no longer arriving"),
        _rule("pipeline_stalled", "technical", Priority.MEDIUM, 0, 0, "Monitoring pipeline stalled: no scores"),
    )
}

#: Rhythm kinds suppressed by a pulse waveform whose rate disagrees, with the side of the limit the pulse
#: must be on to confirm them.
_RATE_KINDS: Final = {"extreme_bradycardia": (40.0, "below"), "extreme_tachycardia": (140.0, "above"),
                      "ventricular_tachycardia": (100.0, "above")}  # fmt: skip


#: Kinds that poor ECG quality never holds back: only a perfusing pulse on a pulse waveform suppresses them.
_NEVER_SUPPRESSED: Final = ("asystole", "ventricular_fibrillation")

#: A kind that is not raised while the kind it maps to has an open episode.
_SUPERSEDED_BY: Final = {"news2_urgent": "news2_emergency"}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score levels of the score-based kinds (hysteresis: raised at ``raise``, cleared below ``clear``).

    NEWS2 levels are the RCP 2017 response thresholds; each clears one point below the level that raised it.
    The model-risk levels are the project's defaults for a calibrated probability, a setting of the worker.
    """

    news2_emergency: tuple[float, float] = (7, 6)
    news2_urgent: tuple[float, float] = (5, 4)
    risk_high: tuple[float, float] = (0.5, 0.4)


@dataclass(slots=True)
class Condition:
    """One kind's condition in one score: present or not, since when (event time), and why."""

    present: bool
    onset: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    #: Held back by the false-alarm rules (present on the ECG, not raised); the reason is in ``evidence``.
    suppressed: bool = False


@dataclass(slots=True)
class Episode:
    """An open alarm episode of one kind."""

    alert_id: str
    kind: str
    state: str
    priority: str
    onset: float
    opened: float
    revision: int
    notified: float  # when it was last announced (opened, escalated, re-alerted)
    present: bool = True
    clear_since: float | None = None
    silenced_until: float | None = None
    acknowledged_by: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    #: When it last escalated (None: not since it was last announced); an episode escalates once per announcement.
    escalated_at: float | None = None
    #: When its condition ended while it awaited acknowledgement (latched; it may have escalated since).
    latched_at: float | None = None


@dataclass(slots=True)
class PatientAlerts:
    """Alert state of one patient (stored as plain JSON in a changelogged table: :meth:`to_json`)."""

    patient_id: str
    clock: float = 0.0
    #: Wall time at which the worker last advanced ``clock`` (the policy does not read it; the worker's timer
    #: moves the clock on by the wall time elapsed since, so a replay of past data escalates in event time).
    clock_wall: float = 0.0
    last_window_end: float = 0.0
    had_vitals: bool = False
    model_version: str | None = None
    pending: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    #: Per kind, the id and revision of the last episode that was resolved: a condition that returns with the
    #: same onset (the same pause, say, after a person resolved its alarm) reopens that id at the next revision.
    closed: dict[str, tuple[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_json(cls, patient_id: str, data: Mapping[str, Any] | None) -> PatientAlerts:
        """The state stored by :meth:`to_json` (a fresh state for None or an empty mapping)."""
        if not data:
            return cls(patient_id)
        fields = dict(data)
        fields["episodes"] = {k: Episode(**v) for k, v in fields.get("episodes", {}).items()}
        fields["closed"] = {k: (str(v[0]), int(v[1])) for k, v in fields.get("closed", {}).items()}
        return cls(**fields)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def alert_id(patient_id: str, kind: str, onset: float) -> str:
    """Deterministic id of an episode: patient, kind and onset (event time, UTC, milliseconds)."""
    stamp = _utc(onset).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{patient_id}:{kind}:{stamp}"


def conditions(score: RiskScore, thresholds: Thresholds = Thresholds()) -> dict[str, Condition]:
    """Every kind's condition in one score, after the false-alarm rules (see the module docstring)."""
    end = score.window_end.timestamp()
    out = {kind: Condition(False) for kind in RULES if kind != "pipeline_stalled"}
    has_ecg = "ecg" in score.modalities
    quality = score.signal_quality
    pulse = score.scores.get("pulse_rate_bpm")
    for d in score.detections:
        c = out[d.kind]
        onset = d.onset_time.timestamp()
        if not c.present or onset < (c.onset or onset):
            c.present, c.onset = True, onset
        c.evidence = {**d.evidence, "signal_quality": round(quality, 3)}
    for kind, (limit, side) in _RATE_KINDS.items():
        c = out[kind]
        if not c.present:
            continue
        if pulse is not None:
            low, high = _tolerance(limit)
            # a pulse too slow to perfuse (pulseless VT, say) confirms a tachycardia rather than denying it
            agrees = pulse < high if side == "below" else pulse > low or pulse < PERFUSING_PULSE_BPM
            c.evidence["pulse_rate_bpm"] = pulse
            if not agrees:
                c.present, c.suppressed = False, True
                c.evidence["suppressed"] = "pulse waveform disagrees"
        elif quality < MIN_ECG_QUALITY:
            c.present, c.suppressed = False, True
            c.evidence["suppressed"] = f"ECG quality {quality:.2f} < {MIN_ECG_QUALITY}"
    for kind in _NEVER_SUPPRESSED:
        c = out[kind]
        if c.present and pulse is not None and pulse >= PERFUSING_PULSE_BPM:
            c.present, c.suppressed = False, True
            c.evidence.update(pulse_rate_bpm=pulse, suppressed="pulse waveform shows a perfusing pulse")
    irregularity = score.scores.get("rr_irregularity")
    if has_ecg and irregularity is not None and irregularity > AF_IRREGULARITY:
        out["atrial_fibrillation"] = Condition(True, end, {"rr_irregularity": irregularity})
    news2 = score.scores.get("news2")
    if news2 is not None and "vitals" in score.modalities:
        evidence = {"news2": news2, "parameters": score.scores.get("news2_parameters")}
        out["news2_emergency"] = Condition(news2 >= thresholds.news2_emergency[0], end, evidence)
        out["news2_urgent"] = Condition(
            thresholds.news2_urgent[0] <= news2 < thresholds.news2_emergency[0], end, evidence
        )
        out["news2_single_parameter"] = Condition(bool(score.scores.get("news2_single_parameter_3")), end, evidence)
    out["risk_high"] = Condition(score.risk >= thresholds.risk_high[0], end, {"risk": score.risk})
    if has_ecg:
        out["ecg_quality"] = Condition(quality < MIN_ECG_QUALITY, end, {"signal_quality": round(quality, 3)})
    return out


def _tolerance(limit: float) -> tuple[float, float]:
    """``limit`` widened by the heart-rate accuracy: the band a pulse rate must leave to disagree."""
    margin = max(limit * RATE_TOLERANCE[0], RATE_TOLERANCE[1])
    return limit - margin, limit + margin


#: Kinds read from the ECG: a score without ECG (a vitals-only score after the signal was lost) neither
#: raises nor clears them.
_ECG_KINDS: Final = frozenset(
    {"asystole", "ventricular_fibrillation", "ventricular_tachycardia", "extreme_bradycardia", "extreme_tachycardia",
     "atrial_fibrillation", "signal_lost", "ecg_quality"}
)  # fmt: skip


def _unknown(kind: str, c: Condition, score: RiskScore) -> bool:
    """True when ``score`` cannot tell whether an open episode's absent condition is over.

    Such a score neither clears the episode nor counts towards clearing it: no ECG in the score, or a rate
    alarm held back while the ECG is unreadable and no pulse waveform says otherwise.
    """
    if kind in _ECG_KINDS and "ecg" not in score.modalities:
        return True
    return kind in _RATE_KINDS and c.suppressed and score.scores.get("pulse_rate_bpm") is None


def _above_clear_level(kind: str, score: RiskScore, thresholds: Thresholds) -> bool:
    """Hysteresis: a score-based kind below its raise level but not yet below its clear level is still present.

    NEWS2 urgent counts only below the emergency level, which supersedes it.
    """
    if kind == "ecg_quality":
        return score.signal_quality < GOOD_ECG_QUALITY
    if kind in ("news2_emergency", "news2_urgent", "risk_high"):
        value = score.risk if kind == "risk_high" else score.scores.get("news2")
        if value is None or value < getattr(thresholds, kind)[1]:
            return False
        return kind != "news2_urgent" or value < thresholds.news2_emergency[0]
    return False


def _record(state: PatientAlerts, ep: Episode, now: float, message: str | None = None) -> Alert:
    rule = RULES[ep.kind]
    return Alert.model_validate(
        {
            "schema": "cardiowatch.alert",
            "version": 1,
            "alert_id": ep.alert_id,
            "patient_id": state.patient_id,
            "kind": ep.kind,
            "category": rule.category,
            "priority": ep.priority,
            "state": ep.state,
            "onset_time": _utc(ep.onset),
            "time": _utc(now),
            "message": message or rule.message,
            "evidence": {**ep.evidence, **({"acknowledged_by": ep.acknowledged_by} if ep.acknowledged_by else {})},
            "model_version": state.model_version,
            "revision": ep.revision,
        }
    )


def _change(state: PatientAlerts, ep: Episode, new_state: str, now: float, message: str | None = None) -> Alert:
    ep.state = new_state
    ep.revision += 1
    if new_state in ("active", "escalated"):
        ep.notified = now
    return _record(state, ep, now, message)


def on_score(
    state: PatientAlerts, score: RiskScore, thresholds: Thresholds = Thresholds()
) -> tuple[PatientAlerts, list[Alert]]:
    """Fold one score into the patient's alert state; returns the state (updated in place) and the changes."""
    end = score.window_end.timestamp()
    if end <= state.last_window_end:  # a repeat after a restart, or a window older than one handled
        return state, []
    state.last_window_end = end
    state.clock = max(state.clock, end)
    state.model_version = f"{score.scorer}-{score.scorer_version}"
    out: list[Alert] = []
    found = conditions(score, thresholds)
    if "vitals" in score.modalities:
        state.had_vitals = True
    elif state.had_vitals:
        found["vitals_stale"] = Condition(True, end, {"last_seen": "vitals modality missing from the score"})
    for kind, rule in RULES.items():
        if kind == "pipeline_stalled":
            continue
        c = found.get(kind, Condition(False))
        ep = state.episodes.get(kind)
        if c.present and ep is None and _SUPERSEDED_BY.get(kind) in state.episodes:
            c = Condition(False)  # the higher level's alarm is open: one NEWS2 alarm at a time
        if c.present:
            if ep is None:
                since = state.pending.setdefault(kind, c.onset if c.onset is not None else end)
                if end - since >= rule.confirm_s:
                    del state.pending[kind]
                    out.extend(_open(state, kind, since, c.evidence))
            else:
                returned = _latched(ep)
                ep.present, ep.clear_since, ep.evidence = True, None, c.evidence or ep.evidence
                if returned:
                    ep.opened, ep.escalated_at, ep.latched_at = state.clock, None, None
                    out.append(_change(state, ep, "active", state.clock, f"{rule.message} (returned)"))
            continue
        state.pending.pop(kind, None)
        if ep is None or _unknown(kind, c, score):
            continue
        if _above_clear_level(kind, score, thresholds):  # hysteresis: not raised again, but not gone either
            ep.present, ep.clear_since = True, None
            continue
        ep.present = False
        ep.clear_since = end if ep.clear_since is None else ep.clear_since
        if end - ep.clear_since >= rule.clear_s:
            out.extend(_end(state, ep, end))
    out.extend(_timers(state, state.clock))
    return state, out


def _open(state: PatientAlerts, kind: str, onset: float, evidence: dict[str, Any]) -> list[Alert]:
    """Open an episode of ``kind`` at the clock; an open episode of a kind it supersedes is resolved.

    The id is the onset's (:func:`alert_id`); when the last resolved episode of the kind had that id, it is
    reopened at its next revision, so a consumer keeping the highest revision per id sees it return.
    """
    rule = RULES[kind]
    now = state.clock  # the window end, or later when a backlog of scores arrives after the clock moved on
    ep_id = alert_id(state.patient_id, kind, onset)
    last_id, last_revision = state.closed.get(kind, ("", -1))
    ep = Episode(
        alert_id=ep_id,
        kind=kind,
        state="active",
        priority=rule.priority.value,
        onset=onset,
        opened=now,
        revision=last_revision if last_id == ep_id else -1,
        notified=now,
        evidence=evidence,
    )
    state.episodes[kind] = ep
    out = [_change(state, ep, "active", now)]
    for lower, higher in _SUPERSEDED_BY.items():
        if higher == kind and lower in state.episodes:
            out.append(_resolve(state, state.episodes[lower], now, f"{RULES[lower].message} (superseded)"))
    return out


def _resolve(state: PatientAlerts, ep: Episode, now: float, message: str | None = None) -> Alert:
    """Close an episode (state ``resolved``), remembering its id and revision (:attr:`PatientAlerts.closed`)."""
    del state.episodes[ep.kind]
    record = _change(state, ep, "resolved", now, message)
    state.closed[ep.kind] = (ep.alert_id, ep.revision)
    return record


def _latched(ep: Episode) -> bool:
    """Whether the episode's condition ended while it awaited acknowledgement (it may have escalated since)."""
    return ep.state == "latched" or ep.latched_at is not None


def _end(state: PatientAlerts, ep: Episode, now: float) -> list[Alert]:
    """The condition is over: resolve, unless a latching episode still awaits acknowledgement (latched)."""
    if _latched(ep):
        return []
    if RULES[ep.kind].latching and ep.state in ("active", "escalated"):
        ep.latched_at = now
        return [_change(state, ep, "latched", now, f"{RULES[ep.kind].message} (ended; latched until acknowledged)")]
    return [_resolve(state, ep, now)]


def _timers(state: PatientAlerts, now: float) -> list[Alert]:
    """Escalation of unacknowledged episodes; re-alert after a silence or the re-alert interval."""
    out = []
    for ep in list(state.episodes.values()):
        rule = RULES[ep.kind]
        if ep.state in ("active", "latched") and ep.escalated_at is None and now - ep.opened >= rule.escalate_s:
            why = "ended, unacknowledged" if ep.state == "latched" else "unacknowledged"
            ep.escalated_at = now
            out.append(_change(state, ep, "escalated", now, f"{rule.message} ({why}, escalated)"))
        elif ep.state == "acknowledged" and ep.present:
            if ep.silenced_until is not None:
                if now >= ep.silenced_until:
                    ep.silenced_until = None
                    ep.opened, ep.escalated_at = now, None
                    out.append(_change(state, ep, "active", now, f"{rule.message} (silence over)"))
            elif now - ep.notified >= rule.realert_s:
                ep.opened, ep.escalated_at = now, None
                out.append(_change(state, ep, "active", now, f"{rule.message} (still present)"))
    return out


def on_tick(state: PatientAlerts, now: float, stalled_since: float | None = None) -> tuple[PatientAlerts, list[Alert]]:
    """Advance the clock: escalations, silences ending, re-alerts; the pipeline-stalled alarm.

    Args:
        state: The patient's state (updated in place).
        now: The current time (event-time clock of the worker, epoch seconds).
        stalled_since: When the worker's own scores stopped arriving, if they have (None: they flow).
    """
    state.clock = max(state.clock, now)
    out: list[Alert] = []
    ep = state.episodes.get("pipeline_stalled")
    if stalled_since is not None and ep is None:
        ep = Episode(
            alert_id=alert_id(state.patient_id, "pipeline_stalled", stalled_since),
            kind="pipeline_stalled",
            state="active",
            priority=RULES["pipeline_stalled"].priority.value,
            onset=stalled_since,
            opened=state.clock,
            revision=-1,
            notified=state.clock,
            evidence={"no_scores_since": _utc(stalled_since).isoformat()},
        )
        state.episodes["pipeline_stalled"] = ep
        out.append(_change(state, ep, "active", state.clock))
    elif stalled_since is None and ep is not None:
        ep.present = False
        out.extend(_end(state, ep, state.clock))
    out.extend(_timers(state, state.clock))
    return state, out


def on_ack(state: PatientAlerts, ack: AlertAck) -> tuple[PatientAlerts, list[Alert]]:
    """A person acts on an episode: acknowledge, silence for ``silence_s``, or resolve.

    An acknowledgement of an unknown or already resolved episode changes nothing (no record). Acknowledging a
    latched episode whose condition has ended resolves it.
    """
    now = max(state.clock, ack.time.timestamp())
    state.clock = now
    ep = next((e for e in state.episodes.values() if e.alert_id == ack.alert_id), None)
    if ep is None:
        return state, []
    ep.acknowledged_by, ep.latched_at = ack.user, None
    ep.evidence = {**ep.evidence, "reason": ack.reason} if ack.reason else ep.evidence
    if ack.action == "resolve":
        return state, [_resolve(state, ep, now, f"{RULES[ep.kind].message} (resolved by {ack.user})")]
    ep.silenced_until = now + ack.silence_s if ack.action == "silence" and ack.silence_s else None
    message = f"{RULES[ep.kind].message} (" + (
        f"silenced {ack.silence_s:g} s by {ack.user})" if ep.silenced_until else f"acknowledged by {ack.user})"
    )
    out = [_change(state, ep, "acknowledged", now, message)]
    ep.notified = now
    if not ep.present and ep.silenced_until is None:
        out.append(_resolve(state, ep, now))
    return state, out
