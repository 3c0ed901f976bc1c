"""Event-time windows: grid, closing, reorder, duplicates, gaps, silence, release of chunks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from streams.waveform import Channel, WaveformChunk
from streams.windows import US, EcgBuffer, WindowConfig, add_chunk, advance_wall, idle

FS = 250.0
LEADS = (Channel("II", "ecg", "mV", 200.0, 0), Channel("V", "ecg", "mV", 200.0, 0))
T0 = 1_700_000_000 * US  # on the 2-s grid


def chunk(i: int, source: str = "m1", fs: float = FS, start_us: int | None = None) -> WaveformChunk:
    """Chunk ``i`` (1 s) whose samples encode their own absolute sample index, so placement is checkable."""
    n = int(fs)
    idx = np.arange(i * n, (i + 1) * n) % 30000
    return WaveformChunk(
        "p1",
        source,
        i,
        T0 + i * US if start_us is None else start_us,
        fs,
        LEADS,
        np.stack([idx, -idx]).astype(np.int16),
    )


def feed(order: list[int], config: WindowConfig) -> tuple[EcgBuffer, list, list]:
    buf = EcgBuffer("p1")
    windows, outcomes = [], []
    for i in order:
        out = add_chunk(buf, chunk(i), config, arrival_s=float(i), token=i)
        outcomes.append(out)
        windows += out.windows
    return buf, windows, outcomes


def test_windows_start_on_the_hop_grid_and_close_when_stream_time_passes_end_plus_grace() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2)
    _, windows, outcomes = feed(list(range(30)), config)
    assert [(w.start_us - T0) // US for w in windows] == list(range(0, 30 - 10 - 2 + 1, 2))
    # the window [0, 10) closes with the chunk that ends at 12 s (index 11): end + grace
    first_closing = next(i for i, o in enumerate(outcomes) if o.windows)
    assert first_closing == 11
    w = windows[0]
    assert w.samples.shape == (2, 2500) and w.channels == (("II", "ecg"), ("V", "ecg"))
    np.testing.assert_allclose(w.samples[0] * 200, np.arange(2500))
    assert not w.missing.any() and w.closed_by == "stream"


def test_late_chunks_within_grace_are_put_back_in_order() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2)
    order = list(range(30))
    order[5], order[6] = order[6], order[5]  # chunk 5 arrives after chunk 6
    order[20], order[21] = order[21], order[20]
    _, windows, outcomes = feed(order, config)
    _, reference, _ = feed(list(range(30)), config)
    assert [o.status for o in outcomes].count("late") == 2
    assert len(windows) == len(reference)
    for got, want in zip(windows, reference, strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)


def test_a_random_shuffle_within_grace_gives_the_in_order_windows() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=3)
    order = list(range(40))
    rng = random.Random(7)
    for k in range(0, 40, 3):  # shuffle inside blocks of 3 chunks: at most 2 s out of order
        block = order[k : k + 3]
        rng.shuffle(block)
        order[k : k + 3] = block
    _, windows, _ = feed(order, config)
    _, reference, _ = feed(list(range(40)), config)
    assert [w.start_us for w in windows] == [w.start_us for w in reference]
    for got, want in zip(windows, reference, strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)


def test_duplicates_are_dropped_and_their_token_released() -> None:
    config = WindowConfig(window_s=4, hop_s=2, grace_s=0)
    buf = EcgBuffer("p1")
    add_chunk(buf, chunk(0), config, 0.0, token="a")
    out = add_chunk(buf, chunk(0), config, 0.5, token="b")
    assert out.status == "duplicate" and out.released == ["b"] and len(buf.chunks) == 1


def test_a_chunk_whose_windows_have_all_closed_is_too_late_not_silently_merged() -> None:
    config = WindowConfig(window_s=4, hop_s=2, grace_s=0)
    buf, _, _ = feed([0, 1, 2, 3, 4, 5, 6, 7], config)
    out = add_chunk(buf, chunk(1, source="m2"), config, 9.0, token="late")
    assert out.status == "too_late" and out.released == ["late"]


def test_gaps_are_marked_missing_never_invented() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2)
    order = [i for i in range(30) if i not in (3, 4)]
    _, windows, outcomes = feed(order, config)
    assert any(o.gap_s == pytest.approx(2.0) for o in outcomes)
    w = windows[0]
    assert w.missing[:, 750:1250].all() and not w.missing[:, :750].any() and not w.missing[:, 1250:].any()
    assert w.present_fraction() == pytest.approx(0.8)


def test_a_long_outage_does_not_emit_empty_windows() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2)
    _, windows, _ = feed(list(range(14)) + list(range(200, 230)), config)
    assert all(not w.missing.all() for w in windows)
    starts = [(w.start_us - T0) // US for w in windows]
    assert max(s for s in starts if s < 100) <= 12 and min(s for s in starts if s > 100) >= 200 - 10 + 2


def test_chunks_are_released_only_when_no_open_window_needs_them() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2)
    buf, _, outcomes = feed(list(range(30)), config)
    released = [t for o in outcomes for t in o.released]
    assert released == sorted(released)
    assert buf.next_start_us is not None
    # every chunk still buffered ends after the next window start; every released one ended before it
    assert all(b.end_us > buf.next_start_us for b in buf.chunks)
    assert all(T0 + (t + 1) * US <= buf.next_start_us for t in released)


def test_a_silent_patient_is_closed_by_wall_time_with_one_signal_lost() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2, signal_lost_s=5)
    buf, windows, _ = feed(list(range(20)), config)
    last_arrival = 19.0
    assert advance_wall(buf, config, last_arrival + 4.9) == ([], [], None)
    closed, released, lost = advance_wall(buf, config, last_arrival + 5.0)
    assert lost is not None and lost.patient_id == "p1" and lost.last_event_us == T0 + 20 * US
    later, released2, again = advance_wall(buf, config, last_arrival + 30.0)
    assert again is None
    tail = closed + later
    assert tail and all(w.closed_by == "wall" for w in tail)
    # together with the stream-closed ones, every grid window holding data has been emitted exactly once
    starts = [(w.start_us - T0) // US for w in windows + tail]
    assert starts == list(range(0, 20, 2))
    assert not buf.chunks and sorted(released + released2) == sorted(set(released + released2))
    # data resuming ends the silence
    out = add_chunk(buf, chunk(40), config, 60.0)
    assert out.restored and not buf.lost


def test_a_rate_change_inside_a_window_lands_on_the_window_grid() -> None:
    config = WindowConfig(window_s=4, hop_s=2, grace_s=0)
    buf = EcgBuffer("p1")
    windows = []
    for i in range(6):
        fs = 500.0 if i == 1 else FS
        windows += add_chunk(buf, chunk(i, fs=fs), config, float(i)).windows
    w = windows[0]
    assert w.sampling_rate == FS and w.samples.shape == (2, 1000) and not w.missing[:, :-2].any()


def test_a_stream_starting_off_the_grid_loses_no_sample() -> None:
    config = WindowConfig(window_s=4, hop_s=2, grace_s=0)
    buf, windows = EcgBuffer("p1"), []
    for i in range(1, 10):  # the monitor starts 1 s after a grid point
        windows += add_chunk(buf, chunk(i), config, float(i)).windows
    first = windows[0]
    assert first.start_us == T0  # the window holding the first sample, its first second missing
    assert first.missing[:, : int(FS)].all() and not first.missing[:, int(FS) :].any()
    assert first.samples[0, int(FS)] == chunk(1).physical()[0, 0]  # chunk 1 starts where its second starts


def test_a_gap_after_a_silence_is_measured() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2, signal_lost_s=5)
    buf, _, _ = feed(list(range(20)), config)
    advance_wall(buf, config, 19.0 + 30.0)  # silent: every window closed, the buffer empty
    out = add_chunk(buf, chunk(100), config, 120.0)
    assert out.restored and out.gap_s == 80.0


def test_a_chunk_at_a_lower_rate_fills_its_whole_span() -> None:
    config = WindowConfig(window_s=4, hop_s=2, grace_s=0)
    buf, windows = EcgBuffer("p1"), []
    for i in range(6):  # a 500-Hz monitor sends one chunk at 250 Hz: upsampled, not cut short
        windows += add_chunk(buf, chunk(i, fs=FS if i == 1 else 500.0), config, float(i)).windows
    assert windows[0].sampling_rate == 500.0 and not windows[0].missing.any()


def test_a_resent_short_chunk_is_a_duplicate_while_it_is_buffered() -> None:
    config, buf = WindowConfig(), EcgBuffer("p1")
    short = [
        WaveformChunk("p1", "m1", i, T0 + i * 8000, FS, LEADS, np.zeros((2, 2), np.int16)) for i in range(1500)
    ]  # 8-ms chunks: 1,500 of them within one window plus grace
    for c in short:
        add_chunk(buf, c, config, 0.0)
    assert add_chunk(buf, short[300], config, 12.1).status == "duplicate"
    assert sum(b.chunk.seq == 300 for b in buf.chunks) == 1
    assert add_chunk(buf, short[0], config, 12.1).status in ("duplicate", "too_late")


def test_a_patient_silent_with_every_window_closed_is_idle() -> None:
    config = WindowConfig(window_s=10, hop_s=2, grace_s=2, signal_lost_s=5)
    buf, _, _ = feed(list(range(20)), config)
    assert not idle(buf, 19.0 + 7200.0, 3600.0)  # silent, but its windows are not closed yet
    advance_wall(buf, config, 19.0 + 30.0)
    assert not idle(buf, 19.0 + 30.0, 3600.0) and idle(buf, 19.0 + 3601.0, 3600.0)


@pytest.mark.parametrize(("window_s", "hop_s"), [(10, 3), (2, 4), (10, 0)])
def test_a_geometry_that_cannot_work_is_refused(window_s: float, hop_s: float) -> None:
    with pytest.raises(ValueError, match="hop"):
        WindowConfig(window_s=window_s, hop_s=hop_s)
