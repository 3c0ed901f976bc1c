"""The model artifact: a versioned, self-describing folder, and :class:`RiskModel`, which loads and runs it.

Layout of an artifact folder::

    model.json          name, version, created, network config, tasks, calibration, training summary
    weights.pt          the network's state dict
    preprocessing.json  lead scales and vitals statistics fitted on the training split
    metrics.json        dev-split figures at the end of training
    seen_groups.json    patients / records used for training and dev (evaluation leaves them out)

The version is ``<name>-<created date>-<first 8 hex of the SHA-256 of the weights, calibration and decision
thresholds>`` (:func:`content_digest`): different models never share a version, and the same model always
has the same one (a seeded retraining reproduces it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.network import NetworkConfig, RiskNetwork
from models.preprocess import EcgInput, Preprocessing, context_batch, ecg_batch

#: The artifact shipped in the repository, loaded by the worker unless told otherwise.
SHIPPED: Path = Path(__file__).resolve().parent / "artifacts" / "cardiorisk"


@dataclass
class RiskModel:
    """A loaded model: network, preprocessing statistics, risk calibration and metadata."""

    network: RiskNetwork
    prep: Preprocessing
    #: Platt ``(a, b)`` per risk output: ``risk_ecg`` (the ECG branch, also the risk of a window without
    #: context) and ``risk`` (the fused risk of a window with context).
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Decision rule of the CinC 2017 rhythm call, fitted on dev (:func:`models.train.fit_rhythm_decision`).
    decision: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def version(self) -> str:
        """The artifact's version (``"untrained"`` for a network never saved)."""
        return str(self.meta.get("version", "untrained"))

    def to(self, device: str | torch.device) -> RiskModel:
        """Move the network to a device."""
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    def inputs(
        self, ecgs: Sequence[EcgInput | None], contexts: Sequence[Mapping[str, Any] | None]
    ) -> dict[str, torch.Tensor]:
        """The network's keyword inputs for a batch, on the model's device."""
        x, leads, mask = ecg_batch(ecgs, self.prep, device=self.device)
        ctx = {k: v.to(self.device) for k, v in context_batch(contexts, self.prep).items()}
        return {"ecg": x, "leads": leads, "lead_mask": mask, **ctx}

    def probabilities(self, logits: Mapping[str, torch.Tensor], context_mask: torch.Tensor) -> dict[str, np.ndarray]:
        """Task probabilities from logits.

        ``risk_ecg`` goes through the ECG branch's calibration; ``risk`` through the fused calibration where
        the window has context and through the ECG branch's where it has none, so a patient with ECG only
        gets exactly the ECG branch's probability.
        """
        out: dict[str, np.ndarray] = {}
        a_ecg, b_ecg = self.calibration.get("risk_ecg", (1.0, 0.0))
        a_fused, b_fused = self.calibration.get("risk", (1.0, 0.0))
        has_context = context_mask.any(1)
        for name, v in logits.items():
            v = v.float()
            if name == "rhythm":
                out[name] = torch.softmax(v, -1).cpu().numpy()
            elif name == "risk":
                z = torch.where(has_context, a_fused * v + b_fused, a_ecg * v + b_ecg)
                out[name] = torch.sigmoid(z).cpu().numpy()
            elif name == "risk_ecg":
                out[name] = torch.sigmoid(a_ecg * v + b_ecg).cpu().numpy()
            else:
                out[name] = torch.sigmoid(v).cpu().numpy()
        return out

    @torch.inference_mode()
    def predict(
        self,
        ecgs: Sequence[EcgInput | None],
        contexts: Sequence[Mapping[str, Any] | None] | None = None,
        mixed_precision: bool = False,
    ) -> dict[str, np.ndarray]:
        """Probabilities of every task for a batch of windows (see :meth:`probabilities`)."""
        self.network.eval()
        batch = self.inputs(ecgs, contexts or [None] * len(ecgs))
        with torch.autocast(
            self.device.type, dtype=torch.float16, enabled=mixed_precision and self.device.type == "cuda"
        ):
            logits = self.network(**batch)
        return self.probabilities(logits, batch["context_mask"])


def rhythm_call(model: RiskModel, noisy: float, rhythm: np.ndarray) -> str:
    """The CinC 2017 class of a recording from its noisy and rhythm probabilities.

    ``~`` when the noisy probability reaches the dev-fitted threshold, else the rhythm class with the largest
    probability after the dev-fitted AF and other-rhythm weights (1 when the artifact has none).
    """
    if noisy >= model.decision.get("noisy_threshold", 0.5):
        return "~"
    weights = [1.0, model.decision.get("af_weight", 1.0), model.decision.get("other_weight", 1.0)]
    weighted = np.asarray(rhythm, dtype=np.float64) * np.array(weights)
    return "NAO"[int(np.argmax(weighted))]


def content_digest(model: RiskModel) -> str:
    """SHA-256 of what decides the model's answers: serialised weights, calibration and decision thresholds."""
    buf = io.BytesIO()
    torch.save(model.network.state_dict(), buf)
    rules = {"calibration": {k: list(v) for k, v in sorted(model.calibration.items())}, "decision": model.decision}
    buf.write(json.dumps(rules, sort_keys=True).encode())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def save(model: RiskModel, folder: Path, metrics: Mapping[str, Any], seen_groups: Sequence[str]) -> Path:
    """Write the artifact folder and set the model's version.

    The files are written to a staging folder beside ``folder`` which then replaces it by rename, so a
    worker watching ``folder`` never reads a mix of two artifacts (:func:`load` also checks that the weights
    match the version).
    """
    folder = Path(folder)
    meta = dict(model.meta)
    name = meta.setdefault("name", "cardiorisk")
    meta["version"] = f"{name}-{meta['created'][:10]}-{content_digest(model)[:8]}"
    meta["network"] = model.network.cfg.to_dict()
    meta["calibration"] = {"method": "platt", **{k: list(v) for k, v in model.calibration.items()}}
    meta["decision"] = model.decision
    model.meta = meta
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent if folder.parent.exists() else None))
    torch.save(model.network.state_dict(), staging / "weights.pt")
    prep = {"lead_scale": model.prep.lead_scale, "vitals_stats": model.prep.vitals_stats}
    (staging / "preprocessing.json").write_text(json.dumps(prep, indent=2) + "\n")
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (staging / "seen_groups.json").write_text(json.dumps(sorted(seen_groups)) + "\n")
    (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    staging.chmod(0o755)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        folder.replace(old)
        staging.replace(folder)
        shutil.rmtree(old)
    else:
        staging.replace(folder)
    return folder


def load(folder: Path = SHIPPED, device: str | torch.device = "cpu") -> RiskModel:
    """Load an artifact folder.

    Raises:
        FileNotFoundError: The folder lacks one of the artifact's files.
        ValueError: The weights are not those the version names (a folder being replaced).
    """
    folder = Path(folder)
    for name in ("model.json", "weights.pt", "preprocessing.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a model artifact: {name} is missing")
    meta = json.loads((folder / "model.json").read_text())
    network = RiskNetwork(NetworkConfig(**meta["network"]))
    network.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    network.eval()
    prep_raw = json.loads((folder / "preprocessing.json").read_text())
    prep = Preprocessing(lead_scale=prep_raw["lead_scale"], vitals_stats=prep_raw["vitals_stats"])
    cal = meta.get("calibration", {})
    calibration = {k: (float(v[0]), float(v[1])) for k, v in cal.items() if k in ("risk", "risk_ecg")}
    model = RiskModel(network, prep, calibration, meta.get("decision", {}), meta)
    if not str(meta["version"]).endswith(content_digest(model)[:8]):
        raise ValueError(f"{folder}: weights.pt and model.json do not match version {meta['version']}")
    return model.to(device)


def seen_groups(folder: Path) -> set[str]:
    """Groups (patients / records) the artifact was trained or calibrated on.

    Raises:
        FileNotFoundError: The artifact does not say (evaluating it could mix training patients in).
    """
    path = Path(folder) / "seen_groups.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no seen_groups.json, so the patients it was trained on are unknown")
    return set(json.loads(path.read_text()))
