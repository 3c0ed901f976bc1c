"""The multimodal risk network: ECG encoder, context encoders, cross-modal fusion and multi-task heads.

* **ECG encoder** (:class:`EcgEncoder`): one small residual 1-D CNN shared by every lead (a lead is a
  ``(1, 1000)`` sequence at :data:`models.datasets.MODEL_RATE_HZ`), a learned embedding of the lead's
  identity added to its feature map, a masked mean and max over the leads present (so any subset of 1-12
  leads works), one transformer layer over time and attention pooling to one embedding.
* **Context encoders**: an MLP over the vitals vector, an MLP over the imaging vector and a bag of hashed
  note tokens (:mod:`models.context`), each giving one token.
* **Fusion by cross-modal attention**: the ECG embedding queries the context tokens present (key padding
  mask per missing modality); the attended vector, through an MLP, adds a correction to the risk logit.
  With no context the correction is exactly zero, so a patient with ECG only gets exactly the ECG branch's
  risk -- by construction, not by training. Without ECG the encoder's output is a learned "no ECG" vector
  (training drops the whole ECG of a few examples, so it is learned, and the risk then rests on the
  context).
* **Heads**: ``structural`` (1 logit), ``rhythm`` (3 logits, N/A/O), ``noisy`` (1), ``ectopy`` (1) from the
  ECG embedding; ``risk`` from the ECG embedding plus the fusion correction, calibrated afterwards by Platt
  scaling (:mod:`models.train`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

import torch
from torch import Tensor, nn

from models.context import IMAGING_DIM, NOTE_BUCKETS, VITALS_DIM
from models.datasets import TASKS

#: Lead identities the encoder knows: the 12 standard leads, then an unspecified chest lead ("V" on many
#: monitors) and any other lead.
LEADS: Final = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6", "V", "OTHER")
#: Monitor names of the same leads: modified limb lead II and modified chest lead MCL1 (placed as V1).
LEAD_ALIASES: Final = {"MLII": "II", "ML2": "II", "MCL1": "V1", "MLI": "I", "MLIII": "III", "AVR": "AVR"}


def lead_index(name: str) -> int:
    """Index of a lead name in :data:`LEADS` (case-insensitive; aliases mapped; unknown leads to OTHER)."""
    key = name.strip().upper().replace("-", "")
    key = LEAD_ALIASES.get(key, key)
    return LEADS.index(key) if key in LEADS else LEADS.index("OTHER")


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the network (stored in the artifact)."""

    width: int = 64
    stem: int = 16
    #: Stride of the first convolution: 4 gives a 25 Hz feature map (the QRS complex spans 2-3 steps) at
    #: half the compute of stride 2.
    stem_stride: int = 4
    heads: int = 4
    context_width: int = 64
    dropout: float = 0.1

    def to_dict(self) -> dict[str, float | int]:
        """The config as a JSON-friendly dict."""
        return asdict(self)


class _Block(nn.Module):
    """Residual block: two 5-tap convolutions, batch norm, stride 2 on the first; 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.short = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class EcgEncoder(nn.Module):
    """Any subset of leads -> one embedding (see the module docstring)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv1d(1, cfg.stem, 7, stride=cfg.stem_stride, padding=3, bias=False),
            nn.BatchNorm1d(cfg.stem),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(_Block(cfg.stem, 32), _Block(32, 48), _Block(48, w), _Block(w, w))
        self.lead_embedding = nn.Embedding(len(LEADS), w)
        self.merge = nn.Linear(2 * w, w)
        self.temporal = nn.TransformerEncoderLayer(
            w, cfg.heads, dim_feedforward=2 * w, dropout=cfg.dropout, batch_first=True, norm_first=True
        )
        self.pool = nn.Linear(w, 1)
        self.no_ecg = nn.Parameter(torch.zeros(w))

    def forward(self, x: Tensor, leads: Tensor, lead_mask: Tensor) -> Tensor:
        """Embed ECG.

        Args:
            x: Filtered, normalised ECG ``(batch, leads, time)``.
            leads: Lead identity per row, ``(batch, leads)`` indices into :data:`LEADS`.
            lead_mask: True where a row holds a lead ``(batch, leads)``; a patient without any gets the
                "no ECG" vector.

        Returns:
            ``(batch, width)`` embeddings.
        """
        b, n_leads, t = x.shape
        present = lead_mask.reshape(-1).nonzero().squeeze(1)
        # the CNN sees present leads only: padded slots would waste compute and skew batch-norm statistics
        h_present = self.blocks(self.stem(x.reshape(b * n_leads, 1, t).index_select(0, present)))
        h = h_present.new_zeros(b * n_leads, h_present.shape[1], h_present.shape[2]).index_copy(0, present, h_present)
        h = h.reshape(b, n_leads, h.shape[1], h.shape[2]) + self.lead_embedding(leads)[..., None]
        m = lead_mask[:, :, None, None].to(h.dtype)
        count = m.sum(1).clamp(min=1.0)
        mean = (h * m).sum(1) / count
        peak = h.masked_fill(m == 0, float("-inf")).amax(1).nan_to_num(0.0, neginf=0.0)
        seq = self.merge(torch.cat([mean, peak], 1).transpose(1, 2))  # (b, t', w)
        seq = self.temporal(seq)
        weights = torch.softmax(self.pool(seq), dim=1)
        emb = (weights * seq).sum(1)
        has_ecg = lead_mask.any(1, keepdim=True)
        return torch.where(has_ecg, emb, self.no_ecg.to(emb.dtype).expand_as(emb))


class RiskNetwork(nn.Module):
    """ECG and context encoders, cross-modal fusion and the task heads (see the module docstring)."""

    def __init__(self, cfg: NetworkConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or NetworkConfig()
        w, c = cfg.width, cfg.context_width
        self.ecg = EcgEncoder(cfg)
        self.vitals = nn.Sequential(nn.Linear(VITALS_DIM, c), nn.ReLU(), nn.Linear(c, w))
        self.imaging = nn.Sequential(nn.Linear(IMAGING_DIM, c), nn.ReLU(), nn.Linear(c, w))
        self.notes = nn.EmbeddingBag(NOTE_BUCKETS, w, mode="mean")
        self.modality_embedding = nn.Embedding(3, w)
        self.attention = nn.MultiheadAttention(w, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.fusion = nn.Sequential(nn.Linear(2 * w, c), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(c, 1))
        self.dropout = nn.Dropout(cfg.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(w, n) for name, n in TASKS.items()})

    def forward(
        self,
        ecg: Tensor,
        leads: Tensor,
        lead_mask: Tensor,
        vitals: Tensor,
        imaging: Tensor,
        note_ids: Tensor,
        note_offsets: Tensor,
        context_mask: Tensor,
    ) -> dict[str, Tensor]:
        """Logits of every task for a batch.

        Args:
            ecg: ``(batch, leads, time)``, see :meth:`EcgEncoder.forward`.
            leads: ``(batch, leads)`` lead indices.
            lead_mask: ``(batch, leads)`` bool.
            vitals: ``(batch, VITALS_DIM)``.
            imaging: ``(batch, IMAGING_DIM)``.
            note_ids: Concatenated note-token ids of the batch (``EmbeddingBag`` input).
            note_offsets: ``(batch,)`` start of each patient's tokens in ``note_ids``.
            context_mask: ``(batch, 3)`` bool, True where vitals, imaging, notes are present.

        Returns:
            Task -> logits: ``(batch,)`` for one-output tasks, ``(batch, 3)`` for ``rhythm``; plus
            ``risk_ecg``, the ECG branch's risk logit before fusion.
        """
        e = self.ecg(ecg, leads, lead_mask)
        tokens = torch.stack(
            [self.vitals(vitals), self.imaging(imaging), self.notes(note_ids, note_offsets)], 1
        ) + self.modality_embedding.weight.to(e.dtype)
        any_context = context_mask.any(1)
        # a row without context attends to a dummy unmasked key; its result is zeroed below
        keys_missing = ~context_mask
        keys_missing[:, 0] &= any_context
        attended, _ = self.attention(e[:, None, :], tokens, tokens, key_padding_mask=keys_missing, need_weights=False)
        correction = self.fusion(torch.cat([e, attended[:, 0]], 1))[:, 0] * any_context.to(e.dtype)
        h = self.dropout(e)
        out = {name: head(h) for name, head in self.heads.items()}
        logits = {name: v if name == "rhythm" else v[:, 0] for name, v in out.items()}
        logits["risk_ecg"] = logits["risk"]
        logits["risk"] = logits["risk"] + correction
        return logits
