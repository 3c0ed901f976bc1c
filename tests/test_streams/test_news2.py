"""NEWS2 against every band edge of the RCP 2017 chart, rounding between bands, totals, responses, vitals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.news2 import (
    PARAMETERS,
    RESPONSES,
    VITALS_USED,
    News2Inputs,
    news2,
    news2_inputs_from_vitals,
    response_band,
    score_air_or_oxygen,
    score_consciousness,
    score_pulse,
    score_respiration_rate,
    score_spo2,
    score_systolic_bp,
    score_temperature,
)
from streams.records import VITAL_CODES

# Both sides of every edge of the chart (RCP 2017 Chart 1, as in REFERENCES.md), written out by hand.
RESPIRATION = [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)]
SPO2_SCALE1 = [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SYSTOLIC = [(40, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (300, 3)]
PULSE = [(20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)]
TEMPERATURE = [
    (30.0, 3),
    (35.0, 3),
    (35.1, 1),
    (36.0, 1),
    (36.1, 0),
    (38.0, 0),
    (38.1, 1),
    (39.0, 1),
    (39.1, 2),
    (42.0, 2),
]
# Scale 2: (SpO2, score on air, score on oxygen).
SPO2_SCALE2 = [
    (70, 3, 3),
    (83, 3, 3),
    (84, 2, 2),
    (85, 2, 2),
    (86, 1, 1),
    (87, 1, 1),
    (88, 0, 0),
    (92, 0, 0),
    (93, 0, 1),
    (94, 0, 1),
    (95, 0, 2),
    (96, 0, 2),
    (97, 0, 3),
    (100, 0, 3),
]


def edges(table):
    """Adjacent chart values whose scores differ: (value below the edge, its score, value above, its score)."""
    return [(a, sa, b, sb) for (a, sa), (b, sb) in zip(table, table[1:], strict=False) if sa != sb]


@pytest.mark.parametrize(
    ("score", "table"),
    [
        (score_respiration_rate, RESPIRATION),
        (score_systolic_bp, SYSTOLIC),
        (score_pulse, PULSE),
        (score_temperature, TEMPERATURE),
        (score_spo2, SPO2_SCALE1),
    ],
)
def test_every_chart_value_scores_as_the_chart_says(score, table):
    assert [(value, score(value)) for value, _ in table] == table


@pytest.mark.parametrize(
    ("score", "table", "step"),
    [
        (score_respiration_rate, RESPIRATION, Decimal(1)),
        (score_systolic_bp, SYSTOLIC, Decimal(1)),
        (score_pulse, PULSE, Decimal(1)),
        (score_spo2, SPO2_SCALE1, Decimal(1)),
        (score_temperature, TEMPERATURE, Decimal("0.1")),
    ],
)
def test_values_between_bands_round_half_up_to_the_chart_resolution(score, table, step):
    # Just under half a step above the last value of a band stays in it; half a step goes to the next band.
    for below, below_score, _, above_score in edges(table):
        half = Decimal(repr(float(below))) + step / 2
        assert score(float(half - step / 100)) == below_score, half
        assert score(float(half)) == above_score, half


def test_the_brief_examples_of_fractional_values():
    assert score_respiration_rate(11.5) == 0 and score_respiration_rate(11.49) == 1
    assert score_temperature(35.05) == 1 and score_temperature(35.04) == 3
    assert score_temperature(36.05) == 0 and score_temperature(38.05) == 1 and score_temperature(39.05) == 2


@pytest.mark.parametrize(("spo2", "on_air", "on_oxygen"), [(v, a, o) for v, a, o in SPO2_SCALE2])
def test_spo2_scale_2_with_and_without_oxygen(spo2, on_air, on_oxygen):
    assert score_spo2(spo2, scale=2, on_oxygen=False) == on_air
    assert score_spo2(spo2, scale=2, on_oxygen=True) == on_oxygen


def test_spo2_scale_2_needs_the_oxygen_state_only_from_93_percent():
    assert score_spo2(92.49, scale=2) == 0
    assert score_spo2(83, scale=2) == 3
    with pytest.raises(ValueError, match="on_oxygen"):
        score_spo2(92.5, scale=2)
    with pytest.raises(ValueError, match="scale"):
        score_spo2(95, scale=3)  # type: ignore[arg-type]


def test_spo2_scale_1_ignores_the_oxygen_state():
    assert [score_spo2(95, 1, o) for o in (None, False, True)] == [1, 1, 1]


def test_oxygen_scores_2_and_air_0():
    assert (score_air_or_oxygen(True), score_air_or_oxygen(False)) == (2, 0)


@pytest.mark.parametrize(("level", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness_alert_scores_0_and_any_other_acvpu_level_3(level, expected):
    assert score_consciousness(level) == expected


@pytest.mark.parametrize("level", ["a", "X", "", "alert"])
def test_consciousness_outside_acvpu_is_rejected(level):
    with pytest.raises(ValueError):
        score_consciousness(level)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected(value):
    with pytest.raises(ValueError):
        score_pulse(value)
    with pytest.raises(ValueError):
        News2Inputs(pulse=value)


# ------------------------------------------------------------------------------------------ totals, responses

NORMAL = News2Inputs(
    respiration_rate=16,
    spo2=98,
    on_oxygen=False,
    systolic_bp=120,
    pulse=70,
    consciousness="A",
    temperature=37.0,
)


def with_(**changes) -> News2Inputs:
    return News2Inputs(**{**NORMAL.__dict__, **changes})


@pytest.mark.parametrize(
    ("inputs", "total", "red", "response"),
    [
        (NORMAL, 0, False, "none"),
        (with_(pulse=95), 1, False, "low"),  # pulse 1
        (with_(pulse=95, respiration_rate=22, temperature=38.5), 4, False, "low"),  # 1 + 2 + 1
        (with_(consciousness="C"), 3, True, "low_medium"),  # a red score alone
        (with_(consciousness="V", pulse=95), 4, True, "low_medium"),
        (with_(respiration_rate=25, pulse=120), 5, True, "medium"),  # red, but the total rules at 5
        (with_(pulse=120, on_oxygen=True, temperature=38.5), 5, False, "medium"),  # 2 + 2 + 1
        (with_(pulse=120, on_oxygen=True, temperature=39.5), 6, False, "medium"),
        (with_(pulse=120, on_oxygen=True, temperature=39.5, spo2=95), 7, False, "high"),
        (
            News2Inputs(
                respiration_rate=30,
                spo2=85,
                on_oxygen=True,
                systolic_bp=80,
                pulse=150,
                consciousness="U",
                temperature=34.0,
            ),
            20,
            True,
            "high",
        ),
    ],
)
def test_totals_and_response_bands(inputs, total, red, response):
    result = news2(inputs)
    assert (result.total, result.single_parameter_3, result.response) == (total, red, response)
    assert result.total == sum(result.subscores.values())
    assert result.complete and result.missing == ()
    assert list(result.subscores) == list(PARAMETERS)


def test_response_band_thresholds():
    assert [response_band(t, False) for t in range(9)] == ["none"] + ["low"] * 4 + ["medium"] * 2 + ["high"] * 2
    assert [response_band(t, True) for t in range(3, 9)] == ["low_medium"] * 2 + ["medium"] * 2 + ["high"] * 2
    assert set(RESPONSES) == {"none", "low", "low_medium", "medium", "high"}


def test_missing_parameters_are_listed_and_the_total_covers_the_rest():
    empty = news2(News2Inputs())
    assert (empty.total, empty.subscores, empty.missing, empty.complete, empty.response) == (
        0,
        {},
        PARAMETERS,
        False,
        "none",
    )
    partial = news2(News2Inputs(pulse=135, temperature=38.5))
    assert partial.subscores == {"pulse": 3, "temperature": 1}
    assert partial.missing == ("respiration_rate", "spo2", "air_or_oxygen", "systolic_bp", "consciousness")
    assert (partial.total, partial.complete, partial.response) == (4, False, "low_medium")


def test_spo2_on_scale_2_from_93_percent_is_missing_when_the_oxygen_state_is_unknown():
    unknown = news2(with_(spo2_scale=2, spo2=95, on_oxygen=None))
    assert "spo2" in unknown.missing and "air_or_oxygen" in unknown.missing and not unknown.complete
    low = news2(with_(spo2_scale=2, spo2=85, on_oxygen=None))
    assert low.subscores["spo2"] == 2 and low.missing == ("air_or_oxygen",)
    on_o2 = news2(with_(spo2_scale=2, spo2=97, on_oxygen=True))
    assert (on_o2.subscores["spo2"], on_o2.subscores["air_or_oxygen"], on_o2.total) == (3, 2, 5)


@pytest.mark.parametrize("kwargs", [{"spo2_scale": 3}, {"consciousness": "X"}, {"pulse": "80"}, {"temperature": True}])
def test_inputs_are_validated(kwargs):
    with pytest.raises(ValueError):
        News2Inputs(**kwargs)


@given(
    rr=st.none() | st.floats(0, 80),
    spo2=st.none() | st.floats(50, 100),
    scale=st.sampled_from([1, 2]),
    o2=st.none() | st.booleans(),
    sbp=st.none() | st.floats(40, 300),
    pulse=st.none() | st.floats(10, 250),
    level=st.none() | st.sampled_from("ACVPU"),
    temp=st.none() | st.floats(25, 45),
)
def test_property_the_result_is_consistent(rr, spo2, scale, o2, sbp, pulse, level, temp):
    result = news2(News2Inputs(rr, spo2, scale, o2, sbp, pulse, level, temp))
    assert result.total == sum(result.subscores.values())
    assert set(result.subscores) | set(result.missing) == set(PARAMETERS)
    assert result.complete == (not result.missing)
    assert result.single_parameter_3 == (3 in result.subscores.values())
    assert result.response == response_band(result.total, result.single_parameter_3)


# --------------------------------------------------------------------------------------------------- vitals


def test_every_vital_name_read_is_a_name_in_vital_codes():
    assert set(VITALS_USED) <= {v.name for v in VITAL_CODES.values()}


def test_inputs_from_vitals_map_each_name():
    inputs = news2_inputs_from_vitals(
        {
            "respiratory_rate": 18,
            "spo2": 95,
            "systolic_bp": 105,
            "diastolic_bp": 70,  # not a NEWS2 parameter: ignored
            "heart_rate": 88,
            "body_temperature": 36.5,
            "consciousness": "A",
        }
    )
    assert inputs == News2Inputs(18, 95, 1, None, 105, 88, "A", 36.5)


def test_inputs_from_vitals_prefer_ecg_heart_rate_and_measured_spo2_then_fall_back_to_oximetry():
    both = news2_inputs_from_vitals(
        {"heart_rate": 88, "pulse_rate_oximetry": 92, "spo2": 95, "spo2_pulse_oximetry": 97}
    )
    assert (both.pulse, both.spo2) == (88, 95)
    oximetry = news2_inputs_from_vitals({"pulse_rate_oximetry": 92, "spo2_pulse_oximetry": 97})
    assert (oximetry.pulse, oximetry.spo2) == (92, 97)


@pytest.mark.parametrize(
    ("vitals", "argument", "expected"),
    [
        ({}, None, None),
        ({}, True, True),
        ({"oxygen_flow_rate": 2.0}, None, True),
        ({"oxygen_flow_rate": 0.0}, True, False),  # a measurement beats the argument
        ({"inspired_oxygen_fraction": 21.0}, None, False),
        ({"inspired_oxygen_fraction": 28.0}, False, True),
        ({"oxygen_flow_rate": 0.0, "inspired_oxygen_fraction": 40.0}, None, True),
        ({"oxygen_flow_rate": 0.0, "inspired_oxygen_fraction": 21.0}, True, False),
    ],
)
def test_inputs_from_vitals_tell_oxygen_from_flow_or_inspired_fraction(vitals, argument, expected):
    assert news2_inputs_from_vitals(vitals, on_oxygen=argument).on_oxygen is expected


def test_inputs_from_vitals_reject_a_number_for_a_letter_and_the_reverse():
    with pytest.raises(ValueError):
        news2_inputs_from_vitals({"consciousness": 1.0})
    with pytest.raises(ValueError):
        news2_inputs_from_vitals({"heart_rate": "fast"})
    with pytest.raises(ValueError):
        news2_inputs_from_vitals({"consciousness": "alert"})


def test_inputs_from_vitals_carry_the_spo2_scale():
    result = news2(news2_inputs_from_vitals({"spo2": 95, "oxygen_flow_rate": 1.0}, spo2_scale=2))
    assert (result.subscores["spo2"], result.subscores["air_or_oxygen"]) == (2, 2)
