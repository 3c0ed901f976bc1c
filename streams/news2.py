"""National Early Warning Score 2 (NEWS2), exactly as the Royal College of Physicians' 2017 chart.

Source: Royal College of Physicians, *National Early Warning Score (NEWS) 2: Standardising the assessment of
acute-illness severity in the NHS*, updated report of a working party, London: RCP, December 2017
(Chart 1: the NEWS2 scoring system; Chart 2: thresholds and triggers; Chart 3: clinical response). The
table, as REFERENCES.md carries it::

    score                        3       2        1        0                  1          2          3
    Respiration rate (/min)      <=8              9-11     12-20                         21-24      >=25
    SpO2 scale 1 (%)             <=91    92-93    94-95    >=96
    SpO2 scale 2 (%)             <=83    84-85    86-87    88-92, >=93 air    93-94 O2   95-96 O2   >=97 O2
    Air or oxygen                        oxygen            air
    Systolic BP (mmHg)           <=90    91-100   101-110  111-219                                  >=220
    Pulse (/min)                 <=40             41-50    51-90              91-110     111-130    >=131
    Consciousness                                          A                                        C, V, P, U
    Temperature (degC)           <=35.0           35.1-36.0 36.1-38.0         38.1-39.0  >=39.1

Choices the chart leaves to the implementer, made here:

* **Values between the chart's bands.** The chart is written at the resolution of a bedside chart: whole
  numbers for every parameter except temperature, which is to 0.1 degC. A measured value is first rounded
  *half up* to that resolution (respiration 11.5 -> 12, pulse 90.49 -> 90, temperature 35.05 -> 35.1,
  35.04 -> 35.0), then banded. Rounding is decimal, on the value as written (``repr``), so 35.05 rounds to
  35.1 even though the binary float 35.05 is slightly below it.
* **SpO2 scale 2** (only for patients with hypercapnic respiratory failure, target 88-92 %, when a clinician
  prescribes it) needs to know whether the patient is on oxygen once SpO2 is 93 % or more. When that is
  unknown, the SpO2 sub-score cannot be determined: :func:`news2` then reports ``spo2`` as missing (as
  well as ``air_or_oxygen``), and :func:`score_spo2` raises.
* **Missing parameters.** The total is the sum over the parameters present, so with any missing it is a
  lower bound: ``complete`` says whether all seven were scored. The response band is taken from that
  total.
* **Response bands** (Chart 2 and Chart 3): total 0 ``"none"`` (routine monitoring); 1-4 ``"low"``
  (ward-based response); a 3 in any single parameter with a total under 5 ``"low_medium"`` (urgent
  ward-based response); 5-6 ``"medium"`` (key threshold for urgent response); 7 or more ``"high"``
  (emergency response, continuous monitoring). :data:`RESPONSES` holds the RCP's wording for each. Chart 2
  puts 0 inside its "low" band (0-4); ``"none"`` is Chart 3's separate line for a score of 0 (routine,
  12-hourly monitoring). Chart 2 words the high band "urgent or emergency response"; Chart 3's line for 7 or
  more asks for an emergency response, which is what ``"high"`` means here.

Example:
    >>> result = news2(News2Inputs(respiration_rate=22, spo2=95, on_oxygen=False, systolic_bp=115, pulse=95,
    ...                            consciousness="A", temperature=38.2))
    >>> result.total, result.response, result.subscores["respiration_rate"]
    (5, 'medium', 2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from streams.records import ACVPU

Response = Literal["none", "low", "low_medium", "medium", "high"]

#: The seven NEWS2 parameters, in chart order; the keys of ``News2Result.subscores``.
PARAMETERS: Final[tuple[str, ...]] = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

#: Vital names :func:`news2_inputs_from_vitals` reads; each is a ``name`` in ``VITAL_CODES``.
VITALS_USED: Final = (
    "respiratory_rate",
    "spo2",
    "spo2_pulse_oximetry",
    "systolic_bp",
    "heart_rate",
    "pulse_rate_oximetry",
    "body_temperature",
    "oxygen_flow_rate",
    "inspired_oxygen_fraction",
    "consciousness",
)

#: What each response band asks for, in the RCP's words (NEWS2 2017, Charts 2 and 3).
RESPONSES: Final[dict[str, str]] = {
    "none": "Score 0: continue routine NEWS monitoring (minimum 12-hourly).",
    "low": (
        "Low (total 1-4): ward-based response; a registered nurse assesses the patient and decides on the "
        "frequency of monitoring and any escalation of care (minimum 4-6-hourly)."
    ),
    "low_medium": (
        "Low-medium (3 in a single parameter): urgent ward-based response; the registered nurse informs the "
        "medical team caring for the patient, who review and decide whether escalation is needed "
        "(minimum hourly)."
    ),
    "medium": (
        "Medium (total 5-6): key threshold for urgent response; the registered nurse immediately informs the "
        "medical team; urgent assessment by a clinician or team competent in the care of acutely ill patients "
        "(minimum hourly)."
    ),
    "high": (
        "High (total 7 or more): emergency response; the medical team is informed immediately (at least "
        "specialist registrar level); emergency assessment by a team with critical-care competencies; "
        "continuous monitoring of vital signs."
    ),
}

# Chart bands as (highest value of the band, score), ascending, then the score above the last band.
# Values are compared after rounding to the chart's resolution (see the module docstring).
_RESPIRATION: Final = (((8, 3), (11, 1), (20, 0), (24, 2)), 3)
_SPO2_SCALE1: Final = (((91, 3), (93, 2), (95, 1)), 0)
_SPO2_SCALE2_LOW: Final = (((83, 3), (85, 2), (87, 1)), 0)  # up to 92; 93 and above depend on oxygen
_SPO2_SCALE2_ON_OXYGEN: Final = (((92, 0), (94, 1), (96, 2)), 3)
_SYSTOLIC: Final = (((90, 3), (100, 2), (110, 1), (219, 0)), 3)
_PULSE: Final = (((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3)
_TEMPERATURE: Final = (((Decimal("35.0"), 3), (Decimal("36.0"), 1), (Decimal("38.0"), 0), (Decimal("39.0"), 1)), 2)

_WHOLE: Final = Decimal(1)
_TENTH: Final = Decimal("0.1")


@dataclass(frozen=True)
class News2Inputs:
    """The NEWS2 parameters of one patient at one time; each None when unknown.

    Attributes:
        respiration_rate: Breaths per minute.
        spo2: Peripheral oxygen saturation, %.
        spo2_scale: 1 (default) or 2 (hypercapnic respiratory failure, target 88-92 %, prescribed by a
            clinician).
        on_oxygen: True on supplemental oxygen, False on air, None unknown.
        systolic_bp: Systolic blood pressure, mmHg.
        pulse: Pulse (heart) rate, per minute.
        consciousness: ACVPU level: ``"A"`` alert, ``"C"`` new confusion, ``"V"`` voice, ``"P"`` pain,
            ``"U"`` unresponsive.
        temperature: Body temperature, degC.

    Raises:
        ValueError: A number that is not finite, a scale other than 1 or 2, or a consciousness level
            outside ACVPU.
    """

    respiration_rate: float | None = None
    spo2: float | None = None
    spo2_scale: Literal[1, 2] = 1
    on_oxygen: bool | None = None
    systolic_bp: float | None = None
    pulse: float | None = None
    consciousness: str | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.spo2_scale not in (1, 2):
            raise ValueError(f"spo2_scale must be 1 or 2, not {self.spo2_scale!r}")
        if self.consciousness is not None and self.consciousness not in ACVPU:
            raise ValueError(f"consciousness must be one of {'/'.join(ACVPU)}, not {self.consciousness!r}")
        for name in ("respiration_rate", "spo2", "systolic_bp", "pulse", "temperature"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number or None, not {value!r}")


@dataclass(frozen=True)
class News2Result:
    """A NEWS2 score with its parts.

    Attributes:
        total: Sum of the sub-scores of the parameters present (a lower bound when ``complete`` is False).
        subscores: Parameter name (see :data:`PARAMETERS`) to its score, for the parameters scored.
        missing: Names of the parameters that could not be scored, in chart order.
        complete: True when all seven parameters were scored.
        single_parameter_3: True when any parameter scored 3 (a "red score").
        response: ``"none"``, ``"low"``, ``"low_medium"``, ``"medium"`` or ``"high"``; see :data:`RESPONSES`.
    """

    total: int
    subscores: dict[str, int]
    missing: tuple[str, ...]
    complete: bool
    single_parameter_3: bool
    response: Response


def _to_resolution(value: float, step: Decimal) -> Decimal:
    """``value`` rounded half up to a multiple of ``step``, decimally, as written."""
    if not math.isfinite(value):
        raise ValueError(f"cannot score {value!r}")
    return Decimal(repr(float(value))).quantize(step, rounding=ROUND_HALF_UP)


def _band(value: Decimal, bands: tuple[tuple[tuple[int | Decimal, int], ...], int]) -> int:
    """Score of ``value`` in a chart row: the first band whose highest value it does not exceed."""
    steps, above = bands
    for highest, score in steps:
        if value <= highest:
            return score
    return above


def score_respiration_rate(value: float) -> int:
    """NEWS2 score of a respiration rate (RCP 2017 Chart 1): <=8 3, 9-11 1, 12-20 0, 21-24 2, >=25 3.

    Args:
        value: Breaths per minute; rounded half up to a whole number before banding.

    Returns:
        0, 1, 2 or 3.

    Example:
        >>> score_respiration_rate(11.5), score_respiration_rate(11.49)
        (0, 1)
    """
    return _band(_to_resolution(value, _WHOLE), _RESPIRATION)


def score_spo2(value: float, scale: Literal[1, 2] = 1, on_oxygen: bool | None = None) -> int:
    """NEWS2 score of an oxygen saturation (RCP 2017 Chart 1).

    Scale 1: <=91 3, 92-93 2, 94-95 1, >=96 0. Scale 2: <=83 3, 84-85 2, 86-87 1, 88-92 0, >=93 on air 0,
    93-94 on oxygen 1, 95-96 on oxygen 2, >=97 on oxygen 3.

    Args:
        value: SpO2, %; rounded half up to a whole number before banding.
        scale: 1 or 2.
        on_oxygen: Whether the patient is on supplemental oxygen; needed on scale 2 from 93 % up.

    Returns:
        0, 1, 2 or 3.

    Raises:
        ValueError: Scale not 1 or 2, or scale 2 at 93 % or more with ``on_oxygen`` None.

    Example:
        >>> score_spo2(95), score_spo2(95, scale=2, on_oxygen=False), score_spo2(95, scale=2, on_oxygen=True)
        (1, 0, 2)
    """
    rounded = _to_resolution(value, _WHOLE)
    if scale == 1:
        return _band(rounded, _SPO2_SCALE1)
    if scale != 2:
        raise ValueError(f"SpO2 scale must be 1 or 2, not {scale!r}")
    if rounded <= 92:
        return _band(rounded, _SPO2_SCALE2_LOW)
    if on_oxygen is None:
        raise ValueError(f"SpO2 {value} % on scale 2 scores 0 on air but 1-3 on oxygen: on_oxygen is unknown")
    return _band(rounded, _SPO2_SCALE2_ON_OXYGEN) if on_oxygen else 0


def score_air_or_oxygen(on_oxygen: bool) -> int:
    """NEWS2 score of the oxygen parameter (RCP 2017 Chart 1): supplemental oxygen 2, air 0.

    Example:
        >>> score_air_or_oxygen(True), score_air_or_oxygen(False)
        (2, 0)
    """
    return 2 if on_oxygen else 0


def score_systolic_bp(value: float) -> int:
    """NEWS2 score of a systolic blood pressure (RCP 2017 Chart 1): <=90 3, 91-100 2, 101-110 1, 111-219 0, >=220 3.

    Args:
        value: mmHg; rounded half up to a whole number before banding.

    Returns:
        0, 1, 2 or 3.

    Example:
        >>> score_systolic_bp(110.5), score_systolic_bp(219.5)
        (0, 3)
    """
    return _band(_to_resolution(value, _WHOLE), _SYSTOLIC)


def score_pulse(value: float) -> int:
    """NEWS2 score of a pulse rate (RCP 2017 Chart 1): <=40 3, 41-50 1, 51-90 0, 91-110 1, 111-130 2, >=131 3.

    Args:
        value: Beats per minute; rounded half up to a whole number before banding.

    Returns:
        0, 1, 2 or 3.

    Example:
        >>> score_pulse(90.49), score_pulse(90.5)
        (0, 1)
    """
    return _band(_to_resolution(value, _WHOLE), _PULSE)


def score_consciousness(level: str) -> int:
    """NEWS2 score of the ACVPU level (RCP 2017 Chart 1): alert 0; new confusion, voice, pain, unresponsive 3.

    Args:
        level: ``"A"``, ``"C"``, ``"V"``, ``"P"`` or ``"U"``.

    Returns:
        0 or 3.

    Raises:
        ValueError: A level outside ACVPU.

    Example:
        >>> score_consciousness("A"), score_consciousness("C")
        (0, 3)
    """
    if level not in ACVPU:
        raise ValueError(f"consciousness must be one of {'/'.join(ACVPU)}, not {level!r}")
    return 0 if level == "A" else 3


def score_temperature(value: float) -> int:
    """NEWS2 score of a temperature (RCP 2017 Chart 1): <=35.0 3, 35.1-36.0 1, 36.1-38.0 0, 38.1-39.0 1, >=39.1 2.

    Args:
        value: degC; rounded half up to 0.1 degC before banding.

    Returns:
        0, 1, 2 or 3.

    Example:
        >>> score_temperature(35.04), score_temperature(35.05)
        (3, 1)
    """
    return _band(_to_resolution(value, _TENTH), _TEMPERATURE)


def news2(inputs: News2Inputs) -> News2Result:
    """Score NEWS2 over the parameters present (RCP 2017, Charts 1-3).

    Args:
        inputs: The parameters; any may be None.

    Returns:
        The total, its sub-scores, what is missing and the response band (see the module docstring).

    Example:
        >>> news2(News2Inputs(pulse=135, consciousness="A")).response
        'low_medium'
    """
    scores: dict[str, int] = {}
    if inputs.respiration_rate is not None:
        scores["respiration_rate"] = score_respiration_rate(inputs.respiration_rate)
    if inputs.spo2 is not None and (
        inputs.spo2_scale == 1 or inputs.on_oxygen is not None or _to_resolution(inputs.spo2, _WHOLE) <= 92
    ):
        scores["spo2"] = score_spo2(inputs.spo2, inputs.spo2_scale, inputs.on_oxygen)
    if inputs.on_oxygen is not None:
        scores["air_or_oxygen"] = score_air_or_oxygen(inputs.on_oxygen)
    if inputs.systolic_bp is not None:
        scores["systolic_bp"] = score_systolic_bp(inputs.systolic_bp)
    if inputs.pulse is not None:
        scores["pulse"] = score_pulse(inputs.pulse)
    if inputs.consciousness is not None:
        scores["consciousness"] = score_consciousness(inputs.consciousness)
    if inputs.temperature is not None:
        scores["temperature"] = score_temperature(inputs.temperature)

    subscores = {name: scores[name] for name in PARAMETERS if name in scores}
    total = sum(subscores.values())
    red = any(score == 3 for score in subscores.values())
    return News2Result(
        total=total,
        subscores=subscores,
        missing=tuple(name for name in PARAMETERS if name not in scores),
        complete=len(subscores) == len(PARAMETERS),
        single_parameter_3=red,
        response=response_band(total, red),
    )


def response_band(total: int, single_parameter_3: bool) -> Response:
    """NEWS2 response band (RCP 2017 Charts 2 and 3) of a total and whether any parameter scored 3.

    Args:
        total: Aggregate score.
        single_parameter_3: Whether any parameter scored 3.

    Returns:
        ``"high"`` at 7 or more, ``"medium"`` at 5-6, ``"low_medium"`` for a 3 in one parameter below 5,
        ``"low"`` at 1-4, ``"none"`` at 0.

    Example:
        >>> response_band(4, True), response_band(4, False), response_band(0, False)
        ('low_medium', 'low', 'none')
    """
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if single_parameter_3:
        return "low_medium"
    return "low" if total >= 1 else "none"


def news2_inputs_from_vitals(
    latest: Mapping[str, float | str],
    on_oxygen: bool | None = None,
    spo2_scale: Literal[1, 2] = 1,
) -> News2Inputs:
    """NEWS2 inputs from the latest vital signs, keyed by the project's vital names (``VITAL_CODES`` names).

    Mapping: ``respiratory_rate`` -> respiration rate; ``spo2``, else ``spo2_pulse_oximetry`` -> SpO2;
    ``systolic_bp`` -> systolic BP; ``heart_rate``, else ``pulse_rate_oximetry`` -> pulse;
    ``body_temperature`` -> temperature; ``consciousness`` (an ACVPU letter) -> consciousness. On oxygen:
    True when ``oxygen_flow_rate`` > 0 L/min or ``inspired_oxygen_fraction`` > 21 %, False when those present
    say otherwise, and the ``on_oxygen`` argument only when neither is present. Other names are ignored.

    Args:
        latest: Latest value of each vital sign, by name; numbers in the units of ``VITAL_CODES``.
        on_oxygen: Whether the patient is on oxygen, when no oxygen measurement says so.
        spo2_scale: SpO2 scale to score on (1, or 2 when prescribed for hypercapnic respiratory failure).

    Returns:
        The inputs for :func:`news2`.

    Raises:
        ValueError: A number where a letter is due or the reverse, or a value :class:`News2Inputs` rejects.

    Example:
        >>> news2_inputs_from_vitals({"heart_rate": 72, "oxygen_flow_rate": 2.0}).on_oxygen
        True
    """

    def number(*names: str) -> float | None:
        for name in names:
            value = latest.get(name)
            if value is not None:
                if isinstance(value, str | bool):
                    raise ValueError(f"vital {name} must be a number, not {value!r}")
                return float(value)
        return None

    oxygen = [flow > 0 for flow in [number("oxygen_flow_rate")] if flow is not None]
    oxygen += [fio2 > 21 for fio2 in [number("inspired_oxygen_fraction")] if fio2 is not None]
    level = latest.get("consciousness")
    if level is not None and not isinstance(level, str):
        raise ValueError(f"vital consciousness must be an ACVPU letter, not {level!r}")
    return News2Inputs(
        respiration_rate=number("respiratory_rate"),
        spo2=number("spo2", "spo2_pulse_oximetry"),
        spo2_scale=spo2_scale,
        on_oxygen=any(oxygen) if oxygen else on_oxygen,
        systolic_bp=number("systolic_bp"),
        pulse=number("heart_rate", "pulse_rate_oximetry"),
        consciousness=level,
        temperature=number("body_temperature"),
    )
