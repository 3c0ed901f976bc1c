"""The alarm policy: every state transition, hysteresis, false-alarm rules, never-suppress, deterministic ids."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.policy import RULES, PatientAlerts, alert_id, on_ack, on_score, on_tick
from streams.records import Alert, AlertAck, RiskScore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def score(
    t: float,
    detections: list[tuple[str, float]] = (),  # type: ignore[assignment]
    quality: float = 0.95,
    risk: float = 0.1,
    modalities: tuple[str, ...] = ("ecg", "vitals"),
    **scores: float,
) -> RiskScore:
    """A score of the window ending ``t`` seconds after T0; detections as (kind, onset seconds after T0)."""
    end = T0 + timedelta(seconds=t)
    return RiskScore.model_validate(
        {
            "schema": "cardiowatch.risk_score",
            "version": 1,
            "score_id": f"p1:{end.isoformat()}:rules-1",
            "patient_id": "p1",
            "window_start": end - timedelta(seconds=10),
            "window_end": end,
            "risk": risk,
            "scores": scores,
            "modalities": list(modalities),
            "signal_quality": quality,
            "detections": [
                {
                    "kind": kind,
                    "category": "technical" if kind == "signal_lost" else "physiological",
                    "onset_time": T0 + timedelta(seconds=onset),
                    "evidence": {},
                }
                for kind, onset in detections
            ],
            "scorer": "rules",
            "scorer_version": "1.0.0",
        }
    )


def ack(alert: str, t: float, action: str = "acknowledge", **extra: Any) -> AlertAck:
    return AlertAck.model_validate(
        {
            "schema": "cardiowatch.alert_ack",
            "version": 1,
            "alert_id": alert,
            "patient_id": "p1",
            "action": action,
            "user": "nurse.a",
            "reason": "at bedside",
            "time": T0 + timedelta(seconds=t),
            **extra,
        }
    )


def run(state: PatientAlerts, *scores: RiskScore) -> list[Alert]:
    out: list[Alert] = []
    for s in scores:
        out += on_score(state, s)[1]
    return out


def states(alerts: list[Alert], kind: str | None = None) -> list[str]:
    return [a.state.value for a in alerts if kind is None or a.kind == kind]


def test_asystole_raises_at_once_with_a_deterministic_id_and_latches_until_acknowledged() -> None:
    st = PatientAlerts("p1")
    out = run(st, score(10, [("asystole", 5.2)]))
    assert [(a.kind, a.state.value, a.priority.value, a.revision) for a in out] == [("asystole", "active", "high", 0)]
    assert out[0].alert_id == alert_id("p1", "asystole", (T0 + timedelta(seconds=5.2)).timestamp())
    assert out[0].alert_id == "p1:asystole:2026-01-01T00:00:05.200Z"
    # the same episode in the next overlapping windows: nothing new
    assert run(st, score(12, [("asystole", 5.2)]), score(14, [("asystole", 5.2)])) == []
    # condition gone for clear_s: a latching alarm stays, latched, until acknowledged
    latched = run(st, *(score(t) for t in range(16, 60, 2)))
    assert [(a.state.value, a.time, a.revision) for a in latched] == [("latched", T0 + timedelta(seconds=26), 1)]
    assert st.episodes["asystole"].state == "latched"
    done = on_ack(st, ack(out[0].alert_id, 61))[1]
    assert states(done) == ["acknowledged", "resolved"]
    assert [a.revision for a in done] == [2, 3] and done[0].evidence["acknowledged_by"] == "nurse.a"
    assert "asystole" not in st.episodes


def test_a_latched_alarm_whose_condition_returns_is_active_again_under_the_same_id() -> None:
    st = PatientAlerts("p1")
    (first,) = run(st, score(10, [("extreme_bradycardia", 4)]))
    assert states(run(st, *(score(t) for t in range(12, 24, 2)))) == ["latched"]
    back = run(st, score(24, [("extreme_bradycardia", 20)]))
    assert [(a.state.value, a.alert_id, a.revision) for a in back] == [("active", first.alert_id, 2)]
    assert states(run(st, *(score(t) for t in range(26, 40, 2)))) == ["latched"]


def test_unacknowledged_alarm_escalates_and_acknowledged_one_re_alerts_while_present() -> None:
    st = PatientAlerts("p1")
    first = run(st, score(10, [("ventricular_tachycardia", 8)]))[0]
    escalate = RULES["ventricular_tachycardia"].escalate_s
    assert states(on_tick(st, first.time.timestamp() + escalate - 1)[1]) == []
    assert states(on_tick(st, first.time.timestamp() + escalate)[1]) == ["escalated"]
    acked = on_ack(st, ack(first.alert_id, 200))[1]
    assert states(acked) == ["acknowledged"]
    run(st, score(202, [("ventricular_tachycardia", 195)]))  # still present
    realert = RULES["ventricular_tachycardia"].realert_s
    assert states(on_tick(st, T0.timestamp() + 200 + realert - 1)[1]) == []
    again = on_tick(st, T0.timestamp() + 200 + realert)[1]
    assert states(again) == ["active"] and again[0].alert_id == first.alert_id and again[0].revision == 3


def test_silence_pauses_then_re_alerts_if_the_condition_persists() -> None:
    st = PatientAlerts("p1")
    first = run(st, score(10, [("extreme_tachycardia", 3)]))[0]
    assert states(on_ack(st, ack(first.alert_id, 11, "silence", silence_s=60))[1]) == ["acknowledged"]
    run(st, score(12, [("extreme_tachycardia", 3)]))
    assert on_tick(st, T0.timestamp() + 70)[1] == []
    back = on_tick(st, T0.timestamp() + 71)[1]
    assert states(back) == ["active"] and "silence over" in back[0].message


def test_an_acknowledged_alarm_resolves_when_its_condition_clears_and_a_user_can_resolve() -> None:
    st = PatientAlerts("p1")
    first = run(st, score(10, [("extreme_bradycardia", 4)]))[0]
    on_ack(st, ack(first.alert_id, 11))
    out = run(st, *(score(t) for t in range(12, 30, 2)))
    assert states(out) == ["resolved"] and out[0].time == T0 + timedelta(seconds=22)  # clear_s = 10 after 12
    st2 = PatientAlerts("p1")
    first = run(st2, score(10, [("extreme_bradycardia", 4)]))[0]
    assert states(on_ack(st2, ack(first.alert_id, 12, "resolve"))[1]) == ["resolved"]
    assert on_ack(st2, ack(first.alert_id, 13))[1] == []  # a resolved episode takes no more actions


@pytest.mark.parametrize("kind", ["asystole", "ventricular_fibrillation"])
def test_asystole_and_vf_are_never_suppressed_by_poor_quality_only_by_a_pulse(kind: str) -> None:
    st = PatientAlerts("p1")
    raised = run(st, score(10, [(kind, 5)], quality=0.05))
    assert states(raised) == ["active"] and raised[0].priority.value == "high"
    st = PatientAlerts("p1")
    assert run(st, score(10, [(kind, 5)], quality=0.05, pulse_rate_bpm=72.0)) == []
    st = PatientAlerts("p1")  # a pulse waveform without a perfusing pulse confirms it
    assert states(run(st, score(10, [(kind, 5)], quality=0.9, pulse_rate_bpm=0.0))) == ["active"]
    # scores without ECG neither raise nor clear it; ECG without the condition latches it (unacknowledged, high)
    assert run(st, *(score(t, modalities=("vitals",)) for t in range(12, 40, 2))) == []
    assert states(run(st, *(score(t) for t in range(40, 54, 2)))) == ["latched"]


def test_rate_alarms_wait_for_readable_ecg_and_follow_the_pulse_when_there_is_one() -> None:
    st = PatientAlerts("p1")
    assert run(st, score(10, [("extreme_tachycardia", 2)], quality=0.3)) == []  # noise: held back
    assert states(run(st, score(12, [("extreme_tachycardia", 2)], quality=0.8))) == ["active"]
    st = PatientAlerts("p1")  # poor ECG, pulse confirms: raised
    assert states(run(st, score(10, [("extreme_tachycardia", 2)], quality=0.3, pulse_rate_bpm=150.0))) == ["active"]
    st = PatientAlerts("p1")  # good ECG, pulse disagrees (90 /min): suppressed
    assert run(st, score(10, [("ventricular_tachycardia", 2)], pulse_rate_bpm=80.0)) == []
    # an open rate alarm is not cleared by windows where it is only held back for poor quality
    st = PatientAlerts("p1")
    run(st, score(10, [("extreme_bradycardia", 2)]))
    out = run(st, *(score(t, [("extreme_bradycardia", 2)], quality=0.2) for t in range(12, 40, 2)))
    assert [a.kind for a in out] == ["ecg_quality"]  # the technical alarm says why
    assert "extreme_bradycardia" in st.episodes


def test_news2_levels_need_a_minute_and_clear_with_hysteresis() -> None:
    st = PatientAlerts("p1")
    out = run(st, *(score(t, news2=7) for t in range(0, 60, 2)))
    assert out == []  # 58 s held: not yet
    out = run(st, score(60, news2=7))
    assert [(a.kind, a.priority.value) for a in out] == [("news2_emergency", "high")]
    assert out[0].onset_time == T0
    on_ack(st, ack(out[0].alert_id, 61))
    # 6 is above the clearing level: the (acknowledged) alarm goes on quietly
    assert run(st, *(score(t, news2=6) for t in range(62, 340, 2))) == []
    out = run(st, *(score(t, news2=5) for t in range(340, 560, 2)))
    # below the clearing level for clear_s (120 s): resolved; the urgent level, held back while the emergency
    # alarm was open, then needs its own minute
    assert [(a.kind, a.state.value, a.time) for a in out] == [
        ("news2_emergency", "resolved", T0 + timedelta(seconds=460)),
        ("news2_urgent", "active", T0 + timedelta(seconds=520)),
    ]


def test_an_unacknowledged_high_alarm_re_alerted_escalates_and_stays_latched() -> None:
    st = PatientAlerts("p1")
    first = run(st, *(score(t, news2=7) for t in range(0, 62, 2)))[0]
    on_ack(st, ack(first.alert_id, 61))
    out = run(st, *(score(t, news2=6) for t in range(62, 700, 2)), *(score(t, news2=1) for t in range(700, 900, 2)))
    assert [(a.state.value, a.time) for a in out] == [
        ("active", T0 + timedelta(seconds=362)),  # re-alert: still above the clearing level after 5 min
        ("escalated", T0 + timedelta(seconds=482)),  # nobody acknowledged the re-alert for 2 min
        ("latched", T0 + timedelta(seconds=820)),  # NEWS2 1 for the clearing time: over, but unacknowledged
    ]
    assert st.episodes["news2_emergency"].state == "latched"
    assert states(on_ack(st, ack(first.alert_id, 901))[1]) == ["acknowledged", "resolved"]


def test_a_latched_alarm_nobody_acknowledged_escalates_once_and_stays_until_acknowledged() -> None:
    st = PatientAlerts("p1")
    (first,) = run(st, score(10, [("ventricular_tachycardia", 8)]))
    assert states(run(st, *(score(t) for t in range(12, 40, 2)))) == ["latched"]  # a short run, over
    escalate = RULES["ventricular_tachycardia"].escalate_s
    assert states(on_tick(st, first.time.timestamp() + escalate - 1)[1]) == []
    (up,) = on_tick(st, first.time.timestamp() + escalate)[1]
    assert (up.state.value, up.alert_id, up.revision) == ("escalated", first.alert_id, 2)
    assert "ended, unacknowledged" in up.message
    # later scores without the condition and later ticks neither latch it again nor escalate it twice
    assert run(st, *(score(t) for t in range(130, 400, 2))) == []
    assert on_tick(st, first.time.timestamp() + 10 * escalate)[1] == []
    assert states(on_ack(st, ack(first.alert_id, 900))[1]) == ["acknowledged", "resolved"]


def test_a_condition_returning_to_an_alarm_escalated_while_latched_is_announced_again() -> None:
    st = PatientAlerts("p1")
    (first,) = run(st, score(10, [("ventricular_tachycardia", 8)]))
    run(st, *(score(t) for t in range(12, 40, 2)))
    escalate = RULES["ventricular_tachycardia"].escalate_s
    on_tick(st, first.time.timestamp() + escalate)
    back = run(st, score(140, [("ventricular_tachycardia", 136)]))
    assert [(a.state.value, a.alert_id, a.revision) for a in back] == [("active", first.alert_id, 3)]
    assert states(run(st, *(score(t) for t in range(142, 170, 2)))) == ["latched"]
    assert states(on_tick(st, back[0].time.timestamp() + escalate)[1]) == ["escalated"]  # a new announcement


def test_an_escalated_alarm_stays_escalated_while_present_and_latches_or_resolves_when_over() -> None:
    st = PatientAlerts("p1")
    out = run(st, *(score(t, [("ventricular_tachycardia", 8)]) for t in range(10, 400, 2)))
    assert states(out) == ["active", "escalated"]  # present throughout: escalated once, never "returned"
    # the condition ends 6 s before the escalation delay, so it escalates inside the clearing time
    st = PatientAlerts("p1")
    run(st, *(score(t, [("ventricular_tachycardia", 8)]) for t in range(10, 126, 2)))
    out = run(st, *(score(t) for t in range(126, 200, 2)))
    assert states(out) == ["escalated", "latched"]  # a latching kind still latches once the clearing time is over
    st = PatientAlerts("p1")
    run(st, *(score(t, news2=5) for t in range(0, 340, 2)))
    out = run(st, *(score(t, news2=2) for t in range(340, 600, 2)))
    assert states(out) == ["escalated", "resolved"]  # a kind that does not latch resolves


def test_single_parameter_3_and_model_risk_alerts() -> None:
    st = PatientAlerts("p1")
    out = run(st, *(score(t, news2=3, news2_single_parameter_3=1.0, risk=0.6) for t in range(0, 62, 2)))
    assert sorted((a.kind, a.priority.value) for a in out) == [
        ("news2_single_parameter", "low"),
        ("risk_high", "medium"),
    ]
    assert run(st, *(score(t, news2=3, news2_single_parameter_3=1.0, risk=0.45) for t in range(62, 300, 2))) == []
    assert "risk_high" in st.episodes  # 0.45 is above the clearing level 0.4


def test_af_needs_30_s_of_irregular_windows() -> None:
    st = PatientAlerts("p1")
    assert run(st, *(score(t, rr_irregularity=0.2) for t in range(10, 40, 2))) == []
    out = run(st, score(40, rr_irregularity=0.2))
    assert [(a.kind, a.priority.value) for a in out] == [("atrial_fibrillation", "medium")]
    st = PatientAlerts("p1")  # one regular window restarts the count
    run(st, *(score(t, rr_irregularity=0.2) for t in range(10, 30, 2)), score(30, rr_irregularity=0.05))
    assert run(st, *(score(t, rr_irregularity=0.2) for t in range(32, 60, 2))) == []


def test_technical_alarms_signal_lost_quality_and_stale_vitals() -> None:
    st = PatientAlerts("p1")
    out = run(st, score(10, [("signal_lost", 9)]))
    assert [(a.kind, a.category, a.priority.value) for a in out] == [("signal_lost", "technical", "medium")]
    assert run(st, score(12, modalities=("vitals",))) == []  # a vitals-only score does not end it
    assert states(run(st, score(14))) == ["resolved"]  # ECG again
    out = run(st, *(score(t, quality=0.3) for t in range(16, 28, 2)))
    assert [(a.kind, a.state.value) for a in out] == [("ecg_quality", "active")]
    assert run(st, *(score(t, quality=0.55) for t in range(28, 60, 2))) == []  # hysteresis: below 0.6
    assert states(run(st, *(score(t, quality=0.9) for t in range(60, 74, 2)))) == ["resolved"]
    out = run(st, score(74, modalities=("ecg",)))
    assert [(a.kind, a.state.value) for a in out] == [("vitals_stale", "active")]
    assert states(run(st, score(76))) == ["resolved"]


def test_pipeline_stalled_is_raised_and_ended_by_the_clock() -> None:
    st = PatientAlerts("p1")
    run(st, score(10))
    out = on_tick(st, T0.timestamp() + 30, stalled_since=T0.timestamp() + 12)[1]
    assert [(a.kind, a.state.value) for a in out] == [("pipeline_stalled", "active")]
    assert on_tick(st, T0.timestamp() + 31, stalled_since=T0.timestamp() + 12)[1] == []
    assert states(on_tick(st, T0.timestamp() + 40)[1]) == ["resolved"]


def test_replayed_scores_are_ignored_and_state_round_trips_through_json() -> None:
    st = PatientAlerts("p1")
    run(st, score(10, [("asystole", 5)]), score(12, news2=7))
    copy = PatientAlerts.from_json("p1", st.to_json())
    assert copy == st
    assert run(copy, score(10, [("asystole", 5)]), score(12, news2=7)) == []  # handled before the restart


@pytest.mark.parametrize("restart_after", [1, 3, 5])
def test_a_restart_from_any_stored_state_gives_the_same_records(restart_after: int) -> None:
    stream = [score(t, [("asystole", 5)] if t < 20 else [], news2=7 if t > 14 else 1) for t in range(10, 90, 2)]
    whole = run(PatientAlerts("p1"), *stream)
    st = PatientAlerts("p1")
    before = run(st, *stream[:restart_after])
    stored = PatientAlerts.from_json("p1", st.to_json())
    # the worker re-reads from an older offset: the scores it had handled change nothing
    after = run(stored, *stream[max(restart_after - 2, 0) :])
    assert [(a.alert_id, a.revision, a.state) for a in before + after] == [
        (a.alert_id, a.revision, a.state) for a in whole
    ]


def test_a_resolved_episode_whose_condition_returns_reopens_its_id_at_the_next_revision() -> None:
    st = PatientAlerts("p1")
    first = run(st, score(10, [("asystole", 5.2)]))[0]
    resolved = on_ack(st, ack(first.alert_id, 11, "resolve"))[1][0]
    assert (resolved.state.value, resolved.revision) == ("resolved", 1)
    again = run(st, score(12, [("asystole", 5.2)]))  # the same pause goes on
    assert [(a.alert_id, a.state.value, a.revision) for a in again] == [(first.alert_id, "active", 2)]
    assert PatientAlerts.from_json("p1", st.to_json()) == st
    later = run(st, score(14, [("asystole", 13.0)]))  # a new pause: a new id
    assert [a.revision for a in later] == [] or later[0].alert_id != first.alert_id


@pytest.mark.parametrize("kind", ["news2_emergency", "ecg_quality"])
def test_hysteresis_windows_count_as_present_and_restart_the_clearing_time(kind: str) -> None:
    high, between, low = {"news2_emergency": (7, 6, 5), "ecg_quality": (0.3, 0.55, 0.9)}[kind]

    def at(t: float, level: float) -> RiskScore:
        return score(t, news2=level) if kind == "news2_emergency" else score(t, quality=level)

    st = PatientAlerts("p1")
    run(st, *(at(t, high) for t in range(0, 62, 2)))
    assert kind in st.episodes
    run(st, at(62, low))  # one window below the clearing level starts the clearing time ...
    run(st, *(at(t, between) for t in range(64, 364, 2)))  # ... which windows above it stop
    out = run(st, *(at(t, low) for t in range(364, 500, 2)))
    ended = [(a.state.value, a.time) for a in out if a.kind == kind]
    clear_s = RULES[kind].clear_s
    assert ended and ended[0][1] == T0 + timedelta(seconds=364 + clear_s), ended


def test_the_news2_emergency_alarm_resolves_an_open_urgent_one() -> None:
    st = PatientAlerts("p1")
    run(st, *(score(t, news2=5) for t in range(0, 62, 2)))
    assert "news2_urgent" in st.episodes
    out = run(st, *(score(t, news2=7) for t in range(62, 124, 2)))
    assert [(a.kind, a.state.value) for a in out] == [("news2_emergency", "active"), ("news2_urgent", "resolved")]
    assert list(st.episodes) == ["news2_emergency"]


@pytest.mark.parametrize("kind", ["ventricular_tachycardia", "extreme_tachycardia"])
def test_a_pulse_too_slow_to_perfuse_confirms_a_tachycardia(kind: str) -> None:
    for pulse, raised in ((30.0, True), (0.0, True), (80.0, False), (150.0, True)):
        st = PatientAlerts("p1")
        out = run(st, score(10, [(kind, 2)], pulse_rate_bpm=pulse))
        assert (states(out, kind) == ["active"]) is raised, pulse


def test_an_episode_raised_from_a_late_score_escalates_from_when_it_was_raised() -> None:
    st = PatientAlerts("p1")
    run(st, score(0))
    on_tick(st, T0.timestamp() + 500)  # the clock moved on; the next score arrives late
    out = run(st, score(10, [("ventricular_tachycardia", 8)]))
    assert [(a.state.value, a.time) for a in out] == [("active", T0 + timedelta(seconds=500))]
    later = on_tick(st, T0.timestamp() + 500 + RULES["ventricular_tachycardia"].escalate_s)[1]
    assert states(later) == ["escalated"]
