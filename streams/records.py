"""Event records of every JSON topic: the contract, declared once.

Each record is a pydantic model; ``cardiowatch contracts --out DIR`` writes their JSON Schemas, and
``docs/contracts.md`` documents them field by field (a test keeps the two in step). The binary
``ecg.waveform`` frame lives in :mod:`streams.waveform`.

Every JSON event carries ``schema`` (its name) and ``version``; a reader rejects a version it does not
know. Unknown fields are rejected too, so a misspelt field is an error rather than silently ignored.
Times are ISO 8601 with a UTC offset; a time without one is rejected.

Clinical codes: LOINC codes and UCUM units for vital signs follow the FHIR R4 vital-signs profile
(hl7.org/fhir/R4/observation-vitalsigns.html; see REFERENCES.md), plus LOINC 8478-0 (mean blood pressure),
8889-8 (heart rate by pulse oximetry), 3151-8 (inhaled oxygen flow rate), 3150-0 (inhaled oxygen
concentration) and 80288-4 (level of consciousness) for the NEWS2 inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


def _identifier(description: str, example: str) -> Any:
    """An id field: 1-64 characters without surrounding spaces."""
    return Field(min_length=1, max_length=64, pattern=r"^[^\s](.*[^\s])?$", description=description, examples=[example])


PatientId = Annotated[str, _identifier("Patient identifier; also the Kafka message key.", "mitdb-101")]
SourceId = Annotated[str, _identifier("Device or gateway that produced the event.", "bed-12-monitor")]


class Record(BaseModel):
    """Base of every JSON event: strict about unknown fields, NaN and infinities."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=False)


# ---------------------------------------------------------------------------------------------- vitals


@dataclass(frozen=True, slots=True)
class VitalCode:
    """A vital sign the contract accepts: its LOINC code, UCUM unit, unit aliases and possible range."""

    code: str
    name: str
    unit: str | None
    aliases: tuple[str, ...]
    low: float
    high: float


#: Accepted vital signs. Ranges are the limits of the physiologically possible, not of the normal:
#: they catch unit mix-ups (a temperature in Fahrenheit, SpO2 as a fraction is not caught) and
#: corrupt values, never an abnormal patient.
VITAL_CODES: Final = {
    v.code: v
    for v in (
        VitalCode("8867-4", "heart_rate", "/min", ("bpm", "{beats}/min"), 0, 350),
        VitalCode("8889-8", "pulse_rate_oximetry", "/min", ("bpm", "{beats}/min"), 0, 350),
        VitalCode("9279-1", "respiratory_rate", "/min", ("{breaths}/min", "bpm"), 0, 150),
        VitalCode("2708-6", "spo2", "%", (), 0, 100),
        VitalCode("59408-5", "spo2_pulse_oximetry", "%", (), 0, 100),
        VitalCode("8480-6", "systolic_bp", "mm[Hg]", ("mmHg",), 0, 350),
        VitalCode("8462-4", "diastolic_bp", "mm[Hg]", ("mmHg",), 0, 300),
        VitalCode("8478-0", "mean_bp", "mm[Hg]", ("mmHg",), 0, 300),
        VitalCode("8310-5", "body_temperature", "Cel", ("degC",), 25, 45),
        VitalCode("3151-8", "oxygen_flow_rate", "L/min", (), 0, 80),
        VitalCode("3150-0", "inspired_oxygen_fraction", "%", (), 21, 100),
        VitalCode("80288-4", "consciousness", None, (), 0, 0),
    )
}

#: ACVPU scale for consciousness (NEWS2, Royal College of Physicians 2017): Alert, new Confusion,
#: responds to Voice, responds to Pain, Unresponsive.
ACVPU: Final = ("A", "C", "V", "P", "U")


class Observation(Record):
    """One vital-sign measurement."""

    code: str = Field(description="LOINC code, one of the table in docs/contracts.md.", examples=["8867-4"])
    value: float | None = Field(None, description="Numeric value in `unit`; absent for consciousness.", examples=[72])
    value_code: Literal["A", "C", "V", "P", "U"] | None = Field(
        None, description="ACVPU level, only for consciousness (80288-4)."
    )
    unit: str | None = Field(None, description="UCUM unit of `value`; absent for consciousness.", examples=["/min"])
    method: Literal["invasive", "noninvasive"] | None = Field(
        None, description="For blood pressures: arterial line or cuff."
    )

    @model_validator(mode="after")
    def _check(self) -> Observation:
        spec = VITAL_CODES.get(self.code)
        if spec is None:
            raise ValueError(f"LOINC code {self.code!r} is not accepted; accepted: {', '.join(VITAL_CODES)}")
        if spec.unit is None:
            if self.value_code is None or self.value is not None:
                raise ValueError(f"{spec.name} ({spec.code}) takes value_code (one of {'/'.join(ACVPU)}), not value")
            return self
        if self.value is None or self.value_code is not None:
            raise ValueError(f"{spec.name} ({spec.code}) takes a numeric value, not value_code")
        if self.unit != spec.unit and self.unit not in spec.aliases:
            raise ValueError(f"{spec.name} ({spec.code}) in unit {self.unit!r}: send {spec.unit!r}")
        if not spec.low <= self.value <= spec.high:
            raise ValueError(
                f"{spec.name} = {self.value} {spec.unit} is physiologically impossible "
                f"(accepted {spec.low:g}..{spec.high:g})"
            )
        return self


class VitalsEvent(Record):
    """`vitals`: one set of vital signs measured at one time (a monitor's numerics, a nurse's entry)."""

    schema_: Literal["cardiowatch.vitals"] = Field(alias="schema")
    version: Literal[1]
    patient_id: PatientId
    source_id: SourceId
    seq: int = Field(ge=0, description="Per-source sequence number; (source_id, seq) identifies the event.")
    time: AwareDatetime = Field(description="Measurement time (UTC offset required).")
    observations: list[Observation] = Field(min_length=1, max_length=64)

    @field_validator("observations")
    @classmethod
    def _unique_codes(cls, obs: list[Observation]) -> list[Observation]:
        keys = [(o.code, o.method) for o in obs]
        if len(set(keys)) != len(keys):
            raise ValueError("a code appears twice in one vitals event")
        return obs


# ---------------------------------------------------------------------------------------- imaging, notes


class ImagingFindings(Record):
    """Structured findings of an imaging study; every field optional (absent = not reported)."""

    lvef_percent: float | None = Field(None, ge=5, le=90, description="Left-ventricular ejection fraction, %.")
    cardiomegaly: bool | None = None
    wall_motion_abnormality: bool | None = None
    pericardial_effusion: bool | None = None
    pulmonary_edema: bool | None = None
    valvular_disease: bool | None = None


class ImagingEvent(Record):
    """`imaging.events`: a finished imaging study with structured findings and its report."""

    schema_: Literal["cardiowatch.imaging"] = Field(alias="schema")
    version: Literal[1]
    patient_id: PatientId
    source_id: SourceId
    study_id: str = Field(min_length=1, max_length=128)
    modality: Literal["echo", "xray", "ct", "mri", "nuclear", "angiography"]
    study_time: AwareDatetime
    findings: ImagingFindings
    report_text: str = Field("", max_length=20_000)


class NoteEvent(Record):
    """`clinical.notes`: a free-text clinical note."""

    schema_: Literal["cardiowatch.note"] = Field(alias="schema")
    version: Literal[1]
    patient_id: PatientId
    source_id: SourceId
    note_id: str = Field(min_length=1, max_length=128)
    time: AwareDatetime
    author_role: Literal["physician", "nurse", "pharmacist", "therapist", "other"]
    text: str = Field(min_length=1, max_length=50_000)


# ------------------------------------------------------------------------------------------------ outputs


class DetectionRecord(Record):
    """A condition found in a window, for the alert logic: a rhythm condition or a technical one."""

    kind: Literal[
        "asystole",
        "extreme_bradycardia",
        "extreme_tachycardia",
        "ventricular_tachycardia",
        "ventricular_fibrillation",
        "signal_lost",
    ] = Field(description="PhysioNet/CinC 2015 alarm condition, or `signal_lost` (the waveform stopped).")
    category: Literal["physiological", "technical"]
    onset_time: AwareDatetime = Field(description="When the condition began (event time).")
    end_time: AwareDatetime | None = Field(None, description="When it was last seen in the window.")
    evidence: dict[str, Any] = Field(default_factory=dict, description="Measurements that support it.")


class RiskScore(Record):
    """`risk.scores`: the scores of one patient window."""

    schema_: Literal["cardiowatch.risk_score"] = Field(alias="schema")
    version: Literal[1]
    score_id: str = Field(
        description="Deterministic: patient id, window end and scorer version; a repeat "
        "of the same window carries the same id."
    )
    patient_id: PatientId
    window_start: AwareDatetime
    window_end: AwareDatetime
    risk: float = Field(ge=0, le=1, description="Cardiac-risk probability.")
    scores: dict[str, float] = Field(description="Named sub-scores (NEWS2, heart rate, task probabilities, ...).")
    modalities: list[Literal["ecg", "vitals", "imaging", "notes"]]
    signal_quality: float = Field(ge=0, le=1)
    detections: list[DetectionRecord] = Field(default_factory=list)
    scorer: str
    scorer_version: str


class Priority(StrEnum):
    """Alarm priority after IEC 60601-1-8."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertState(StrEnum):
    """Life-cycle state of an alert episode."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    LATCHED = "latched"
    RESOLVED = "resolved"


class Alert(Record):
    """`alerts`: one change of state of an alert episode (the topic is the audit trail)."""

    schema_: Literal["cardiowatch.alert"] = Field(alias="schema")
    version: Literal[1]
    alert_id: str = Field(description="Deterministic id of the episode: the same episode always has the same id.")
    patient_id: PatientId
    kind: str = Field(examples=["asystole", "news2_urgent", "signal_lost"])
    category: Literal["physiological", "technical"]
    priority: Priority
    state: AlertState
    onset_time: AwareDatetime
    time: AwareDatetime = Field(description="Time of this change of state.")
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    model_version: str | None = None
    revision: int = Field(ge=0, description="+1 per change of state of the episode.")


class AlertAck(Record):
    """`alerts.ack`: a person acting on an alert."""

    schema_: Literal["cardiowatch.alert_ack"] = Field(alias="schema")
    version: Literal[1]
    alert_id: str
    patient_id: PatientId
    action: Literal["acknowledge", "silence", "resolve"]
    user: str = Field(min_length=1, max_length=128)
    reason: str = Field("", max_length=2000)
    silence_s: float | None = Field(None, gt=0, le=3600)
    time: AwareDatetime


class DeadLetter(Record):
    """`<topic>.dlq`: an input event that broke its contract, kept whole with the reason."""

    schema_: Literal["cardiowatch.dead_letter"] = Field(alias="schema")
    version: Literal[1]
    source_topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = Field(description="Kafka timestamp of the original message.")
    key_b64: str | None = Field(description="Original key bytes, base64.")
    value_b64: str | None = Field(description="Original value bytes, base64.")
    error: str = Field(description="Class of fault, e.g. `unknown_version`, `implausible_value`.")
    reason: str = Field(description="What is wrong, for a person to act on.")
    detected_at: AwareDatetime
