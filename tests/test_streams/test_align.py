"""Alignment: vitals as of the window end with staleness and trend; imaging and notes as context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.align import (
    STALENESS_S,
    AlignConfig,
    add_context,
    add_vitals,
    align,
    changelog_due,
    newer_than,
    newest_points,
    vitals_as_of,
)
from streams.records import ImagingEvent, NoteEvent, VitalsEvent
from streams.windows import US

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
CONFIG = AlignConfig()


def vitals(seconds: float, **values: float) -> VitalsEvent:
    codes = {
        "heart_rate": ("8867-4", "/min"),
        "spo2": ("2708-6", "%"),
        "systolic_bp": ("8480-6", "mm[Hg]"),
        "body_temperature": ("8310-5", "Cel"),
    }
    return VitalsEvent.model_validate(
        {
            "schema": "cardiowatch.vitals",
            "version": 1,
            "patient_id": "p1",
            "source_id": "m1",
            "seq": int(seconds),
            "time": T0 + timedelta(seconds=seconds),
            "observations": [{"code": codes[k][0], "value": v, "unit": codes[k][1]} for k, v in values.items()],
        }
    )


def at(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def test_vitals_join_as_of_the_window_end_never_from_its_future() -> None:
    history: dict = {}
    for s, hr in ((0, 70), (60, 80), (120, 90)):
        add_vitals(history, vitals(s, heart_rate=hr), CONFIG)
    got = vitals_as_of(history, at(100), CONFIG)
    assert got["heart_rate"].value == 80 and got["heart_rate"].age_s == pytest.approx(40)


def test_out_of_order_vitals_are_put_in_time_order() -> None:
    history: dict = {}
    for s, hr in ((120, 90), (0, 70), (60, 80)):
        add_vitals(history, vitals(s, heart_rate=hr), CONFIG)
    assert [p[1] for p in history["heart_rate"]] == [70, 80, 90]
    assert vitals_as_of(history, at(61), CONFIG)["heart_rate"].value == 80


def test_a_value_older_than_its_staleness_limit_is_not_joined() -> None:
    history = add_vitals({}, vitals(0, heart_rate=70, systolic_bp=120), CONFIG)
    got = vitals_as_of(history, at(STALENESS_S["heart_rate"] + 1), CONFIG)
    assert "heart_rate" not in got and got["systolic_bp"].value == 120  # a cuff pressure stays valid longer


def test_the_trend_is_the_least_squares_slope_per_hour() -> None:
    history: dict = {}
    for k in range(10):  # +1 /min every minute = +60 /h
        add_vitals(history, vitals(60 * k, heart_rate=70 + k), CONFIG)
    got = vitals_as_of(history, at(540), CONFIG)
    assert got["heart_rate"].trend_per_h == pytest.approx(60.0)
    assert vitals_as_of({"heart_rate": [[at(0), 70.0]]}, at(1), CONFIG)["heart_rate"].trend_per_h is None


def test_dense_vitals_are_thinned_to_the_resolution_and_bounded_in_age() -> None:
    history: dict = {}
    config = AlignConfig(keep_s=600, resolution_s=10)
    for s in range(0, 1800):  # 1 Hz for 30 minutes
        add_vitals(history, vitals(s, heart_rate=60 + s % 5), config)
    times = [p[0] for p in history["heart_rate"]]
    # one point older than keep_s stays (a window ending before the newer points may need it)
    assert times[-1] == at(1799) and times[-1] - times[0] <= 600 + 10
    assert len(times) <= 600 / 10 + 3 + config.recent_s  # plus every point of the recent stretch (1 Hz)


def test_default_state_stays_small_and_keeps_a_rare_vital_beside_1_hz_ones() -> None:
    history: dict = {}
    add_vitals(history, vitals(0, body_temperature=38.4), AlignConfig())
    for s in range(1, 4 * 3600, 1):  # four hours of 1-Hz heart rate
        add_vitals(history, vitals(s, heart_rate=70), AlignConfig())
    config = AlignConfig()
    assert len(history["heart_rate"]) <= config.keep_s / config.resolution_s + 3 + config.recent_s
    got = vitals_as_of(history, at(4 * 3600), AlignConfig())
    assert got["body_temperature"].value == 38.4 and got["body_temperature"].age_s == 4 * 3600
    assert got["heart_rate"].trend_per_h == pytest.approx(0.0)


def test_imaging_and_notes_come_as_context_with_their_age() -> None:
    imaging = ImagingEvent.model_validate(
        {
            "schema": "cardiowatch.imaging",
            "version": 1,
            "patient_id": "p1",
            "source_id": "pacs",
            "study_id": "s1",
            "modality": "echo",
            "study_time": T0,
            "findings": {"lvef_percent": 35, "wall_motion_abnormality": True},
        }
    )
    notes = [
        NoteEvent.model_validate(
            {
                "schema": "cardiowatch.note",
                "version": 1,
                "patient_id": "p1",
                "source_id": "ehr",
                "note_id": f"n{k}",
                "time": T0 + timedelta(hours=k),
                "author_role": "nurse",
                "text": f"note {k}",
            }
        )
        for k in range(5)
    ]
    context: dict = {}
    for ev in [imaging, *notes]:
        add_context(context, ev, CONFIG)
    end_us = round(at(4 * 3600 + 60) * US)
    sample = align(None, "p1", end_us - 10 * US, end_us, None, context, CONFIG)
    assert sample.imaging is not None and sample.imaging.data["lvef_percent"] == 35
    assert sample.imaging.age_s == pytest.approx(4 * 3600 + 60)
    assert [n.data["text"] for n in sample.notes] == ["note 4", "note 3", "note 2"]
    assert sample.modalities == ["imaging", "notes"]
    # a study after the window end is not yet known to that window
    early = align(None, "p1", round(at(-20) * US), round(at(-10) * US), None, context, CONFIG)
    assert early.imaging is None and early.notes == []


def test_a_window_aligned_after_newer_vitals_gets_the_last_value_at_or_before_its_end() -> None:
    history: dict = {}
    for s in range(0, 113):  # 1 Hz: 70 /min up to 60 s, then 150 /min
        add_vitals(history, vitals(s, heart_rate=70 if s <= 60 else 150), CONFIG)
    # the window ending at 100 s closes (grace, chunk phase, queueing) after the vitals up to 112 s arrived
    got = vitals_as_of(history, at(100), CONFIG)["heart_rate"]
    assert (got.value, got.age_s) == (150.0, 0.0)


def test_a_cuff_pressure_stays_joined_until_its_staleness_limit_after_a_newer_one_arrives() -> None:
    history: dict = {}
    add_vitals(history, vitals(0, systolic_bp=120), CONFIG)
    add_vitals(history, vitals(1800, systolic_bp=90), CONFIG)  # the next cuff reading, 30 min later
    got = vitals_as_of(history, at(1795), CONFIG)["systolic_bp"]  # a window ending just before it
    assert (got.value, got.age_s) == (120.0, 1795.0)


def test_continuous_numerics_are_written_once_a_resolution_step_and_a_restart_regains_the_rest() -> None:
    history: dict = {}
    written: dict = {}
    stored: dict = {}
    writes = []
    for s in range(0, 600):  # 1 Hz for 10 minutes, rising 60 /min an hour, with a 7-s sawtooth
        add_vitals(history, vitals(s, heart_rate=60 + s / 60 + s % 7), CONFIG)
        if changelog_due(history, written, CONFIG):
            stored, written = {n: [list(p) for p in ps] for n, ps in history.items()}, newest_points(history)
            writes.append(s)
    assert writes == [0, 1, *range(61, 600, int(CONFIG.resolution_s))]  # the second point: see the next test
    # a worker restarted from the last write, once the next reading arrives, joins the same value and a
    # trend fitted to the written points, one a minute
    live = {n: [list(p) for p in ps] for n, ps in history.items()}
    add_vitals(live, vitals(600, heart_rate=75), CONFIG)
    add_vitals(stored, vitals(600, heart_rate=75), CONFIG)
    restarted, running = (
        vitals_as_of(stored, at(600), CONFIG)["heart_rate"],
        vitals_as_of(live, at(600), CONFIG)["heart_rate"],
    )
    assert restarted.value == running.value == 75.0 and restarted.age_s == running.age_s == 0.0
    assert restarted.trend_per_h == pytest.approx(running.trend_per_h, abs=6.0)
    assert 40.0 < running.trend_per_h < 80.0
    assert not newer_than(stored, live)
    assert newer_than({"heart_rate": [[at(700), 80.0]]}, live)


def test_sporadic_readings_and_new_signals_are_written_at_once() -> None:
    history: dict = {}
    for s in range(0, 30):
        add_vitals(history, vitals(s, heart_rate=70), CONFIG)
    written = newest_points(history)
    assert not changelog_due(history, written, CONFIG)
    add_vitals(history, vitals(30, heart_rate=70, systolic_bp=120), CONFIG)  # a first cuff pressure
    assert changelog_due(history, written, CONFIG)
    written = newest_points(history)
    add_vitals(history, vitals(31, heart_rate=71), CONFIG)
    assert not changelog_due(history, written, CONFIG)
    add_vitals(history, vitals(50, systolic_bp=95), CONFIG)  # the next cuff reading, 20 s later
    assert changelog_due(history, written, CONFIG)
    written = newest_points(history)
    add_vitals(history, vitals(40, heart_rate=72), CONFIG)  # a late numerics event changes no newest point
    assert not changelog_due(history, written, CONFIG)


def test_corrections_of_a_sporadic_reading_are_written() -> None:
    history: dict = {}
    add_vitals(history, vitals(0, body_temperature=39.5), CONFIG)
    written = newest_points(history)
    add_vitals(history, vitals(0, body_temperature=37.0), CONFIG)  # corrected at the same time
    assert changelog_due(history, written, CONFIG)
    written = newest_points(history)
    add_vitals(history, vitals(5, body_temperature=37.2), CONFIG)  # re-measured 5 s later
    assert changelog_due(history, written, CONFIG)
    written = newest_points(history)
    assert not changelog_due(history, written, CONFIG)
