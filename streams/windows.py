"""Per-patient event-time windows over waveform chunks: pure functions over a small state object.

The rules (DESIGN.md, "Time and windows"):

* Event time is the device time in each chunk. A patient's *stream time* is the largest chunk end seen.
* Windows ``[t, t + W)`` start on a fixed grid, multiples of the hop ``H`` since the Unix epoch, so the same
  data always gives the same windows whichever worker sees it (score keys are built from them). A stream's
  first window is the one holding its first sample (its head, before the stream began, is missing).
* A window closes when stream time passes ``t + W + grace``. Chunks that arrive out of order within grace
  are put back in place; a chunk whose samples all belong to windows already closed is *too late* and is
  counted, never silently dropped.
* Duplicates — the same ``(source_id, seq)`` again — are dropped and counted.
* Gaps stay gaps: a window carries NaN where a sample is missing (its mask), nothing is interpolated.
* A silent patient: when no chunk has arrived for ``signal_lost_s`` of wall time, stream time is advanced
  by wall time, the windows holding the last data are closed, and one :class:`SignalLost` is emitted.
* A window with no data at all is not emitted (the signal-lost event speaks for that stretch).

Faust's own windowed tables close windows by wall clock and have open bugs (faust-streaming #172, #186,
#195, #428), hence this module. Functions take a :class:`EcgBuffer` and an event and return outputs; they
update the buffer in place (a copy per chunk would cost more than the work itself) and return it.

Each buffered chunk keeps an opaque ``token`` (the worker's Kafka event); a token comes back in
``released`` once no open window needs its chunk; the worker acknowledges the input offset once the scores
of the windows that held it are published.
After a crash, the uncommitted tail is consumed again and the buffer rebuilds itself from the topic.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.waveform import WaveformChunk

US = 1_000_000


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Window geometry, in seconds; see the module docstring for the rules."""

    window_s: float = 10.0
    hop_s: float = 2.0
    grace_s: float = 2.0
    signal_lost_s: float = 5.0

    def __post_init__(self) -> None:
        """Reject a geometry the rules cannot follow."""
        if not 0 < self.hop_s <= self.window_s:
            raise ValueError(f"need 0 < hop_s <= window_s, got hop {self.hop_s} s, window {self.window_s} s")
        if self.grace_s < 0 or self.signal_lost_s <= 0:
            raise ValueError("grace_s must be >= 0 and signal_lost_s > 0")
        if round(self.window_s * US) % round(self.hop_s * US):
            raise ValueError("window_s must be a whole number of hops")

    @property
    def window_us(self) -> int:
        """Window length in microseconds."""
        return round(self.window_s * US)

    @property
    def hop_us(self) -> int:
        """Hop in microseconds."""
        return round(self.hop_s * US)

    @property
    def grace_us(self) -> int:
        """Grace in microseconds."""
        return round(self.grace_s * US)


@dataclass(slots=True)
class EcgWindow:
    """One closed window of one patient.

    Attributes:
        patient_id: The patient.
        start_us: Window start, microseconds since the epoch (UTC), inclusive.
        end_us: Window end, exclusive.
        sampling_rate: Hz of ``samples`` (the rate of the chunks, before any resampling).
        channels: ``(name, kind)`` per row of ``samples``, e.g. ``("II", "ecg")``, ``("ABP", "abp")``.
        samples: Physical units, float32 ``(channels, time)``; NaN where a sample is missing.
        closed_by: ``"stream"`` when stream time passed the end plus grace, ``"wall"`` for a silent patient.
        arrival_s: Wall time (epoch seconds) when the last chunk used by the window arrived.
    """

    patient_id: str
    start_us: int
    end_us: int
    sampling_rate: float
    channels: tuple[tuple[str, str], ...]
    samples: np.ndarray
    closed_by: str
    arrival_s: float

    @property
    def missing(self) -> np.ndarray:
        """Boolean ``(channels, time)`` mask, True where a sample is missing."""
        return np.isnan(self.samples)

    def present_fraction(self) -> float:
        """Fraction of samples present over all channels."""
        return float(1.0 - self.missing.mean()) if self.samples.size else 0.0


@dataclass(frozen=True, slots=True)
class SignalLost:
    """Technical event: a patient's waveform stopped arriving.

    Attributes:
        patient_id: The patient.
        last_event_us: Event time just after the last sample received.
        silent_s: Wall seconds since the last chunk arrived.
    """

    patient_id: str
    last_event_us: int
    silent_s: float


@dataclass(slots=True)
class _Buffered:
    start_us: int
    end_us: int
    chunk: WaveformChunk
    values: np.ndarray  # the chunk in physical units, converted once for every window it falls in
    arrival_s: float
    token: Any


@dataclass(slots=True)
class EcgBuffer:
    """Window state of one patient: buffered chunks, stream time and the next window to close.

    Attributes:
        patient_id: The patient.
        chunks: Buffered chunks sorted by start time.
        stream_us: Largest chunk end seen (event time).
        next_start_us: Start of the next window to close (on the hop grid).
        last_arrival_s: Wall time of the last chunk that arrived.
        lost: True while the patient is silent (one :class:`SignalLost` per silence).
        emitted: True once a window has closed (until then an earlier chunk moves the grid start back).
        seen: ``(source_id, seq)`` keys of the buffered chunks, for duplicate detection (a resent chunk
            that is no longer buffered belongs to closed windows only, and is too late).
    """

    patient_id: str
    chunks: list[_Buffered] = field(default_factory=list)
    stream_us: int = 0
    next_start_us: int | None = None
    last_arrival_s: float = 0.0
    lost: bool = False
    emitted: bool = False
    seen: set[tuple[str, int]] = field(default_factory=set)


@dataclass(slots=True)
class ChunkOutcome:
    """What adding one chunk did.

    Attributes:
        status: ``accepted``, ``late`` (accepted, arrived out of order), ``duplicate`` or ``too_late``.
        windows: Windows closed by the chunk's arrival.
        released: Tokens of chunks no open window needs any more (this chunk's own if it was not kept).
        gap_s: Seconds of event time between the previous stream time and this chunk's start (> 0 is a gap).
        restored: True when this chunk ended a silence (a :class:`SignalLost` was emitted before).
    """

    status: str
    windows: list[EcgWindow]
    released: list[Any]
    gap_s: float = 0.0
    restored: bool = False


def add_chunk(
    buf: EcgBuffer, chunk: WaveformChunk, config: WindowConfig, arrival_s: float, token: Any = None
) -> ChunkOutcome:
    """Add one chunk to a patient's buffer and close every window stream time now passes.

    Args:
        buf: The patient's state (updated in place).
        chunk: A validated chunk of this patient.
        config: Window geometry.
        arrival_s: Wall time of arrival, epoch seconds (for latency and the silence watermark).
        token: Opaque handle returned in ``released`` once the chunk is no longer needed.

    Returns:
        The outcome: status, closed windows and released tokens.

    Example:
        >>> import numpy as np
        >>> from streams.waveform import Channel, WaveformChunk
        >>> cfg, buf = WindowConfig(window_s=2, hop_s=1, grace_s=0), EcgBuffer("p1")
        >>> lead = (Channel("II", "ecg", "mV", 200.0, 0),)
        >>> outs = [add_chunk(buf, WaveformChunk("p1", "m", i, i * 1_000_000, 4.0, lead,
        ...         np.full((1, 4), 200, np.int16)), cfg, 0.0) for i in range(4)]
        >>> [(w.start_us // 1_000_000, w.samples.shape) for o in outs for w in o.windows]
        [(0, (1, 8)), (1, (1, 8)), (2, (1, 8))]
    """
    key = (chunk.source_id, chunk.seq)
    if key in buf.seen:
        return ChunkOutcome("duplicate", [], [token])
    start, end = chunk.start_time_us, chunk.end_time_us
    if buf.emitted and buf.next_start_us is not None and end <= buf.next_start_us:
        return ChunkOutcome("too_late", [], [token])
    buf.seen.add(key)
    first = start // config.hop_us * config.hop_us  # the grid point of the first window holding the chunk start
    started = buf.next_start_us is not None  # stream time set: a chunk came before (it may have been closed since)
    if not started or not buf.emitted and first < buf.next_start_us:  # type: ignore[operator]
        buf.next_start_us = first
    status = "late" if started and start < buf.stream_us else "accepted"
    gap_s = (start - buf.stream_us) / US if started and start > buf.stream_us else 0.0
    restored, buf.lost = buf.lost, False
    item = _Buffered(start, end, chunk, chunk.physical(), arrival_s, token)
    if not buf.chunks or start >= buf.chunks[-1].start_us:
        buf.chunks.append(item)
    else:
        bisect.insort(buf.chunks, item, key=lambda b: b.start_us)
    buf.stream_us = max(buf.stream_us, end)
    buf.last_arrival_s = max(buf.last_arrival_s, arrival_s)
    windows, released = _close(buf, config, buf.stream_us - config.grace_us, "stream")
    return ChunkOutcome(status, windows, released, gap_s, restored)


def advance_wall(
    buf: EcgBuffer, config: WindowConfig, now_s: float
) -> tuple[list[EcgWindow], list[Any], SignalLost | None]:
    """Close a silent patient's windows by wall time (the watermark of DESIGN.md).

    When no chunk has arrived for ``signal_lost_s`` seconds, stream time is taken to have moved on with the
    wall clock since the last arrival; every window holding data that this passes is closed, and one
    :class:`SignalLost` is returned for the silence (the next chunk ends it: ``ChunkOutcome.restored``).

    Returns:
        ``(windows, released tokens, signal-lost event or None)``.
    """
    silent_s = now_s - buf.last_arrival_s
    if not buf.chunks and buf.lost or silent_s < config.signal_lost_s or buf.next_start_us is None:
        return [], [], None
    watermark = buf.stream_us + round(silent_s * US) - config.grace_us
    windows, released = _close(buf, config, watermark, "wall")
    event = None
    if not buf.lost:
        buf.lost = True
        event = SignalLost(buf.patient_id, buf.stream_us, round(silent_s, 3))
    return windows, released, event


def idle(buf: EcgBuffer, now_s: float, after_s: float) -> bool:
    """True when a patient has been silent for ``after_s`` wall seconds with every window closed.

    Its buffer then holds nothing, and a worker may forget it (the next chunk starts a new buffer).
    """
    return buf.lost and not buf.chunks and now_s - buf.last_arrival_s > after_s


def _close(
    buf: EcgBuffer, config: WindowConfig, watermark_us: int, closed_by: str
) -> tuple[list[EcgWindow], list[Any]]:
    """Close windows ending at or before ``watermark_us``; prune chunks no later window needs."""
    windows: list[EcgWindow] = []
    assert buf.next_start_us is not None
    while buf.next_start_us + config.window_us <= watermark_us:
        start = buf.next_start_us
        end = start + config.window_us
        overlapping = [b for b in buf.chunks if b.start_us < end and b.end_us > start]
        if overlapping:
            windows.append(_assemble(buf.patient_id, start, end, overlapping, closed_by))
            buf.emitted = True
            buf.next_start_us += config.hop_us
        elif buf.chunks and buf.chunks[0].start_us >= end:
            # skip the empty stretch: the next window with data is the first one reaching the next chunk
            first = buf.chunks[0].start_us
            buf.next_start_us = max(
                start + config.hop_us, (first - config.window_us) // config.hop_us * config.hop_us + config.hop_us
            )
        else:
            buf.next_start_us += config.hop_us
            if not buf.chunks:
                break
    released = []
    keep = 0
    while keep < len(buf.chunks) and buf.chunks[keep].end_us <= buf.next_start_us:
        released.append(buf.chunks[keep].token)
        buf.seen.discard((buf.chunks[keep].chunk.source_id, buf.chunks[keep].chunk.seq))
        keep += 1
    if keep:
        del buf.chunks[:keep]
    return windows, released


def _assemble(patient_id: str, start: int, end: int, parts: list[_Buffered], closed_by: str) -> EcgWindow:
    """Lay the chunks onto the window's sample grid; NaN where nothing was received."""
    rates = Counter(b.chunk.sampling_rate for b in parts)
    rate = rates.most_common(1)[0][0]
    n = round((end - start) * rate / US)
    names: dict[tuple[str, str], int] = {}
    for b in parts:
        for c in b.chunk.channels:
            names.setdefault((c.name, c.kind), len(names))
    out = np.full((len(names), n), np.nan, np.float32)
    for b in parts:
        values = b.values
        if b.chunk.sampling_rate != rate:  # a monitor that changed rate mid-window: put it on the window's grid
            t_src = np.arange(values.shape[1]) / b.chunk.sampling_rate
            t_dst = np.arange(0, values.shape[1] / b.chunk.sampling_rate, 1 / rate)
            # every t_dst lies within the chunk: past its last sample, that sample holds (no gap is invented)
            values = np.stack([np.interp(t_dst, t_src, row) for row in values]).astype(np.float32)
        offset = round((b.start_us - start) * rate / US)
        lo, hi = max(offset, 0), min(offset + values.shape[1], n)
        if lo >= hi:
            continue
        rows = [names[(c.name, c.kind)] for c in b.chunk.channels]
        if rows and rows == list(range(rows[0], rows[0] + len(rows))):  # the usual case: a slice, not fancy indexing
            out[rows[0] : rows[0] + len(rows), lo:hi] = values[:, lo - offset : hi - offset]
        else:
            out[rows, lo:hi] = values[:, lo - offset : hi - offset]
    return EcgWindow(
        patient_id,
        start,
        end,
        float(rate),
        tuple(names),
        out,
        closed_by,
        max(b.arrival_s for b in parts),
    )
