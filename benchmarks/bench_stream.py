"""Streaming benchmark: how many patients one worker scores in real time, against a raw consumer and a naive peer.

One run, one machine, one fresh embedded broker per level. For a growing number of patients N, a load
generator (its own process) replays real ECG at real time — every patient sends a 1-s chunk of 2-lead,
250 Hz ECG when the chunk's last sample has been measured, plus one ``vitals`` event a second — and three
systems take the same load in turn:

(a) ``raw``: a plain kafka-python consumer of the input topics that decodes nothing. Its latency, message
    timestamp (the generator sets it to the chunk's end time) to receipt, is the transport floor.
(b) ``naive``: a plain kafka-python consumer that handles one event at a time with the project's own pure
    functions (:class:`streams.ingest.Ingest`, :func:`streams.windows.add_chunk`, :func:`streams.align.align`)
    and scores every window the moment it closes, alone, while the consuming thread waits, with the same
    scorer as the worker (:func:`streams.app.build_scorer`: the learned model by default,
    ``CARDIOWATCH_SCORER=rules`` for the rules), the model called with batches of one and no queueing delay
    and torch on one thread, as in the worker's scoring process; its scores go to the bench-only topic
    :data:`NAIVE_SCORES`. It uses about one core; the worker uses two processes (its event loop and its
    scoring process), so the ratio of (c) to (b) counts that second core with the batching and pipelining.
(c) ``worker``: a fresh ``cardiowatch worker`` subprocess (fresh app id and consumer group) writing
    ``risk.scores``: batched scoring in a scoring process, off the event loop.

A collector in this process reads the scores topic from the level's start and times every window.

**Latency.** Two clocks are printed for each window (both from the window's event time to the moment the
collector receives its score, on the same host clock):

* ``end->score``: from the window end (event time just after its last sample). Under the windowing rules
  (DESIGN.md, "Time and windows") a window can only close once a chunk ending at or after ``end + grace``
  arrives, and with 1-s chunks at per-patient phases that chunk ends up to 1 s later still: every system,
  however fast, shows ``grace`` to ``grace + 1 s`` here (2-3 s with the defaults).
* ``close->score``: from the event time of the last sample the window waited for, i.e. the end of the chunk
  that closed it (which the monitor sends at that moment). This is the latency the system adds: transport,
  queueing, windowing, batching and scoring. It is the one judged against the goal, ``p99 <= hop + 500 ms``.

**A level is sustained** when, over the measured stretch: the generator kept pace (p99 send lag <= 100 ms;
otherwise the level is invalid and the run stops growing N), no window went missing (every expected window
scored by ``grace + 11 s`` after the stretch), ``close->score`` p99 <= hop + 500 ms, and the lag does not
grow (p99 of the last third of windows minus p99 of the first third <= 500 ms). A failed level is run once
more (``--retries``; both rows are printed), because other work on a shared machine can spoil one stretch;
N grows until a level fails every attempt. The summary prints each system's largest sustained N and the ratio
worker / naive (goal >= 5; both judged against the same p99 budget), and the worker's memory per patient:
(memory at the end of the stretch - memory once started) / N, and the slope over the sustained levels, which
leaves out one-off costs (torch's first call). Memory is the resident anonymous memory (``RssAnon``) summed
over the system's process tree (the worker scores in a child process, ``CARDIOWATCH_SCORING_PROCESSES``):
VmRSS would count the mapped libraries (torch: hundreds of MB) once per process, and PSS moves whenever any
other process on the machine maps the same libraries; per-patient state is anonymous memory either way. CPU,
too, is summed over the tree.

The load: real ECG from ``<data>/mitdb`` (2 leads, 360 Hz), resampled once to 250 Hz
(``resample_poly(25, 36)``) in digital units (gain 200 adu/mV, baseline 0); patients are spread round-robin
over the records at different offsets, and patient i's chunks start at phase i/N of a second. **The vitals
are synthetic load**: heart rate, SpO2 and respiration rate (LOINC 8867-4, 59408-5, 9279-1) drawn from
plausible per-patient values, one event per patient per second; no figure here depends on their meaning.
The generator is one process with one kafka-python producer (``streams.kafka.producer``) and a 20-ms linger:
a monitor fleet would send one request per monitor, but on one machine the generator and the broker compete
with the system under test, and kafka-python costs per request. Measured with the raw consumer at 1,000
patients, 5 / 20 / 50 ms of linger took 57 / 36 / 30 % of a core in the generator and 67 / 29 / 13 % in
the broker, with a raw p50 of 70 / 48 / 69 ms: 20 ms is the cheapest setting that does not add latency.

Usage::

    make bench-stream   # = .venv/bin/python benchmarks/bench_stream.py
    .venv/bin/python benchmarks/bench_stream.py --quick          # smoke run, a minute or two
    .venv/bin/python benchmarks/bench_stream.py --systems worker --levels 500,1000,1500 --level-s 45
    .venv/bin/python benchmarks/bench_stream.py --env OMP_NUM_THREADS=1   # every process single-threaded torch

Caveats: everything shares the machine. The generator, the broker (Tansu, in memory) and this process (the
collector) take CPU that the system under test then lacks — each row prints their shares — so the figures are
a lower bound of what a worker does on a machine of its own. Run it on an otherwise idle machine: the
1-minute load average before each level is printed beside it (it includes the tail of the previous level).
Torch starts one intra-op thread per core in the naive peer and the worker's event loop (the worker's scoring
process uses one); on 2 cores they contend and hold memory that the per-patient figure then counts
(``--env OMP_NUM_THREADS=1`` shows the difference). A level lasts about a minute: the vitals history kept per
patient grows for its first 16 minutes (``streams.align.AlignConfig``: one point a minute per signal over the
trend horizon, a few KiB), which the memory figure does not reach.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from scipy.signal import resample_poly

from streams import topics
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import consumer, ensure_topics, producer
from streams.settings import Settings
from streams.sources import read_recording
from streams.waveform import Channel, WaveformChunk, encode_waveform

US = 1_000_000
#: Rate the generator sends at, Hz (a common bedside-monitor ECG rate).
RATE_HZ = 250
#: Bench-only topic of the naive peer's scores: not part of cardiowatch, hence not in streams/topics.py.
NAIVE_SCORES = "bench.naive.scores"
#: A level whose generator sent its p99 chunk later than this after the chunk's end is invalid.
MAX_SEND_LAG_S = 0.1
#: Budget over one hop for the p99 close->score latency (the issue's "hop + 500 ms").
BUDGET_OVER_HOP_S = 0.5
#: Largest rise of the p99 from the first to the last third of the measured stretch ("no growing lag").
MAX_GROWTH_S = 0.5
#: How long after the stretch's last window could close its missing scores are still waited for.
DRAIN_S = 11.0
#: Stretch of each record patients start in (offsets are spread over it), seconds.
OFFSET_SPAN_S = 600
#: Offset step between patients of the same record, seconds (prime, so offsets rarely coincide).
OFFSET_STEP_S = 37

SPAWN = mp.get_context("spawn")  # children start clean: no inherited Kafka threads or sockets


# --------------------------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class EcgSet:
    """The resampled records, saved once for the generator processes to load.

    Attributes:
        path: ``.npy`` file of int16 ``(records, 2, samples)`` at :data:`RATE_HZ`, baseline 0.
        leads: Per record, ``(lead name, gain in adu/mV)`` of its two rows.
    """

    path: str
    leads: tuple[tuple[tuple[str, float], ...], ...]

    @property
    def records(self) -> int:
        return len(self.leads)


def prepare_ecg(data: Path, seconds: int, out: Path) -> EcgSet:
    """Read every MIT-BIH record's first ``seconds`` and resample it once from 360 to 250 Hz (digital units)."""
    names = (data / "mitdb" / "RECORDS").read_text().split()
    arrays, leads = [], []
    for name in names:
        rec = read_recording(data / "mitdb" / name, max_duration_s=seconds + 2)
        if rec.sampling_rate != 360 or not rec.segments:
            raise SystemExit(f"{name}: expected a 360 Hz MIT-BIH record, got {rec.sampling_rate} Hz")
        seg = rec.segments[0]
        rows = [r for r, c in enumerate(seg.channels) if c.kind == "ecg"][:2]
        if len(rows) < 2 or (seg.samples[rows] == -32768).any():
            continue  # needs two whole ECG leads
        base = np.array([seg.channels[r].baseline for r in rows], np.float64)[:, None]
        x = resample_poly(seg.samples[rows].astype(np.float64) - base, 25, 36, axis=1)
        arrays.append(np.clip(np.rint(x[:, : seconds * RATE_HZ]), -32767, 32767).astype(np.int16))
        leads.append(tuple((seg.channels[r].name, seg.channels[r].gain) for r in rows))
    if not arrays:
        raise SystemExit(f"no usable 2-lead record in {data / 'mitdb'}")
    np.save(out, np.stack(arrays))
    return EcgSet(str(out), tuple(leads))


def patient_id(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def patient_index(pid: str) -> int:
    return int(pid.rsplit("-", 1)[1])


def phase_us(i: int, n: int) -> int:
    """Patient i's chunks start at this offset into each second (phases spread evenly over the second)."""
    return i * US // n


@dataclass(frozen=True)
class Load:
    """What one generator sends: N patients, ``chunks`` seconds each, from ``t0_us`` (sent over its pipe)."""

    bootstrap: str
    prefix: str
    patients: int
    chunks: int
    ecg: EcgSet
    linger_ms: int


def vitals_event(pid: str, i: int, seq: int, when_us: int) -> bytes:
    """One synthetic vitals event (heart rate, SpO2, respiration rate), valid per streams/records.py."""
    hr = 58 + (i * 7) % 45 + (seq // 15) % 3
    spo2 = 93 + (i * 3) % 7
    rr = 11 + (i * 5) % 12
    when = datetime.fromtimestamp(when_us / US, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f'{{"schema":"cardiowatch.vitals","version":1,"patient_id":"{pid}","source_id":"bench:{pid}:numerics",'
        f'"seq":{seq},"time":"{when}","observations":[{{"code":"8867-4","value":{hr},"unit":"/min"}},'
        f'{{"code":"59408-5","value":{spo2},"unit":"%"}},{{"code":"9279-1","value":{rr},"unit":"/min"}}]}}'
    ).encode()


def generate(load: Load, conn: Connection) -> None:
    """Generator process: say "ready", receive t0 (us), send every chunk and vitals event at its end time."""
    ecg = np.load(load.ecg.path)
    prod = producer(Settings(bootstrap_servers=load.bootstrap), linger_ms=load.linger_ms)
    for name in (topics.ECG_WAVEFORM, topics.VITALS):
        prod.partitions_for(name)  # connect and fetch metadata before the clock starts
    failed = [0]

    def on_error(_err: Exception) -> None:
        failed[0] += 1

    plan = []
    for i in range(load.patients):
        record = i % load.ecg.records
        offset = (i // load.ecg.records) * OFFSET_STEP_S % OFFSET_SPAN_S * RATE_HZ
        channels = tuple(Channel(name, "ecg", "mV", gain, 0) for name, gain in load.ecg.leads[record])
        pid = patient_id(load.prefix, i)
        plan.append((pid, pid.encode(), f"bench:{pid}", channels, ecg[record], offset, phase_us(i, load.patients)))
    conn.send("ready")
    t0_us: int = conn.recv()
    lags = np.zeros((load.chunks, load.patients), np.float32)
    for k in range(load.chunks):
        for i, (pid, key, source, channels, samples, offset, phase) in enumerate(plan):
            due_us = t0_us + phase + (k + 1) * US
            delay = due_us / US - time.time()
            if delay > 0:
                time.sleep(delay)
            lags[k, i] = time.time() - due_us / US
            s0 = offset + k * RATE_HZ
            chunk = WaveformChunk(pid, source, k, due_us - US, float(RATE_HZ), channels, samples[:, s0 : s0 + RATE_HZ])
            ts = due_us // 1000
            prod.send(topics.ECG_WAVEFORM, key=key, value=encode_waveform(chunk), timestamp_ms=ts).add_errback(on_error)
            prod.send(topics.VITALS, key=key, value=vitals_event(pid, i, k, due_us), timestamp_ms=ts).add_errback(
                on_error
            )
    prod.flush()
    prod.close()
    conn.send({"lags": lags, "failed": failed[0]})


# ------------------------------------------------------------------------------------ systems under test


def raw_consume(bootstrap: str, group: str, conn: Connection, stop: Any) -> None:
    """System (a): read the input topics, decode nothing; keep (message timestamp, receipt) per message."""
    settings = Settings(bootstrap_servers=bootstrap)
    cons = consumer(settings, topics.ECG_WAVEFORM, topics.VITALS, group_id=group, auto_offset_reset="earliest")
    stamps, received = array("q"), array("d")
    while not cons.assignment():
        cons.poll(timeout_ms=100)
    conn.send("ready")
    while not stop.is_set():
        batches = cons.poll(timeout_ms=100)
        now_ms = time.time() * 1000
        for records in batches.values():
            for r in records:
                stamps.append(r.timestamp)
                received.append(now_ms)
    cons.close()
    conn.send({"stamps": np.frombuffer(stamps, np.int64), "received": np.frombuffer(received, np.float64)})


def naive_consume(bootstrap: str, group: str, conn: Connection, stop: Any) -> None:
    """System (b): per event, decode, fold into windows and vitals, score each closed window alone, produce."""
    import torch

    from streams.align import AlignConfig, add_vitals, align
    from streams.app import build_scorer, process, risk_record
    from streams.ingest import Ingest
    from streams.records import VitalsEvent
    from streams.scoring import BeatReferences
    from streams.windows import EcgBuffer, WindowConfig, add_chunk

    torch.set_num_threads(1)
    settings = Settings(bootstrap_servers=bootstrap)
    ingest = Ingest(max_future_s=settings.max_future_s)
    windows = WindowConfig(settings.window_s, settings.hop_s, settings.grace_s, settings.signal_lost_s)
    aligning = AlignConfig()
    scorer = build_scorer(settings.model_copy(update={"model_batch": 1, "model_delay_s": 0.0}))
    scorer.score_batch([])  # load the model before the load starts, as the worker does
    buffers: dict[str, EcgBuffer] = {}
    references = BeatReferences()  # the worker's per-patient reference beats, kept the same way
    vitals: dict[str, dict[str, list[list[Any]]]] = {}
    cons = consumer(
        settings,
        topics.ECG_WAVEFORM,
        topics.VITALS,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    prod = producer(settings)
    prod.partitions_for(NAIVE_SCORES)
    bad = scored = 0
    while not cons.assignment():
        cons.poll(timeout_ms=100)
    conn.send("ready")
    while not stop.is_set():
        for records in cons.poll(timeout_ms=100).values():
            for r in records:
                ok, event = process(ingest, r.topic, r.key, r.value)
                if not ok:
                    bad += 1
                elif isinstance(event, WaveformChunk):
                    buf = buffers.get(event.patient_id)
                    if buf is None:
                        buf = buffers[event.patient_id] = EcgBuffer(event.patient_id)
                    for w in add_chunk(buf, event, windows, time.time()).windows:
                        sample = align(w, w.patient_id, w.start_us, w.end_us, vitals.get(w.patient_id), None, aligning)
                        references.attach(sample)
                        result = scorer.score_batch([sample])[0]
                        references.learned(sample, result.beat_reference)
                        payload = risk_record(sample, result, scorer).model_dump_json(by_alias=True).encode()
                        prod.send(NAIVE_SCORES, key=w.patient_id.encode(), value=payload)
                        scored += 1
                elif isinstance(event, VitalsEvent):
                    vitals[event.patient_id] = add_vitals(vitals.get(event.patient_id, {}), event, aligning)
    prod.flush()
    prod.close()
    cons.close()
    conn.send({"bad": bad, "scored": scored})


@dataclass
class Worker:
    """A ``cardiowatch worker`` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            return bytes(resp.read())

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, keyed by name and sorted labels ({} when it does not answer)."""
        try:
            text = self.get("/metrics").decode()
        except OSError:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_worker(bootstrap: str, app_id: str, state: Path) -> Worker:
    """Start a worker with its own app id and wait until it is healthy and has its partitions."""
    port = free_port()
    log = state / "worker.log"
    env = {
        **os.environ,
        "CARDIOWATCH_BOOTSTRAP_SERVERS": bootstrap,
        "CARDIOWATCH_WEB_PORT": str(port),
        "CARDIOWATCH_APP_ID": app_id,
        "CARDIOWATCH_DATA_DIR": str(state),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=out, stderr=out)
    worker = Worker(proc, port, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if json.loads(worker.get("/health")).get("assigned"):
                return worker
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    worker.stop()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise SystemExit(f"worker did not become healthy (exit status {proc.poll()}); last lines of its log:\n{tail}")


# ----------------------------------------------------------------------------------------- measurement


class Collector(threading.Thread):
    """Reads a scores topic from its beginning; keeps the receipt time of each (patient, window end)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(name=f"collect-{topic}", daemon=True)
        self.cons = consumer(settings, topic, group_id=None, auto_offset_reset="earliest")
        self.first: dict[tuple[int, int], float] = {}
        self.duplicates = 0
        self.wall_closed = 0
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            batches = self.cons.poll(timeout_ms=100)
            now = time.time()
            if self.cons.assignment():
                self.ready.set()
            for records in batches.values():
                for r in records:
                    doc = json.loads(r.value)
                    key = (
                        patient_index(doc["patient_id"]),
                        round(datetime.fromisoformat(doc["window_end"]).timestamp() * US),
                    )
                    if key in self.first:
                        self.duplicates += 1
                        continue
                    self.first[key] = now
                    if any(d["kind"] == "signal_lost" for d in doc["detections"]):
                        self.wall_closed += 1
        self.cons.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (the worker scores in child processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += parents.get(p, [])
    return tree


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of every process in a tree."""
    return {p: cpu_seconds(p) for p in process_tree(pid)}


def anon_mb(pid: int) -> float:
    """Resident anonymous memory (``RssAnon``: heap, stacks, arrays; no mapped files) of a process tree, MiB."""
    total = 0.0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1]) / 1024
                    break
        except OSError:
            continue
    return total


def settled_anon_mb(pid: int, timeout_s: float = 60.0) -> float:
    """The tree's memory once it stops growing (the worker's scoring process imports torch after start-up)."""
    deadline, last, steady = time.monotonic() + timeout_s, anon_mb(pid), 0
    while time.monotonic() < deadline and steady < 3:
        time.sleep(1.0)
        now = anon_mb(pid)
        steady = steady + 1 if abs(now - last) < 2.0 and len(process_tree(pid)) > 1 else 0
        last = now
    return last


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Percentiles:
    """Latency percentiles, seconds."""

    p50: float = math.nan
    p95: float = math.nan
    p99: float = math.nan
    max: float = math.nan

    @classmethod
    def of(cls, values: np.ndarray) -> Percentiles:
        if not len(values):
            return cls()
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(values.max()))


@dataclass
class Level:
    """What one level of one system measured."""

    system: str
    patients: int
    load1: float
    send_lag: Percentiles = field(default_factory=Percentiles)
    send_failed: int = 0
    expected: int = 0
    received: int = 0
    duplicates: int = 0
    wall_closed: int = 0
    close: Percentiles = field(default_factory=Percentiles)  # close->score (raw: timestamp->receipt)
    end: Percentiles = field(default_factory=Percentiles)  # end->score
    p99_first: float = math.nan
    p99_last: float = math.nan
    rate: float = 0.0  # scores (raw: messages) per second over the stretch
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the stretch, per process
    mem_start_mb: float = math.nan  # anonymous resident memory of the system's process tree once started
    mem_end_mb: float = math.nan  # and at the end of the measured stretch
    internals: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retry_of: Level | None = None  # the failed attempt this one repeats

    @property
    def valid(self) -> bool:
        return self.send_lag.p99 <= MAX_SEND_LAG_S and not self.send_failed

    @property
    def sustained(self) -> bool:
        return self.valid and not self.failures

    @property
    def kib_per_patient(self) -> float:
        return (self.mem_end_mb - self.mem_start_mb) * 1024 / self.patients

    def judge(self, budget_s: float) -> None:
        if not self.valid:
            self.failures.append(f"INVALID: generator p99 send lag {self.send_lag.p99 * 1e3:.0f} ms")
        if self.received < self.expected:
            self.failures.append(f"{self.expected - self.received} missing")
        if not self.close.p99 <= budget_s:
            self.failures.append(f"p99 {self.close.p99:.2f} s > {budget_s:.2f} s")
        if self.p99_last - self.p99_first > MAX_GROWTH_S:  # NaN (a third with no window) is "missing" above
            self.failures.append(f"lag grows {self.p99_first:.2f} -> {self.p99_last:.2f} s")


@dataclass(frozen=True)
class Stretch:
    """Timing of a level: generator start, measured stretch [a, b) of window ends, chunks sent."""

    t0_us: int
    a_us: int
    b_us: int
    chunks: int


def score_latencies(lv: Level, first: dict[tuple[int, int], float], st: Stretch, s: Settings) -> None:
    """Fill a scored level's window counts and latencies from the collector's receipts."""
    hop_us, grace_us = round(s.hop_s * US), round(s.grace_s * US)
    ends = np.arange(-(-st.a_us // hop_us) * hop_us, st.b_us, hop_us)
    lv.expected = lv.patients * len(ends)
    close, end, third = [], [], []
    for i in range(lv.patients):
        origin = st.t0_us + phase_us(i, lv.patients)
        for e in ends.tolist():
            got = first.get((i, e))
            if got is None:
                continue
            closing = origin + -(-(e + grace_us - origin) // US) * US  # end of the first chunk reaching e + grace
            close.append(got - closing / US)
            end.append(got - e / US)
            third.append(min(3 * (e - st.a_us) // (st.b_us - st.a_us), 2))
    lv.received = len(close)
    c, t = np.array(close), np.array(third)
    lv.close, lv.end = Percentiles.of(c), Percentiles.of(np.array(end))
    lv.p99_first, lv.p99_last = Percentiles.of(c[t == 0]).p99, Percentiles.of(c[t == 2]).p99
    lv.rate = lv.received / ((st.b_us - st.a_us) / US)


def raw_latencies(lv: Level, stamps: np.ndarray, received: np.ndarray, st: Stretch) -> None:
    """Fill the raw level's message counts and latencies (timestamp = chunk end -> receipt)."""
    a_ms, b_ms = st.a_us // 1000, st.b_us // 1000
    due = np.array(
        [
            (st.t0_us + phase_us(i, lv.patients) + m * US) // 1000
            for i in range(lv.patients)
            for m in range(1, st.chunks + 1)
        ]
    )
    lv.expected = 2 * int(((due >= a_ms) & (due < b_ms)).sum())  # a chunk and a vitals event per due time
    inside = (stamps >= a_ms) & (stamps < b_ms)
    lat = (received[inside] - stamps[inside]) / 1000
    lv.received = int(inside.sum())
    third = np.minimum(3 * (stamps[inside] - a_ms) // (b_ms - a_ms), 2)
    lv.close = lv.end = Percentiles.of(lat)
    lv.p99_first, lv.p99_last = Percentiles.of(lat[third == 0]).p99, Percentiles.of(lat[third == 2]).p99
    lv.rate = lv.received / ((b_ms - a_ms) / 1000)


def _metric(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_internals(before: dict, after: dict, lags: list[float], seconds: float) -> dict[str, float]:
    """The worker's own view of the stretch, from two /metrics snapshots and the sampled event-loop lag."""

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    batches = delta("cardiowatch_batch_size_count")
    windows = delta("cardiowatch_batch_size_sum")
    scoring = delta("cardiowatch_scoring_seconds_sum")
    return {
        "batches": batches,
        "batch_mean": windows / batches if batches else math.nan,
        "scoring_ms_per_batch": scoring / batches * 1e3 if batches else math.nan,
        "scoring_ms_per_window": scoring / windows * 1e3 if windows else math.nan,
        "scoring_busy": scoring / seconds,
        "loop_lag_max": max(lags, default=math.nan),
        "loop_lag_mean": sum(lags) / len(lags) if lags else math.nan,
        "wall_closed": delta("cardiowatch_windows_closed_total", closed_by="wall"),
        "too_late": delta("cardiowatch_chunks_total", outcome="too_late"),
        "dead_letters": sum(
            v - _metric(before, k[0], **dict(k[1]))
            for k, v in after.items()
            if k[0] == "cardiowatch_dead_letters_total"
        ),
    }


# ---------------------------------------------------------------------------------------------- a level


def run_level(system: str, n: int, index: int, args: argparse.Namespace, ecg: EcgSet) -> Level:
    """Run one system at one patient count on a fresh broker; return what it measured."""
    lv = Level(system, n, load1())
    prefix = f"L{index}{system[0]}"
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, EmbeddedBroker(port=0) as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(settings, topics.all_topics(settings.app_id) + (NAIVE_SCORES,))
        children: list[Any] = []
        worker: Worker | None = None
        collector: Collector | None = None
        stop = SPAWN.Event()
        sut_conn: Connection | None = None
        sut_pid = 0
        try:
            # the system under test, ready before the first event
            if system == "worker":
                worker = start_worker(broker.bootstrap_servers, f"bench-{prefix}-{int(time.time())}", Path(tmp))
                sut_pid = worker.proc.pid
                lv.mem_start_mb = settled_anon_mb(sut_pid)
            else:
                sut_conn, child_conn = SPAWN.Pipe()
                target = raw_consume if system == "raw" else naive_consume
                proc = SPAWN.Process(
                    target=target, args=(broker.bootstrap_servers, f"bench-{prefix}", child_conn, stop)
                )
                proc.start()
                children.append(proc)
                if not sut_conn.poll(120):
                    raise SystemExit(f"{system} consumer did not join its group within 120 s")
                sut_conn.recv()
                assert proc.pid is not None
                sut_pid = proc.pid
                lv.mem_start_mb = anon_mb(sut_pid)
            if system != "raw":
                collector = Collector(settings, topics.RISK_SCORES if system == "worker" else NAIVE_SCORES)
                collector.start()
                if not collector.ready.wait(60):
                    raise SystemExit("the collector got no partitions within 60 s")
            # the load
            chunks = math.ceil(args.warmup_s + args.level_s + settings.grace_s) + 2
            gen_conn, child_conn = SPAWN.Pipe()
            gen = SPAWN.Process(
                target=generate,
                args=(Load(broker.bootstrap_servers, prefix, n, chunks, ecg, args.linger_ms), child_conn),
            )
            gen.start()
            children.append(gen)
            if not gen_conn.poll(120):
                raise SystemExit("the load generator did not start within 120 s")
            gen_conn.recv()
            t0_us = (int(time.time()) + 2) * US
            gen_conn.send(t0_us)
            st = Stretch(
                t0_us, t0_us + round(args.warmup_s * US), t0_us + round((args.warmup_s + args.level_s) * US), chunks
            )
            assert broker.process is not None and gen.pid is not None
            procs = {"generator": gen.pid, "broker": broker.process.pid, "collector": os.getpid()}
            # the measured stretch: CPU and worker metrics at both ends, event-loop lag sampled through it
            _sleep_until(st.a_us)
            cpu0 = {name: cpu_seconds(pid) for name, pid in procs.items()}
            sut0 = tree_cpu(sut_pid)
            before = worker.metrics() if worker else {}
            after = before
            loop_lags: list[float] = []
            while time.time() < st.b_us / US:
                time.sleep(min(2.0, max(st.b_us / US - time.time(), 0)))
                if worker:
                    m = worker.metrics()
                    if m:
                        loop_lags.append(_metric(m, "cardiowatch_event_loop_lag_seconds"))
                        after = m
            seconds = (st.b_us - st.a_us) / US
            lv.cpu = {name: (cpu_seconds(pid) - cpu0[name]) / seconds * 100 for name, pid in procs.items()}
            used = {p: cpu - sut0.get(p, 0.0) for p, cpu in tree_cpu(sut_pid).items()}
            lv.cpu[system] = sum(used.values()) / seconds * 100
            lv.cpu["children"] = sum(v for p, v in used.items() if p != sut_pid) / seconds * 100
            lv.mem_end_mb = anon_mb(sut_pid)
            if worker:
                lv.internals = worker_internals(before, after, loop_lags, seconds)
            # the generator's report, then every window of the stretch (or the drain deadline)
            if not gen_conn.poll(chunks + 60):
                raise SystemExit("the load generator did not finish")
            report = gen_conn.recv()
            lags = report["lags"]
            lv.send_lag = Percentiles.of(lags[math.floor(args.warmup_s) :].ravel())
            lv.send_failed = report["failed"]
            gen.join(10)
            if collector:
                hop_us = round(settings.hop_s * US)
                deadline = st.b_us / US + settings.grace_s + DRAIN_S
                want = n * len(range(-(-st.a_us // hop_us) * hop_us, st.b_us, hop_us))
                while time.time() < deadline:
                    got = sum(1 for (_, e) in list(collector.first) if st.a_us <= e < st.b_us)
                    if got >= want:
                        break
                    time.sleep(0.5)
                collector.done.set()
                collector.join(10)
                score_latencies(lv, collector.first, st, settings)
                lv.duplicates, lv.wall_closed = collector.duplicates, collector.wall_closed
            if worker and lv.internals.get("dead_letters"):
                lv.failures.append(f"{lv.internals['dead_letters']:.0f} events rejected")
            if worker and args.log_dir:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(worker.log, args.log_dir / f"worker-{n}.log")
            if worker and lv.received < lv.expected:
                tail = worker.log.read_text(errors="replace").splitlines()[-20:]
                head = f"[worker at {n} patients: {lv.expected - lv.received} windows missing; its log ends]"
                print(head, *tail, sep="\n", file=sys.stderr)
            stop.set()
            if sut_conn is not None:
                if not sut_conn.poll(60):
                    raise SystemExit(f"{system} consumer did not report")
                result = sut_conn.recv()
                if system == "raw":
                    raw_latencies(lv, result["stamps"], result["received"], st)
                elif result["bad"]:
                    lv.failures.append(f"{result['bad']} events rejected")
        finally:
            stop.set()
            if collector and collector.is_alive():
                collector.done.set()
                collector.join(10)
            if worker:
                worker.stop()
            for proc in children:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
    lv.judge(settings.hop_s + BUDGET_OVER_HOP_S)
    return lv


def _sleep_until(when_us: int) -> None:
    delay = when_us / US - time.time()
    if delay > 0:
        time.sleep(delay)


# --------------------------------------------------------------------------------------------- printing


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:,.0f}"


HEADER = {
    "raw": (
        f"{'patients':>8} {'load1':>5} {'gen lag p99':>11} {'msgs got/exp':>15} {'ts->recv p50':>12} {'p95':>6} "
        f"{'p99':>6} {'p99 1st->3rd third':>18} {'msgs/s':>7} {'CPU% raw':>8} {'gen/broker/coll':>15}  verdict"
    ),
    "scored": (
        f"{'patients':>8} {'load1':>5} {'gen lag p99':>11} {'windows got/exp':>15} {'close->score p50':>16} "
        f"{'p95':>6} {'p99':>6} {'end->score p99':>14} {'p99 1st->3rd third':>18} {'scores/s':>8} {'CPU% sys':>8} "
        f"{'gen/broker/coll':>15} {'anon MiB':>8} {'KiB/pt':>6}  verdict"
    ),
}


def row(lv: Level) -> str:
    others = f"{lv.cpu.get('generator', 0):.0f}/{lv.cpu.get('broker', 0):.0f}/{lv.cpu.get('collector', 0):.0f}"
    verdict = "sustained" if lv.sustained else "; ".join(lv.failures)
    if lv.retry_of is not None:
        verdict = f"(retry) {verdict}"
    growth = f"{ms(lv.p99_first)} -> {ms(lv.p99_last)}"
    common = f"{lv.patients:>8} {lv.load1:>5.2f} {ms(lv.send_lag.p99):>8} ms {lv.received:>7}/{lv.expected:<7}"
    if lv.system == "raw":
        return (
            f"{common} {ms(lv.close.p50):>9} ms {ms(lv.close.p95):>6} {ms(lv.close.p99):>6} {growth:>18} "
            f"{lv.rate:>7,.0f} {lv.cpu.get('raw', 0):>8.0f} {others:>15}  {verdict}"
        )
    return (
        f"{common} {ms(lv.close.p50):>13} ms {ms(lv.close.p95):>6} {ms(lv.close.p99):>6} {ms(lv.end.p99):>11} ms "
        f"{growth:>18} {lv.rate:>8,.0f} {lv.cpu.get(lv.system, 0):>8.0f} {others:>15} {lv.mem_end_mb:>8.0f} "
        f"{lv.kib_per_patient:>6.0f}  {verdict}"
    )


def internals_row(lv: Level) -> str:
    m = lv.internals
    return (
        f"{lv.patients:>8} {m.get('batch_mean', math.nan):>10.1f} {m.get('scoring_ms_per_batch', math.nan):>14.0f} "
        f"{m.get('scoring_ms_per_window', math.nan):>15.2f} {m.get('scoring_busy', math.nan) * 100:>12.0f}% "
        f"{ms(m.get('loop_lag_mean', math.nan)):>9} / {ms(m.get('loop_lag_max', math.nan)):<6} "
        f"{m.get('wall_closed', 0):>11.0f} {m.get('too_late', 0):>9.0f} {lv.duplicates:>10} "
        f"{lv.cpu.get('worker', 0) - lv.cpu.get('children', 0):>12.0f} / {lv.cpu.get('children', 0):<.0f}"
    )


TITLES = {
    "raw": "(a) raw consumption: plain kafka-python consumer of the input topics, nothing decoded",
    "naive": "(b) naive peer: per-event processing, every window scored alone on arrival",
    "worker": "(c) cardiowatch worker",
}


def largest(levels: list[Level]) -> Level | None:
    """The largest sustained level below the first failure."""
    best = None
    for lv in levels:
        if not lv.sustained:
            break
        best = lv
    return best


def summary(results: dict[str, list[Level]], budget_s: float) -> list[str]:
    lines = ["", "summary"]
    best = {system: largest(levels) for system, levels in results.items()}
    for system, levels in results.items():
        top = best[system]
        broke = next((lv for lv in levels if not lv.sustained), None)
        end = (
            f"first failure at {broke.patients} ({'; '.join(broke.failures)})"
            if broke
            else "never broke (highest level tried)"
        )
        held = (
            f"{top.patients:>5} patients sustained, p99 {ms(top.close.p99)} ms"
            if top
            else "    0 patients sustained (the first level failed)"
        )
        lines.append(f"  {system:<7} {held}; {end}")
        if broke and not broke.valid:
            lines.append(f"          level {broke.patients} is INVALID: the generator could not keep pace")
    worker, naive = best.get("worker"), best.get("naive")
    if "worker" in results:
        n = worker.patients if worker else 0
        verdict = "met" if n >= 1000 else f"MISSED by {1000 - n} patients ({n / 1000:.0%} of the goal)"
        lines.append(f"  goal: >= 1,000 patients on one worker, p99 close->score <= {budget_s:.1f} s: {verdict}")
        if worker:
            lines.append(
                f"         (the same windows measured from their end, incl. grace and chunk phase: p99 "
                f"{ms(worker.end.p99)} ms)"
            )
    if "worker" in results and "naive" in results:
        if naive and worker:
            ratio = worker.patients / naive.patients
            verdict = "met" if ratio >= 5 else f"MISSED (short by {5 - ratio:.1f}x)"
            lines.append(
                f"  ratio worker / naive: {worker.patients} / {naive.patients} = {ratio:.1f}x at the same p99 budget "
                f"({budget_s:.1f} s): goal >= 5x {verdict}"
            )
        else:
            lines.append("  ratio worker / naive: undefined (a system sustained no level)")
    if "raw" in results and worker:
        raw = next((lv for lv in results["raw"] if lv.patients == worker.patients), None)
        if raw:
            lines.append(
                f"  at {worker.patients} patients: worker p99 close->score {ms(worker.close.p99)} ms vs raw transport "
                f"floor p99 {ms(raw.close.p99)} ms ({worker.close.p99 / raw.close.p99:.1f}x)"
            )
    scored = [lv for lv in results.get("worker", []) if lv.valid and not math.isnan(lv.mem_end_mb)]
    if scored:
        per = ", ".join(f"{lv.patients}: {lv.kib_per_patient:.0f}" for lv in scored)
        lines.append(f"  worker memory per patient, KiB ((memory at stretch end - memory once started) / N): {per}")
        kept_up = [lv for lv in scored if lv.sustained]  # an overloaded worker also buffers its backlog
        if len(kept_up) >= 2:
            lo, hi = kept_up[0], kept_up[-1]
            slope = (hi.mem_end_mb - lo.mem_end_mb) * 1024 / (hi.patients - lo.patients)
            lines.append(
                f"  worker memory per patient, slope of memory from {lo.patients} to {hi.patients} patients: "
                f"{slope:.0f} KiB"
            )
    return lines


# ------------------------------------------------------------------------------------------------- main


def _levels(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def levels_of(system: str, args: argparse.Namespace, results: dict[str, list[Level]]) -> list[int]:
    """The patient counts to try for a system (see ``--raw-levels`` for the raw consumer's default)."""
    if system == "naive":
        return list(args.naive_levels)
    if system == "worker" or args.raw_levels is not None:
        return list(args.levels if system == "worker" else args.raw_levels)
    if "worker" not in results:
        return list(args.levels)
    tried = results["worker"]
    held = largest(tried)
    broke = next((lv for lv in tried if not lv.sustained), None)
    return sorted({lv.patients for lv in (held, broke) if lv is not None} | {1000})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--systems", default="naive,worker,raw", help="which systems, in order (raw,naive,worker)")
    parser.add_argument(
        "--levels",
        type=_levels,
        default=_levels("25,50,75,100,150,200,250,500,750,1000,1125,1250,1500,2000"),
        help="patient counts for the worker (each level runs only if the one before was sustained)",
    )
    parser.add_argument(
        "--naive-levels",
        type=_levels,
        default=_levels("10,25,50,75,100,150,200,225,250,300,400,500,750,1000,1250,1500"),
        help="patient counts for the naive peer",
    )
    parser.add_argument(
        "--raw-levels",
        type=_levels,
        default=None,
        help="patient counts for the raw consumer (default: where the worker held and broke, if it ran first, and "
        "1,000, the goal; otherwise --levels)",
    )
    parser.add_argument("--level-s", type=float, default=36.0, help="measured seconds per level (after warm-up)")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="windows ending this early are not measured")
    parser.add_argument("--grace-s", type=float, default=None, help="override CARDIOWATCH_GRACE_S for every system")
    parser.add_argument(
        "--linger-ms", type=int, default=20, help="the load generator's producer linger (see the module docstring)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for every process started (e.g. OMP_NUM_THREADS=1, CARDIOWATCH_BATCH_SIZE=64); repeatable",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="times a failed (valid) level is run again before N stops growing"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="keep each worker's log here (worker-<N>.log)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 patients (naive 5), 12 s levels")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.naive_levels, args.level_s, args.warmup_s = [20], [5], 12.0, 12.0
        args.raw_levels = args.raw_levels or [20]
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
        os.environ[name] = value  # inherited by the worker and by every spawned process
    if args.grace_s is not None:
        os.environ["CARDIOWATCH_GRACE_S"] = str(args.grace_s)  # read by every Settings() here and by the worker
    settings = Settings()
    if args.warmup_s < settings.window_s:
        parser.error(f"--warmup-s must be at least the window ({settings.window_s:g} s), so measured windows are full")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(TITLES)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(TITLES)}")
    budget_s = settings.hop_s + BUDGET_OVER_HOP_S
    seconds = OFFSET_SPAN_S + math.ceil(args.warmup_s + args.level_s + settings.grace_s) + 4
    print(
        f"cardiowatch streaming benchmark: window {settings.window_s:g} s, hop {settings.hop_s:g} s, grace "
        f"{settings.grace_s:g} s, batch {settings.batch_size} within {settings.batch_within_s:g} s; "
        f"{args.warmup_s:g} s warm-up + {args.level_s:g} s measured per level; {os.cpu_count()} CPUs, "
        f"load average {load1():.2f}" + (f"; environment {' '.join(args.env)}" if args.env else ""),
        flush=True,
    )
    print(
        f"sustained = generator keeps pace (p99 send lag <= {MAX_SEND_LAG_S * 1e3:.0f} ms), no window missing, "
        f"p99 close->score <= hop + {BUDGET_OVER_HOP_S * 1e3:.0f} ms = {budget_s:.1f} s, "
        f"p99 of the last third <= first third + {MAX_GROWTH_S * 1e3:.0f} ms; latencies in ms; CPU in % of one core",
        flush=True,
    )
    results: dict[str, list[Level]] = {}
    index = 0
    with tempfile.TemporaryDirectory(prefix="bench-stream-ecg-") as tmp:
        ecg = prepare_ecg(args.data, seconds, Path(tmp) / "ecg.npy")
        print(f"load: {ecg.records} MIT-BIH records resampled to {RATE_HZ} Hz, 2 leads, 1-s chunks; vitals synthetic")
        for system in systems:
            print(f"\n{TITLES[system]}\n{HEADER['raw' if system == 'raw' else 'scored']}", flush=True)
            results[system], tried = [], []
            for n in levels_of(system, args, results):
                index += 1
                lv = run_level(system, n, index, args, ecg)
                tried.append(lv)
                print(row(lv), flush=True)
                for _ in range(args.retries if lv.valid else 0):
                    if lv.sustained:
                        break
                    index += 1
                    lv = replace(run_level(system, n, index, args, ecg), retry_of=lv)
                    tried.append(lv)
                    print(row(lv), flush=True)
                results[system].append(lv)
                if not lv.sustained:
                    break
            if system == "worker":
                print(
                    f"\nworker internals over the measured stretch (from its /metrics)\n{'patients':>8} "
                    f"{'batch mean':>10} {'ms per batch':>14} {'ms per window':>15} {'scoring busy':>13} "
                    f"{'loop lag mean / max':>19} {'wall-closed':>11} {'too late':>9} {'duplicates':>10} "
                    f"{'CPU% worker process / scoring processes':>40}"
                )
                for lv in tried:
                    print(internals_row(lv))
    print("\n".join(summary(results, budget_s)))
    print(f"load average at the end {load1():.2f}")


if __name__ == "__main__":
    main()
