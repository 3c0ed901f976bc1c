"""The learned scorer: the risk model's artifact behind the same :class:`streams.scoring.Scorer` interface.

:class:`ModelScorer` runs the rule scorer's ECG processing (the rhythm detections, NEWS2 and pulse that the
alert logic consumes) and the model (:mod:`models.artifact`) through a dynamic-batching
:class:`models.engine.InferenceEngine`, and publishes the model's calibrated risk as ``risk``, beside the
rule scores and the model's task probabilities (``model_*``). Its ``version`` is the artifact's version, so
every score and alert names the model that made it.

* **Where it runs**: the worker ships the scorer to its scoring process with every batch; only the artifact
  path and engine settings travel (:meth:`ModelScorer.__getstate__`). The process loads the model once
  and keeps it (one engine per artifact folder per process), never on the worker's event loop.
* **Swapping models without a restart**: at most every ``reload_s`` seconds the scorer looks at the
  artifact's ``model.json`` (written last by :func:`models.artifact.save`); when it changed, the new
  artifact is loaded and serves from the next batch. Scores name the new version from then on.
* **Shadow model**: a second ``ModelScorer`` given as ``shadow`` scores the same samples, reusing the live
  rule features (:meth:`ModelScorer.rescore`); the worker publishes its scores to ``risk.scores.shadow``
  only (:data:`streams.topics.RISK_SCORES_SHADOW`), where no alert agent listens, after the live ones, and a
  shadow's failure is logged without touching live scoring.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models import artifact
from models.engine import InferenceEngine
from models.preprocess import EcgInput
from streams.align import AlignedSample
from streams.scoring import RuleScorer, Scored
from streams.windows import EcgWindow

log = logging.getLogger(__name__)

#: Engines already loaded in this process, by artifact folder: (engine, model.json mtime, last check).
_ENGINES: dict[str, list[Any]] = {}


#: Below this share of samples present, a lead counts as absent for the model (a lead that is off or lost).
MIN_LEAD_PRESENT = 0.5


def ecg_input(window: EcgWindow | None) -> EcgInput | None:
    """The ECG leads of a window as the model takes them; None without a lead at least half present."""
    if window is None:
        return None
    present = 1.0 - window.missing.mean(axis=1) if window.samples.size else []
    rows = [r for r, (_, kind) in enumerate(window.channels) if kind == "ecg" and present[r] >= MIN_LEAD_PRESENT]
    if not rows:
        return None
    return EcgInput(tuple(window.channels[r][0] for r in rows), window.samples[rows], window.sampling_rate)


#: Vitals the model reads under one name, and the contract's other names for the same measurement
#: (pulse oximetry's own codes, :data:`streams.records.VITAL_CODES`), taken when the first is absent.
VITAL_FALLBACKS = {"spo2": "spo2_pulse_oximetry", "heart_rate": "pulse_rate_oximetry"}


def model_context(sample: AlignedSample) -> dict[str, Any]:
    """A sample's vitals, imaging and notes in the model's context form (:mod:`models.context`)."""
    context: dict[str, Any] = {}
    if sample.vitals:
        vitals = {name: (v.value, v.age_s, v.trend_per_h) for name, v in sample.vitals.items()}
        for name, other in VITAL_FALLBACKS.items():
            if name not in vitals and other in vitals:
                vitals[name] = vitals[other]
        context["vitals"] = vitals
    if sample.imaging is not None:
        context["imaging"] = {**sample.imaging.data, "age_s": sample.imaging.age_s}
    if sample.notes:
        context["notes"] = [str(n.data.get("text", "")) for n in sample.notes]
    return context


class ModelScorer:
    """Rule features plus the learned model's risk (see the module docstring)."""

    name = "model"

    def __init__(
        self,
        model_dir: Path | str = artifact.SHIPPED,
        mains_hz: float = 50.0,
        preferred_batch: int = 64,
        max_delay_s: float = 0.005,
        device: str = "auto",
        reload_s: float = 5.0,
        torchscript: bool = False,
        shadow: ModelScorer | None = None,
    ) -> None:
        """Describe the scorer; the artifact is loaded where the scorer first scores."""
        self.model_dir = str(Path(model_dir).resolve())
        self.mains_hz = mains_hz
        self.preferred_batch = preferred_batch
        self.max_delay_s = max_delay_s
        self.device = device
        self.reload_s = reload_s
        self.torchscript = torchscript
        self.shadow = shadow
        self.rules = RuleScorer(mains_hz)
        path = Path(self.model_dir) / "model.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no model artifact at {self.model_dir} (no model.json): point CARDIOWATCH_MODEL_DIR at one, "
                "train one with `cardiowatch train`, or score with the rules alone (CARDIOWATCH_SCORER=rules)"
            )
        self._version = str(json.loads(path.read_text())["version"])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "rules"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rules = RuleScorer(self.mains_hz)

    @property
    def version(self) -> str:
        """Version of the artifact serving now."""
        return self._version

    def engine(self) -> InferenceEngine:
        """This process's engine for the artifact, loaded on first use and reloaded when the artifact changes."""
        path = Path(self.model_dir) / "model.json"
        entry = _ENGINES.get(self.model_dir)
        now = time.monotonic()
        if entry is None:
            mtime = path.stat().st_mtime_ns  # before loading: a swap during the load is seen at the next check
            started = InferenceEngine(
                artifact.load(Path(self.model_dir)),
                self.preferred_batch,
                self.max_delay_s,
                device=self.device,
                torchscript=self.torchscript,
            )
            entry = _ENGINES[self.model_dir] = [started, mtime, now]
        elif now - entry[2] >= self.reload_s:
            entry[2] = now
            try:
                mtime = path.stat().st_mtime_ns
                if mtime != entry[1]:
                    model = artifact.load(Path(self.model_dir))
                    entry[0].swap(model)
                    entry[1] = mtime
                    log.info("model swapped to %s", model.version)
            except (OSError, ValueError, RuntimeError, KeyError) as err:  # being replaced: try at the next check
                log.warning("model artifact %s changed but does not load yet: %s", self.model_dir, err)
        engine: InferenceEngine = entry[0]
        self._version = engine.model.version
        return engine

    def score_batch(self, samples: Sequence[AlignedSample]) -> list[Scored]:
        """Rule scores and detections plus the model's probabilities for a batch."""
        return self.rescore(samples, self.rules.score_batch(samples))

    def rescore(self, samples: Sequence[AlignedSample], ruled: Sequence[Scored]) -> list[Scored]:
        """The model's answers on samples whose rule scores are known (a shadow reuses the live ones)."""
        engine = self.engine()
        predictions = engine.predict_many([ecg_input(s.ecg) for s in samples], [model_context(s) for s in samples])
        self._version = predictions[0]["model_version"] if predictions else self._version
        out = []
        for scored, p in zip(ruled, predictions, strict=True):
            scores = {k: v for k, v in scored.scores.items() if not k.startswith("model_")}
            scores.setdefault("rule_risk", scored.risk)
            scores["model_risk_ecg"] = round(float(p["risk_ecg"]), 4)
            scores["model_structural"] = round(float(p["structural"]), 4)
            scores["model_af"] = round(float(p["rhythm"][1]), 4)
            scores["model_other_rhythm"] = round(float(p["rhythm"][2]), 4)
            scores["model_ectopy"] = round(float(p["ectopy"]), 4)
            scores["model_noisy"] = round(float(p["noisy"]), 4)
            out.append(
                Scored(
                    round(float(p["risk"]), 4), scores, scored.signal_quality, scored.detections, scored.beat_reference
                )
            )
        return out
