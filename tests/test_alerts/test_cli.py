"""The consumer tooling's pure parts: the patient inside an alert id, and the one-line rendering."""

import pytest

from alerts.cli import patient_of, render
from alerts.policy import PatientAlerts, alert_id, on_score
from tests.test_alerts.test_policy import T0, score


def test_the_patient_is_read_back_from_any_alert_id() -> None:
    for patient in ("mitdb-203", "ward:7:bed:2", "a-b_c"):
        for kind in ("asystole", "news2_emergency", "signal_lost"):
            assert patient_of(alert_id(patient, kind, T0.timestamp())) == patient
    with pytest.raises(ValueError, match="not a cardiowatch alert id"):
        patient_of("p1:something_else:2026-01-01T00:00:00.000Z")


def test_an_alert_renders_on_one_line_with_priority_kind_state_and_id() -> None:
    (alert,) = on_score(PatientAlerts("p1"), score(10, [("asystole", 5)]))[1]
    line = render(alert)
    assert "\n" not in line
    for part in ("HIGH", "p1", "asystole", "active", "r0", alert.alert_id, "signal_quality=0.95"):
        assert part in line
    assert render(alert, colour=True).count("\033[") == 2
