"""Recordings that replay can stream: WFDB records, CinC 2017 ``.mat`` files and CSV.

A :class:`Recording` holds one patient's digital samples as a list of :class:`Segment` (a stretch with
one channel layout and scale; multi-segment WFDB records have several, with gaps between them) and,
where the record has a numerics companion (``<record>n``, 1/min trends of bedside monitors), the vitals
measured over the same time.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import scipy.io
import wfdb
from wfdb.io._signal import INVALID_SAMPLE_VALUE  # WFDB's per-format "invalid sample" value

from streams.errors import StreamsError
from streams.waveform import ECG_LEADS, MISSING, Channel

log = logging.getLogger(__name__)

#: Non-ECG WFDB signal names and the contract's signal kind for each.
SIGNAL_KINDS: Final = {"ABP": "abp", "ART": "abp", "CVP": "cvp", "PAP": "pap", "PLETH": "pleth", "RESP": "resp"}
#: Units the contract declares for each kind when the record's own unit is not one it accepts
#: (respiration and pleth are relative signals; MIMIC headers often leave their unit at WFDB's "mV").
DEFAULT_UNITS: Final = {"pleth": "NU", "resp": "NU"}
#: Record-level lead names that stand for a standard lead. CinC 2017 recordings name their one lead
#: "ECG"; the dataset describes it as approximately lead I (AliveCor handheld, Clifford et al. 2017).
LEAD_ALIASES: Final = {"ECG": "I"}
#: WFDB numerics signals -> (LOINC code, UCUM unit, method). Codes as in :mod:`streams.records`.
NUMERICS: Final = {
    "HR": ("8867-4", "/min", None),
    "PULSE": ("8889-8", "/min", None),
    "RESP": ("9279-1", "/min", None),
    "SpO2": ("59408-5", "%", None),
    "NBPSys": ("8480-6", "mm[Hg]", "noninvasive"),
    "NBPDias": ("8462-4", "mm[Hg]", "noninvasive"),
    "NBPMean": ("8478-0", "mm[Hg]", "noninvasive"),
    "ABPSys": ("8480-6", "mm[Hg]", "invasive"),
    "ABPDias": ("8462-4", "mm[Hg]", "invasive"),
    "ABPMean": ("8478-0", "mm[Hg]", "invasive"),
}
#: Resolution of CSV samples: values in physical units are stored as integers of 1/CSV_GAIN units (1 uV).
CSV_GAIN: Final = 1000.0
#: CinC 2017 recording parameters (dataset README: 300 Hz, 1000 adu/mV), used for a ``.mat`` without header.
CINC2017_RATE: Final = 300.0
CINC2017_GAIN: Final = 1000.0


class SourceError(StreamsError):
    """A recording that cannot be read."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a recording with one channel layout: digital samples ``(channels, time)``."""

    start: int
    channels: tuple[Channel, ...]
    samples: np.ndarray


@dataclass(frozen=True, slots=True)
class VitalsSample:
    """One minute of monitor numerics: offset from the recording start and ``(code, value, unit, method)``."""

    offset_s: float
    observations: tuple[tuple[str, float, str, str | None], ...]


@dataclass(slots=True)
class Recording:
    """One patient's recording, ready to be cut into chunks."""

    name: str
    sampling_rate: float
    length: int
    segments: list[Segment]
    vitals: list[VitalsSample] = field(default_factory=list)
    skipped_channels: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.length / self.sampling_rate

    def chunks(self, chunk_s: float) -> Iterator[tuple[int, tuple[Channel, ...], np.ndarray]]:
        """Yield ``(start sample, channels, samples)`` chunks of ``chunk_s`` seconds on a fixed grid.

        A chunk never spans two segments: where a segment starts or ends inside a grid cell, the chunk is
        cut there, so every chunk has one channel layout and scale.
        """
        step = max(1, round(chunk_s * self.sampling_rate))
        for seg in self.segments:
            end = seg.start + seg.samples.shape[1]
            pos = seg.start
            while pos < end:
                stop = min(end, (pos // step + 1) * step)
                yield pos, seg.channels, seg.samples[:, pos - seg.start : stop - seg.start]
                pos = stop


def read_recording(path: Path, max_duration_s: float | None = None) -> Recording:
    """Read a WFDB record (path without extension, or its ``.hea``), a CinC ``.mat`` or a ``.csv``."""
    path = Path(path)
    if path.suffix == ".csv":
        return read_csv(path, max_duration_s=max_duration_s)
    if path.suffix == ".mat" and not path.with_suffix(".hea").exists():
        return read_cinc_mat(path, max_duration_s)
    if path.suffix in (".hea", ".mat", ".dat"):
        path = path.with_suffix("")
    if not path.with_suffix(".hea").exists():
        raise SourceError(f"{path}: no WFDB header {path.with_suffix('.hea').name}, and not a .csv or .mat file")
    return read_wfdb(path, max_duration_s)


def read_wfdb(path: Path, max_duration_s: float | None = None) -> Recording:
    """Read a single- or multi-segment WFDB record in digital units, with its numerics if present."""
    header = wfdb.rdheader(str(path))
    sampto = header.sig_len
    if max_duration_s is not None:
        sampto = min(sampto, int(max_duration_s * header.fs))
    try:
        record = wfdb.rdrecord(str(path), physical=False, m2s=False, sampto=sampto)
    except (OSError, ValueError) as err:
        raise SourceError(f"{path}: cannot read WFDB record: {err}") from err
    skipped: list[str] = []
    segments: list[Segment] = []
    if isinstance(record, wfdb.MultiRecord):
        pos = 0
        for seg, seg_len in zip(record.segments, record.seg_len, strict=True):
            if seg is not None and seg.d_signal is not None and seg.sig_len and not seg.record_name.endswith("_layout"):
                segment = _segment(pos, seg, skipped)
                if segment is not None:
                    segments.append(segment)
            pos += int(seg_len)
        length = pos
    else:
        segment = _segment(0, record, skipped)
        segments = [segment] if segment is not None else []
        length = record.sig_len
    if not segments and skipped:  # no segments and nothing skipped: the span read is all gap (a silent monitor)
        raise SourceError(f"{path}: no channel the contract knows (signals: {', '.join(sorted(set(skipped)))})")
    rec = Recording(path.name, float(record.fs), length, segments, skipped_channels=sorted(set(skipped)))
    numerics = path.with_name(path.name + "n")
    if numerics.with_suffix(".hea").exists():
        rec.vitals = read_numerics(numerics, rec.duration_s)
    return rec


def _segment(start: int, record: wfdb.Record, skipped: list[str]) -> Segment | None:
    channels, rows = [], []
    for i, raw_name in enumerate(record.sig_name):
        channel = _channel(raw_name, record.units[i], float(record.adc_gain[i]), int(record.baseline[i]))
        if channel is None:
            skipped.append(raw_name)
            continue
        column = record.d_signal[:, i]
        invalid = INVALID_SAMPLE_VALUE.get(record.fmt[i].split("+")[0])
        channels.append(channel)
        rows.append((column, invalid))
    if not channels:
        return None
    data = np.stack([column for column, _ in rows])
    present = np.stack(
        [column != invalid if invalid is not None else np.ones(column.shape, bool) for column, invalid in rows]
    )
    return Segment(start, tuple(channels), _frame_samples(data, ~present))


def _channel(raw_name: str, unit: str, gain: float, baseline: int) -> Channel | None:
    name = LEAD_ALIASES.get(raw_name, raw_name)
    lead = ECG_LEADS.get(name.upper())
    if lead is not None:
        if unit == "uV":
            return Channel(lead, "ecg", "mV", gain * 1000.0, baseline)
        return Channel(lead, "ecg", "mV", gain, baseline) if unit == "mV" else None
    kind = SIGNAL_KINDS.get(name.upper())
    if kind is None or gain <= 0:
        return None
    if kind in ("abp", "cvp", "pap"):
        return Channel(name, kind, "mmHg", gain, baseline) if unit == "mmHg" else None
    return Channel(name, kind, unit if unit in ("NU", "Ohm") else DEFAULT_UNITS[kind], gain, baseline)


def read_numerics(path: Path, max_duration_s: float | None = None) -> list[VitalsSample]:
    """Read a numerics record (1/min HR, SpO2, NBP, ... of MIMIC bedside monitors) as vitals samples."""
    record = wfdb.rdrecord(str(path))
    known = [(i, NUMERICS[name]) for i, name in enumerate(record.sig_name) if name in NUMERICS]
    out = []
    for row, values in enumerate(record.p_signal):
        offset = round(row / record.fs, 3)  # the header rounds 1/60 Hz to 0.0166666666667
        if max_duration_s is not None and offset >= max_duration_s:
            break
        obs = tuple(
            (code, round(float(values[i]), 3), unit, method)
            for i, (code, unit, method) in known
            if np.isfinite(values[i])
        )
        if obs:
            out.append(VitalsSample(offset, obs))
    return out


def read_cinc_mat(path: Path, max_duration_s: float | None = None) -> Recording:
    """Read a CinC 2017 ``.mat`` file (variable ``val``, int16, lead I, 300 Hz, 1000 adu/mV)."""
    try:
        val = scipy.io.loadmat(str(path))["val"]
    except (OSError, ValueError, KeyError) as err:
        raise SourceError(f"{path}: not a CinC 2017 .mat file with a 'val' variable: {err}") from err
    samples = np.asarray(val, np.int16)
    if max_duration_s is not None:
        samples = samples[:, : int(max_duration_s * CINC2017_RATE)]
    channel = Channel("I", "ecg", "mV", CINC2017_GAIN, 0)
    return Recording(path.stem, CINC2017_RATE, samples.shape[1], [Segment(0, (channel,), samples)])


def read_csv(
    path: Path,
    sampling_rate: float | None = None,
    kind: str = "ecg",
    unit: str = "mV",
    max_duration_s: float | None = None,
) -> Recording:
    """Read a CSV recording: a header row of channel names, one row per sample, physical units.

    An optional first column ``time_s`` gives each sample's time in seconds (the sampling rate is then its
    median spacing); otherwise ``sampling_rate`` is required. Columns whose name is an ECG lead are ECG in
    mV; other columns take ``kind`` and ``unit``. Empty cells and ``nan`` are missing samples. Values are
    stored at a resolution of 1/1000 of the unit.
    """
    with open(path, newline="") as handle:
        rows = list(csv.reader(row for row in handle if not row.startswith("#")))
    if len(rows) < 2:
        raise SourceError(f"{path}: a CSV recording needs a header row and at least one sample row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    try:
        table = np.array([[float(v) if v.strip() else np.nan for v in row] for row in body], np.float64)
    except ValueError as err:
        raise SourceError(f"{path}: non-numeric cell: {err}") from err
    if table.ndim != 2 or table.shape[1] != len(header):
        raise SourceError(f"{path}: every row must have {len(header)} cells")
    if header[0] == "time_s":
        if table.shape[0] < 2:
            raise SourceError(f"{path}: a time_s column needs at least two rows")
        sampling_rate = round(1.0 / float(np.median(np.diff(table[:, 0]))), 6)
        header, table = header[1:], table[:, 1:]
    if not sampling_rate:
        raise SourceError(f"{path}: no time_s column; give the sampling rate")
    if max_duration_s is not None:
        table = table[: int(max_duration_s * sampling_rate)]
    channels = []
    for name in header:
        lead = ECG_LEADS.get(name.upper())
        channels.append(Channel(lead, "ecg", "mV", CSV_GAIN, 0) if lead else Channel(name, kind, unit, CSV_GAIN, 0))
    digital = np.round(table.T * CSV_GAIN)
    samples = _frame_samples(np.nan_to_num(digital), ~np.isfinite(digital))
    return Recording(path.stem, float(sampling_rate), samples.shape[1], [Segment(0, tuple(channels), samples)])


def _frame_samples(digital: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Digital samples as the frame carries them, with the missing-sample marker where ``missing``.

    int16 when every present value fits (the marker itself excluded), int32 otherwise.
    """
    present = digital[~missing]
    fmt = 1 if present.size == 0 or (present.min() > MISSING[1] and present.max() <= 32767) else 2
    return np.where(missing, MISSING[fmt], digital).astype(np.int16 if fmt == 1 else np.int32)


def default_patient_id(path: Path) -> str:
    """Patient id of a recording when no mapping names one: ``<folder>-<record>``, e.g. ``mitdb-101``."""
    return f"{path.parent.name}-{path.stem if path.suffix in ('.csv', '.mat') else path.name}"


def expand(paths: list[Path]) -> list[Path]:
    """Expand directories into their recordings (the ``RECORDS`` list when present, else every ``.hea``)."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        listing = path / "RECORDS"
        if listing.exists():
            out += [path / line.strip() for line in listing.read_text().splitlines() if line.strip()]
        else:
            heads = sorted(path.glob("*.hea"))
            out += [h.with_suffix("") for h in heads if h.with_name(h.stem[:-1] + ".hea") not in heads]
            out += sorted(path.glob("*.csv"))
    return out
