"""The ``ecg.waveform`` frame: a compact, language-neutral binary encoding of one waveform chunk.

The layout is specified in ``docs/contracts.md`` (section "ecg.waveform"); this module is its reference
implementation. In short, all integers little-endian::

    offset  type      field
    0       4 bytes   magic "CWWF"
    4       uint8     version (1)
    5       uint8     sample format: 1 = int16, 2 = int32
    6       uint16    channel count C (1..64)
    8       uint32    samples per channel N (1..120000)
    12      uint64    sequence number (per source, +1 per chunk)
    20      int64     start time, microseconds since 1970-01-01T00:00:00Z (time of sample 0)
    28      float64   sampling rate, Hz
    36      str16     patient id      (uint16 byte length + UTF-8)
            str16     source id       (uint16 byte length + UTF-8)
            C times:  str8 name, str8 kind, str8 unit (uint8 byte length + UTF-8),
                      float64 gain (digital units per physical unit), int32 baseline (digital)
            C*N       samples, channel-major (all of channel 0, then channel 1, ...)

Physical value = (digital - baseline) / gain, as in WFDB. The smallest value of the sample format
(-32768 for int16) marks a missing sample (lead off, gap), as WFDB's invalid-sample value does.

Digital samples travel untouched, so a consumer decodes exactly the integers the recording holds.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from typing import Final

import numpy as np

from streams.errors import InvalidEvent

MAGIC: Final = b"CWWF"
VERSION: Final = 1
SAMPLE_FORMATS: Final[dict[int, np.dtype]] = {1: np.dtype("<i2"), 2: np.dtype("<i4")}
MISSING: Final = {1: -32768, 2: -(2**31)}
MAX_CHANNELS: Final = 64
MAX_SAMPLES: Final = 120_000
MIN_SAMPLING_RATE: Final = 25.0
MAX_SAMPLING_RATE: Final = 2000.0

_FIXED = struct.Struct("<4sBBHIQqd")
_ITEMSIZE: Final = {fmt: dtype.itemsize for fmt, dtype in SAMPLE_FORMATS.items()}
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce
_CHANNEL_TAIL = struct.Struct("<di")
#: Offset of the variable-length block (the decoder's cache key starts at the sampling rate, offset 28).
_BLOCK_START: Final = _FIXED.size
#: Smallest end of that block: two empty ids, no channel. A frame whose samples would end it earlier is
#: shorter than its header declares (and the cache key would slice from the frame's end).
_MIN_BLOCK_END: Final = _BLOCK_START + 4

#: Lead names accepted for ``kind == "ecg"``, mapped from their upper-case spelling to the canonical one.
#: Standard 12 leads, the modified limb/chest leads of Holter and bedside monitors (MLI-MLIII, MCL1,
#: MCL6), and "V", the unspecified precordial lead that bedside monitors label as such (PhysioNet/CinC
#: Challenge 2015 records).
ECG_LEADS: Final = {
    name.upper(): name
    for name in (
        "I",
        "II",
        "III",
        "aVR",
        "aVL",
        "aVF",
        "V1",
        "V2",
        "V3",
        "V4",
        "V5",
        "V6",
        "MLI",
        "MLII",
        "MLIII",
        "MCL1",
        "MCL6",
        "V",
    )
}

#: Signal kinds and the physical units each may be declared in.
SIGNAL_UNITS: Final = {
    "ecg": ("mV",),
    "abp": ("mmHg",),  # arterial pressure (invasive)
    "cvp": ("mmHg",),
    "pap": ("mmHg",),
    "pleth": ("NU",),  # photoplethysmogram, normalised units
    "resp": ("NU", "Ohm"),  # impedance pneumography, normalised or in ohms
}

#: Largest physiologically possible magnitude, in the kind's unit, of any sample. Body-surface ECG
#: amplitudes stay within a few mV (QRS rarely above 5 mV; AHA recommendations for ECG standardization,
#: Kligfield et al. 2007, require a +-5 mV input range at least); 50 mV leaves room for pacing artefacts
#: while catching a chunk sent in microvolts but declared in millivolts. Arterial and venous pressures
#: stay within -50..400 mmHg. Normalised units carry no such bound.
PLAUSIBLE_RANGE: Final = {
    "ecg": (-50.0, 50.0),
    "abp": (-50.0, 400.0),
    "cvp": (-50.0, 400.0),
    "pap": (-50.0, 400.0),
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel of a chunk: name, signal kind, unit and the digital-to-physical scale."""

    name: str
    kind: str
    unit: str
    gain: float
    baseline: int


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond more per chunk decoded
class WaveformChunk:
    """One decoded chunk.

    Attributes:
        patient_id: Patient the chunk belongs to (also the Kafka key).
        source_id: Device or replay source; with ``seq`` it identifies the chunk.
        seq: Sequence number, +1 per chunk of one source.
        start_time_us: Time of sample 0, microseconds since the Unix epoch, UTC.
        sampling_rate: Hz.
        channels: Channel metadata, one per row of ``samples``.
        samples: Digital samples, shape ``(channels, time)``, int16 or int32.
    """

    patient_id: str
    source_id: str
    seq: int
    start_time_us: int
    sampling_rate: float
    channels: tuple[Channel, ...]
    samples: np.ndarray

    @property
    def sample_format(self) -> int:
        """1 for int16 samples, 2 for int32."""
        return 1 if self.samples.dtype.itemsize == 2 else 2

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return self.samples.shape[1] / self.sampling_rate

    @property
    def end_time_us(self) -> int:
        """Time just after the last sample, microseconds since the epoch."""
        return self.start_time_us + round(self.samples.shape[1] * 1e6 / self.sampling_rate)

    def missing_mask(self) -> np.ndarray:
        """Boolean ``(channels, time)`` mask, True where a sample is missing."""
        return self.samples == MISSING[self.sample_format]

    def physical(self) -> np.ndarray:
        """Samples in physical units, float32 ``(channels, time)``; missing samples are NaN.

        Example:
            >>> chunk = WaveformChunk("p1", "m1", 0, 0, 250.0,
            ...     (Channel("II", "ecg", "mV", 200.0, 0),), np.array([[200, -32768]], np.int16))
            >>> chunk.physical().tolist()
            [[1.0, nan]]
        """
        gain = np.array([c.gain for c in self.channels], np.float64)[:, None]
        base = np.array([c.baseline for c in self.channels], np.float64)[:, None]
        out = ((self.samples - base) / gain).astype(np.float32)
        out[self.missing_mask()] = np.nan
        return out


def encode_waveform(chunk: WaveformChunk) -> bytes:
    """Encode a chunk as a v1 frame (the inverse of :func:`decode_waveform`)."""
    fmt = chunk.sample_format
    samples = np.ascontiguousarray(chunk.samples, dtype=SAMPLE_FORMATS[fmt])
    n_channels, n_samples = samples.shape
    parts = [
        _FIXED.pack(
            MAGIC, VERSION, fmt, n_channels, n_samples, chunk.seq, chunk.start_time_us, float(chunk.sampling_rate)
        ),
        _str(chunk.patient_id, 2),
        _str(chunk.source_id, 2),
    ]
    for c in chunk.channels:
        parts += [_str(c.name, 1), _str(c.kind, 1), _str(c.unit, 1), _CHANNEL_TAIL.pack(c.gain, c.baseline)]
    parts.append(samples.tobytes())
    return b"".join(parts)


def _str(text: str, width: int) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(width, "little") + raw


@dataclass(frozen=True, slots=True)
class _Bounds:
    """The digital range within which every channel of a layout is plausible, and its byte-level screen.

    ``low..high`` lets the decoder check all amplitudes with one ``min`` and one ``max``. For int16 frames
    ``safe_high_bytes`` goes one step cheaper: a sample whose high byte is one of these lies inside
    ``low..high`` whatever its low byte, so a chunk whose high bytes (every second byte of the sample
    block) all are in the set is plausible, as two C loops over bytes show (a strided slice and
    ``bytes.translate``; about 1 us for 2 x 360 samples, where the two NumPy reductions take 2.5 us). A
    chunk that fails the screen is checked with ``min``/``max``, and one that fails those channel by
    channel, so the screen only ever skips work, never a rejection. None for int32 frames, or when no high
    byte is safe.
    """

    low: int
    high: int
    safe_high_bytes: bytes | None


#: What the decoder caches per source and channel layout: patient id, its key bytes, source id, channels,
#: sample dtype, and the amplitude screen (see :class:`_Bounds`), None when no channel has a plausible range.
_Entry = tuple[str, bytes, str, tuple[Channel, ...], np.dtype, _Bounds | None]


class WaveformDecoder:
    """Decodes and validates frames; caches the parsed channel block of each source.

    The variable-length block (patient, source, channel metadata) repeats unchanged in every chunk of a
    source, so it is parsed and validated once and then looked up by its bytes.

    Args:
        max_future_s: A chunk whose start lies further than this ahead of the wall clock is rejected;
            None accepts any time (for tools that only display events).
        cache_size: Distinct channel blocks remembered before the cache is cleared.
    """

    def __init__(self, max_future_s: float | None = 300.0, cache_size: int = 65536) -> None:
        self.max_future_us = None if max_future_s is None else int(max_future_s * 1e6)
        self.cache_size = cache_size
        self._blocks: dict[tuple[bytes, bytes], _Entry] = {}

    def decode(self, data: bytes, key: bytes | None = None, now_us: int | None = None) -> WaveformChunk:
        """Decode one frame, raising :class:`InvalidEvent` with the reason when it breaks the contract.

        Args:
            data: The Kafka message value.
            key: The Kafka message key; when given it must equal the patient id.
            now_us: Wall clock for the future-timestamp check (default: now).
        """
        # The hot path runs once per chunk: the header fields that describe the layout (version, format,
        # channel and sample counts, rate) are validated once with the channel block and found again by
        # their bytes; magic, key, start time and amplitudes are checked for every chunk. The samples stay
        # in the message's buffer (one read-only view, no copy); the amplitude check usually reads only
        # their high bytes (see _Bounds).
        if type(data) is not bytes:
            data = _as_bytes(data)
        try:
            magic, version, fmt, n_channels, n_samples, seq, start_us, rate = _FIXED.unpack_from(data)
        except struct.error:
            raise _header_error(data) from None
        block_end = len(data) - n_channels * n_samples * _ITEMSIZE.get(fmt, 0)
        entry = self._blocks.get((data[4:12], data[28:block_end])) if block_end >= _MIN_BLOCK_END else None
        if entry is None or magic != MAGIC:
            entry = self._parse(data, magic, version, fmt, n_channels, n_samples, rate, block_end)
        patient_id, key_bytes, source_id, channels, dtype, bounds = entry
        if key is not None and key != key_bytes:
            raise InvalidEvent(
                "key_mismatch",
                f"message key {bytes(key)!r} differs from patient id {patient_id!r}; key every event by its patient id",
            )
        if self.max_future_us is not None:
            now = time.time_ns() // 1000 if now_us is None else now_us
            if start_us > now + self.max_future_us:
                raise InvalidEvent(
                    "future_timestamp",
                    f"chunk starts {(start_us - now) / 1e6:.0f} s in the future "
                    f"(limit {self.max_future_us / 1e6:.0f} s); check the device clock",
                )
        if start_us < 0:
            raise InvalidEvent("implausible_value", f"start time {start_us} us is before 1970")
        samples = np.ndarray((n_channels, n_samples), dtype, data, block_end)
        if bounds is not None:
            screen = bounds.safe_high_bytes
            # Deleting the safe high bytes leaves those of the samples the screen cannot vouch for.
            if screen is None or data[block_end + 1 :: 2].translate(None, screen):
                _check_amplitudes(samples, channels, bounds)
        return WaveformChunk(patient_id, source_id, seq, start_us, rate, channels, samples)

    def _parse(
        self,
        data: bytes,
        magic: bytes,
        version: int,
        fmt: int,
        n_channels: int,
        n_samples: int,
        rate: float,
        block_end: int,
    ) -> _Entry:
        """Validate the header and parse the channel block of a source not seen before; cache the result."""
        if magic != MAGIC:
            raise InvalidEvent("bad_magic", f"not a cardiowatch waveform frame: magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise InvalidEvent(
                "unknown_version", f"waveform frame version {version} is unknown; this reader accepts {VERSION}"
            )
        dtype = SAMPLE_FORMATS.get(fmt)
        if dtype is None:
            raise InvalidEvent("bad_sample_format", f"sample format {fmt} is unknown; use 1 (int16) or 2 (int32)")
        if not 1 <= n_channels <= MAX_CHANNELS:
            raise InvalidEvent("bad_channel_count", f"channel count {n_channels} outside 1..{MAX_CHANNELS}")
        if not 1 <= n_samples <= MAX_SAMPLES:
            raise InvalidEvent("bad_sample_count", f"samples per channel {n_samples} outside 1..{MAX_SAMPLES}")
        if not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:  # also false for NaN
            raise InvalidEvent(
                "implausible_value", f"sampling rate {rate} Hz outside {MIN_SAMPLING_RATE:g}..{MAX_SAMPLING_RATE:g} Hz"
            )
        sample_bytes = n_channels * n_samples * dtype.itemsize
        if block_end < _MIN_BLOCK_END:
            raise InvalidEvent(
                "length_mismatch",
                f"frame of {len(data)} bytes cannot hold the {sample_bytes} sample "
                f"bytes that {n_channels} channels x {n_samples} samples of {dtype.itemsize} bytes declare",
            )
        try:
            patient_id, source_id, channels, fast = _parse_block(bytes(data[_BLOCK_START:block_end]), n_channels)
        except InvalidEvent as err:
            if err.code not in ("truncated", "length_mismatch"):
                raise
            raise InvalidEvent(
                "length_mismatch",
                f"frame of {len(data)} bytes does not match its header: {n_channels} channels x {n_samples} "
                f"samples x {dtype.itemsize} bytes leave a metadata block that {err.reason}",
            ) from err
        bounds = None if fast is None else _Bounds(*fast, _safe_high_bytes(*fast) if fmt == 1 else None)
        entry = (patient_id, patient_id.encode(), source_id, channels, dtype, bounds)
        if len(self._blocks) >= self.cache_size:
            self._blocks.clear()
        self._blocks[(data[4:12], data[28:block_end])] = entry
        return entry


def _as_bytes(data: object) -> bytes:
    """A copy of a frame handed over as another byte buffer (the cache and the screen need ``bytes``)."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise _header_error(data)


def _header_error(data: object) -> InvalidEvent:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return InvalidEvent("not_bytes", f"waveform value is {type(data).__name__}, not bytes")
    return InvalidEvent("truncated", f"frame of {len(data)} bytes is shorter than the {_FIXED.size}-byte header")


def _parse_block(block: bytes, n_channels: int) -> tuple[str, str, tuple[Channel, ...], tuple[int, int] | None]:
    """Patient, source, channels, and the digital range within which every channel is plausible.

    The range lets the decoder check all amplitudes with one ``min`` and one ``max``; only a chunk that
    leaves it (a missing-sample marker, a pressure channel, or a really implausible value) is checked
    channel by channel. It is None when no channel has a plausible range.
    """
    reader = _Reader(block)
    patient_id = reader.text(2, "patient id")
    source_id = reader.text(2, "source id")
    _check_id(patient_id, "patient id")
    _check_id(source_id, "source id")
    channels = []
    for i in range(n_channels):
        name, kind, unit = (
            reader.text(1, f"channel {i} name"),
            reader.text(1, f"channel {i} kind"),
            reader.text(1, f"channel {i} unit"),
        )
        gain, baseline = reader.unpack(_CHANNEL_TAIL, f"channel {i} scale")
        units = SIGNAL_UNITS.get(kind)
        if units is None:
            raise InvalidEvent(
                "unknown_signal_kind",
                f"channel {i} ({name!r}) has kind {kind!r}; known kinds: {', '.join(SIGNAL_UNITS)}",
            )
        if unit not in units:
            raise InvalidEvent(
                "wrong_unit", f"channel {i} ({name!r}, {kind}) is declared in {unit!r}; use {' or '.join(units)}"
            )
        if kind == "ecg":
            canonical = ECG_LEADS.get(name.upper())
            if canonical is None:
                raise InvalidEvent(
                    "unknown_lead",
                    f"channel {i}: ECG lead name {name!r} is unknown; known leads: {', '.join(ECG_LEADS.values())}",
                )
            name = canonical
        elif not name or not name.isprintable():
            raise InvalidEvent("bad_channel_name", f"channel {i} of kind {kind} has an empty or unprintable name")
        if not (math.isfinite(gain) and gain > 0):
            raise InvalidEvent(
                "implausible_value", f"channel {i} ({name!r}) gain {gain} is not a positive finite number"
            )
        channels.append(Channel(name, kind, unit, gain, baseline))
    if reader.pos != len(block):
        raise InvalidEvent("length_mismatch", f"has {len(block) - reader.pos} unexplained bytes")
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        raise InvalidEvent("duplicate_channel", f"channel names repeat: {names}")
    ranges = [
        (c.baseline + PLAUSIBLE_RANGE[c.kind][0] * c.gain, c.baseline + PLAUSIBLE_RANGE[c.kind][1] * c.gain)
        for c in channels
        if c.kind in PLAUSIBLE_RANGE
    ]
    fast = (math.ceil(max(r[0] for r in ranges)), math.floor(min(r[1] for r in ranges))) if ranges else None
    return patient_id, source_id, tuple(channels), fast


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > 64 or not value.isprintable() or value.strip() != value:
        raise InvalidEvent("bad_id", f"{what} {value!r} must be 1-64 printable characters without surrounding spaces")


def _safe_high_bytes(low: int, high: int) -> bytes | None:
    """The int16 high bytes (as stored, two's complement) whose every value lies within ``low..high``.

    A high byte h covers the values ``256 h .. 256 h + 255``. None when no high byte is safe.

    Example:
        >>> list(_safe_high_bytes(-300, 600))  # -256..-1, 0..255 and 256..511
        [255, 0, 1]
    """
    first, last = max(-(-low // 256), -128), min((high - 255) // 256, 127)
    return bytes(h & 0xFF for h in range(first, last + 1)) or None


def _check_amplitudes(samples: np.ndarray, channels: tuple[Channel, ...], bounds: _Bounds) -> None:
    """Raise ``implausible_value`` when a channel's present samples leave the plausible range of its kind.

    One ``min`` and one ``max`` over all samples settle most chunks; one that leaves ``bounds`` (a
    missing-sample marker, a pressure channel, or a really implausible value) is checked channel by channel.
    """
    if _MIN(samples, None) >= bounds.low and _MAX(samples, None) <= bounds.high:
        return
    missing = MISSING[1 if samples.dtype.itemsize == 2 else 2]
    lows, highs = samples.min(axis=1), samples.max(axis=1)
    for i, c in enumerate(channels):
        plausible = PLAUSIBLE_RANGE.get(c.kind)
        if plausible is None:
            continue
        low, high = int(lows[i]), int(highs[i])
        if low == missing:
            present = samples[i][samples[i] != missing]
            if present.size == 0:
                continue
            low = int(present.min())
        lo_phys, hi_phys = (low - c.baseline) / c.gain, (high - c.baseline) / c.gain
        if lo_phys < plausible[0] or hi_phys > plausible[1]:
            raise InvalidEvent(
                "implausible_value",
                f"channel {c.name!r} ({c.kind}) spans {lo_phys:.4g}..{hi_phys:.4g} {c.unit}, outside the possible "
                f"{plausible[0]:g}..{plausible[1]:g} {c.unit}; check gain and unit",
            )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise InvalidEvent("truncated", f"ends inside the {what}")
        out, self.pos = self.data[self.pos : end], end
        return out

    def text(self, width: int, what: str) -> str:
        length = int.from_bytes(self.take(width, f"{what} length"), "little")
        try:
            return self.take(length, what).decode()
        except UnicodeDecodeError as err:
            raise InvalidEvent("bad_text", f"{what} is not valid UTF-8 ({err.reason})") from err

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))
