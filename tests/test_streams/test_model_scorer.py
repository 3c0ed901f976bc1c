"""The learned scorer behind the scorer interface: model inputs from aligned samples, rule features kept, shadow."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from models import artifact
from streams.align import AlignedSample, VitalValue
from streams.model_scorer import ModelScorer, ecg_input, model_context
from streams.scoring import RuleScorer
from tests.test_streams.test_scoring import mitdb_window


def test_a_lead_mostly_missing_is_absent_for_the_model_and_a_window_without_leads_has_no_ecg(data_dir: Path) -> None:
    w = mitdb_window(data_dir, "208", 300.0, 360)
    w.samples[1, : int(0.6 * w.samples.shape[1])] = np.nan  # V1 lost for 6 of 10 s
    got = ecg_input(w)
    assert got is not None and got.leads == ("MLII",) and got.samples.shape == (1, 3600)
    w.samples[0, :] = np.nan
    assert ecg_input(w) is None and ecg_input(None) is None


def test_pulse_oximetry_codes_stand_in_for_the_vitals_the_model_reads() -> None:
    sample = AlignedSample(
        "p",
        0,
        10,
        None,
        vitals={
            "spo2_pulse_oximetry": VitalValue(91.0, 20.0, None),
            "pulse_rate_oximetry": VitalValue(118.0, 20.0, 3.0),
        },
    )
    vitals = model_context(sample)["vitals"]
    assert vitals["spo2"] == (91.0, 20.0, None) and vitals["heart_rate"] == (118.0, 20.0, 3.0)


def test_the_model_scorer_keeps_the_rule_features_and_scores_as_the_model_does(data_dir: Path) -> None:
    windows = [mitdb_window(data_dir, rec, 300.0, 360) for rec in ("119", "208")]
    samples = [AlignedSample(w.patient_id, w.start_us, w.end_us, w) for w in windows]
    samples.append(AlignedSample("vitals-only", 0, 10, None, vitals={"heart_rate": VitalValue(125.0, 10.0, None)}))
    scorer = pickle.loads(pickle.dumps(ModelScorer(reload_s=3600)))  # as the worker ships it to its process
    model = artifact.load(artifact.SHIPPED)
    scored = scorer.score_batch(samples)
    ruled = RuleScorer().score_batch(samples)
    direct = model.predict([ecg_input(s.ecg) for s in samples], [model_context(s) for s in samples])
    assert scorer.version == model.version
    for s, r, i in zip(scored, ruled, range(3), strict=True):
        assert s.risk == pytest.approx(direct["risk"][i], abs=1e-4)
        assert s.scores["model_ectopy"] == pytest.approx(direct["ectopy"][i], abs=1e-4)
        assert s.detections == r.detections and s.scores["news2"] == r.scores["news2"]
        assert s.scores["rule_risk"] == r.risk
    # an ECG-only window's risk is the ECG branch's; the shadow path (rescore) reuses the rule results
    assert scored[0].risk == pytest.approx(scored[0].scores["model_risk_ecg"], abs=1e-4)
    assert [x.risk for x in scorer.rescore(samples, scored)] == [x.risk for x in scored]


def test_a_missing_artifact_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CARDIOWATCH_SCORER=rules"):
        ModelScorer(tmp_path)
