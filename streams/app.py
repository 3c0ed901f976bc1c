"""The Faust application, built by :func:`create_app`: app -> topics -> tables -> agents -> timers -> web views.

Nothing is read or connected at import: Faust configures an app as soon as a topic is declared on it, so the
app, its topics and its agents are all made when the worker starts, from its settings.

The agents are thin; the logic is in pure modules:

* ``ingest`` reads every input topic (co-partitioned by patient id, no repartition hop), validates each event
  (bad ones to ``<topic>.dlq``), and folds it into per-patient state: waveform chunks into event-time windows
  (:mod:`streams.windows`), vitals and context into changelogged tables (:mod:`streams.align`). Closed windows
  go to an in-memory channel.
* ``score`` takes windows from that channel in batches (``take(n, within=...)``), aligns each with the vitals
  and context known at its end, scores the batch in a scoring process (``CARDIOWATCH_SCORING_PROCESSES``;
  never on the event loop), and writes :class:`~streams.records.RiskScore` events to ``risk.scores``. The
  scorer is the learned model of the shipped artifact (:class:`streams.model_scorer.ModelScorer`, swapped
  live when its folder changes; a shadow model's scores go to ``risk.scores.shadow``) or, with
  ``CARDIOWATCH_SCORER=rules``, the rule scorer alone (:class:`streams.scoring.RuleScorer`).

**Delivery guarantee.** A waveform event is acknowledged only when no open window needs it any more and the
scores of every window that held it are published; a vitals event once its patient's history is written to
the changelog (when :func:`streams.align.changelog_due` says, once the patient's vitals pause for
:data:`VITALS_SETTLE_S`, or when the worker stops gracefully: until then the first vitals event folded since
the last write stays unacknowledged, which holds the partition's committed offset before it); a context event
once it is in its changelogged table. So a worker killed at any moment consumes again, on restart, every chunk
of the windows it had not finished scoring and publishing, rebuilds those windows, and scores them again, and
every vitals event not yet in the changelog (the table restores the rest). A held vitals event is written
within about ``resolution_s`` (a minute), so a restart re-reads about a minute of a partition's vitals; folding
them again onto the restored history rebuilds the history the worker had (a simulation of 1-Hz monitors
re-read up to 60 s back found no difference; a re-read reaching further back can lose a point that
:func:`streams.align.add_vitals` had kept while thinning).
Scores are therefore delivered at least once, and every repeat of a window carries the same ``score_id``
(patient, window end, scorer and version): consumers deduplicate on it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import faust
import numpy as np
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models.artifact import SHIPPED
from streams import metrics, topics
from streams.align import (
    AlignConfig,
    AlignedSample,
    add_context,
    add_vitals,
    align,
    changelog_due,
    newer_than,
    newest_points,
)
from streams.errors import InvalidEvent
from streams.ingest import Ingest, dead_letter
from streams.model_scorer import ModelScorer
from streams.records import DetectionRecord, ImagingEvent, NoteEvent, RiskScore, VitalsEvent
from streams.rhythm import Detection
from streams.scoring import BeatReferences, RuleScorer, Scored, Scorer
from streams.settings import Settings
from streams.tables import declare_tables
from streams.transport import App
from streams.waveform import WaveformChunk
from streams.windows import US, EcgBuffer, EcgWindow, WindowConfig, add_chunk, advance_wall, idle

log = logging.getLogger(__name__)


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust settings from cardiowatch settings."""
    credentials: Any = None
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {
        "broker": ";".join(f"kafka://{s}" for s in settings.bootstrap_servers.split(",")),
        "broker_credentials": credentials,
        "broker_session_timeout": settings.session_timeout_ms / 1000,
        "broker_heartbeat_interval": max(settings.session_timeout_ms / 6000, 0.5),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": False,  # topics are created by `cardiowatch topics` with one partition count
        "consumer_auto_offset_reset": "earliest",
        "store": "memory://",
        "datadir": settings.data_dir,
        "web_port": settings.web_port,
        "web_bind": settings.web_host,
        "web_enabled": True,
        # changelog and score events wait up to 5 ms to leave in one request with others: one request per
        # event cost the event loop more than consuming the event did
        "producer_linger": 0.005,
        "autodiscover": False,
        # waveform events stay unacknowledged while a window needs them (see the module docstring), so a
        # rebalance must not wait for every event to be acknowledged
        "stream_wait_empty": False,
    }


def process(ingest: Ingest, topic: str, key: bytes | None, value: bytes | None) -> tuple[bool, Any]:
    """Validate one input message: ``(True, record)`` or ``(False, InvalidEvent)``; never raises."""
    try:
        return True, ingest.decode(topic, key, value)
    except InvalidEvent as err:
        return False, err
    except Exception as err:  # a decoder bug must cost one event, never the stream
        log.exception("decoder failed on %s", topic)
        return False, InvalidEvent("internal_error", f"decoder failed: {type(err).__name__}: {err}")


@dataclass(frozen=True, slots=True)
class VitalsTick:
    """A hop of a patient without waveform: scored from vitals and context alone."""

    patient_id: str
    start_us: int
    end_us: int
    arrival_s: float


@dataclass(frozen=True, slots=True)
class Closed:
    """What the ingest agent hands the score agent: a closed window or vitals hop (or none), and tokens.

    The tokens are the input events to acknowledge once this window's score, and every score before it, is
    published: the chunks no open window needs any more.
    """

    window: EcgWindow | VitalsTick | None
    tokens: tuple[Any, ...] = ()


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, UTC)


def score_id(patient_id: str, end_us: int, scorer: Scorer, waveform: bool = True) -> str:
    """Deterministic id of a window's score: patient, window end (UTC), scorer version (``:vitals`` without ECG)."""
    base = f"{patient_id}:{_utc(end_us).isoformat().replace('+00:00', 'Z')}:{scorer.name}-{scorer.version}"
    return base if waveform else f"{base}:vitals"


def detection_record(d: Detection, window_start_us: int) -> DetectionRecord:
    """A rhythm detection (times in seconds from the window start) as its contract record."""
    return DetectionRecord(
        kind=d.kind,  # type: ignore[arg-type]
        category="physiological",
        onset_time=_utc(window_start_us + round(d.onset_s * US)),
        end_time=_utc(window_start_us + round(d.end_s * US)),
        evidence=d.evidence,
    )


def risk_record(sample: AlignedSample, scored: Scored, scorer: Scorer) -> RiskScore:
    """The ``risk.scores`` event of one scored window."""
    detections = [detection_record(d, sample.start_us) for d in scored.detections]
    if sample.ecg is not None and sample.ecg.closed_by == "wall":
        absent = np.asarray(sample.ecg.missing.all(axis=0))
        trailing = int(absent[::-1].argmin())  # samples missing at the end: the data stopped there
        last = sample.ecg.end_us - round(trailing / sample.ecg.sampling_rate * US)
        detections.append(
            DetectionRecord(
                kind="signal_lost",
                category="technical",
                onset_time=_utc(last),
                evidence={"closed_by": "wall clock", "present_fraction": round(sample.ecg.present_fraction(), 4)},
            )
        )
    return RiskScore.model_validate(
        {
            "schema": "cardiowatch.risk_score",
            "version": 1,
            "score_id": score_id(sample.patient_id, sample.end_us, scorer, sample.ecg is not None),
            "patient_id": sample.patient_id,
            "window_start": _utc(sample.start_us),
            "window_end": _utc(sample.end_us),
            "risk": scored.risk,
            "scores": scored.scores,
            "modalities": sample.modalities,
            "signal_quality": scored.signal_quality,
            "detections": detections,
            "scorer": scorer.name,
            "scorer_version": scorer.version,
        }
    )


def _init_scoring_process(parent_pid: int) -> None:
    """In a scoring process: one torch thread, and exit as soon as the worker that started it is gone.

    The process is the one scoring core: torch's default of one intra-op thread per core would contend with
    the worker's event loop for the others. It exits even when the worker was killed by SIGKILL.
    """
    import torch

    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def score_batch(
    scorer: Scorer, samples: list[AlignedSample]
) -> tuple[list[bytes], list[bytes], float, list[dict[str, np.ndarray] | None]]:
    """Score a batch and serialise its ``risk.scores`` events (runs in a scoring process or thread).

    Returns the live scores, the shadow model's scores when the scorer has a ``shadow`` (else none; a failing
    shadow is logged and gives none), the seconds the scoring took here (not counting the queueing), and per
    sample the reference beat learned from it (:attr:`streams.scoring.Scored.beat_reference`).
    """
    started = time.perf_counter()
    if not samples:
        return [], [], 0.0, []
    scored = scorer.score_batch(samples)
    live = [
        risk_record(a, r, scorer).model_dump_json(by_alias=True).encode() for a, r in zip(samples, scored, strict=True)
    ]
    shadow: ModelScorer | None = getattr(scorer, "shadow", None)
    shadowed: list[bytes] = []
    if shadow is not None:
        try:
            shadowed = [
                risk_record(a, r, shadow).model_dump_json(by_alias=True).encode()
                for a, r in zip(samples, shadow.rescore(samples, scored), strict=True)
            ]
        except Exception:
            log.exception("shadow model %s failed; live scoring goes on", shadow.model_dir)
    return live, shadowed, time.perf_counter() - started, [r.beat_reference for r in scored]


def build_scorer(settings: Settings) -> Scorer:
    """The scorer the settings ask for: the learned model (with its shadow, if any) or the rules alone."""
    if settings.scorer == "rules":
        return RuleScorer(mains_hz=settings.mains_hz)

    def model(folder: str | None, shadow: ModelScorer | None = None) -> ModelScorer:
        return ModelScorer(
            folder or SHIPPED,
            mains_hz=settings.mains_hz,
            preferred_batch=settings.model_batch,
            max_delay_s=settings.model_delay_s,
            device=settings.model_device,
            reload_s=settings.model_reload_s,
            torchscript=settings.model_torchscript,
            shadow=shadow,
        )

    return model(settings.model_dir, model(settings.shadow_model_dir) if settings.shadow_model_dir else None)


#: Wall seconds after which a silent patient's in-memory state (waveform buffer, recent vitals) is dropped, so
#: a worker that sees patients come and go does not keep them all; the tables keep what must survive.
FORGET_AFTER_S = 3600.0

#: Wall seconds without a vitals event after which a patient's vitals not yet in the changelog are written
#: (the last points of a monitor that stopped, a second correction of a sporadic reading: see
#: :func:`streams.align.changelog_due`).
VITALS_SETTLE_S = 5.0

#: Batches scored or being scored whose scores are not published yet (the pipeline's depth).
PIPELINE_BATCHES = 2
#: Longest wait, when the score agent stops, for the scores of the batches already submitted.
DRAIN_S = 10.0


@dataclass(slots=True)
class Heartbeat:
    """What a monitor of the worker's own progress reads: when it last consumed an input event (wall time)."""

    last_input_s: float = 0.0


def load_plugins(specs: str) -> list[Callable[..., None]]:
    """The callables a comma-separated list of ``module:name`` specs names, imported."""
    plugins = []
    for spec in filter(None, (s.strip() for s in specs.split(","))):
        module, _, name = spec.partition(":")
        plugins.append(getattr(importlib.import_module(module), name))
    return plugins


def create_app(
    settings: Settings, scorer: Scorer | None = None, plugins: Sequence[Callable[..., None]] | None = None
) -> faust.App:
    """The worker's Faust app with its topics, tables, agents, timers and web views.

    Each plugin is called as ``plugin(app, settings, heartbeat)`` once the streaming core is declared, to add
    agents of its own (the alert agent, :func:`alerts.agents.install`, which ``streams`` does not import).
    Without ``plugins`` they are the ones ``settings.worker_plugins`` names.
    """
    # -------------------------------------------------------------------------------------------- app
    app = App(settings.app_id, fetch_max_wait_ms=settings.fetch_max_wait_ms, **faust_options(settings))
    ingest = Ingest(max_future_s=settings.max_future_s)
    window_config = WindowConfig(settings.window_s, settings.hop_s, settings.grace_s, settings.signal_lost_s)
    align_config = AlignConfig()
    the_scorer: Scorer = scorer or build_scorer(settings)
    executor: Executor = (
        ProcessPoolExecutor(
            settings.scoring_processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_scoring_process,
            initargs=(os.getpid(),),
        )
        if settings.scoring_processes
        else ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
    )
    heartbeat = Heartbeat()
    buffers: dict[str, EcgBuffer] = {}
    vitals_ticks: dict[str, int] = {}  # last vitals-only window end per patient without waveform
    vitals_live: dict[str, dict[str, list[list[Any]]]] = {}  # ahead of the table (see changelog_due)
    vitals_written: dict[str, dict[str, list[Any]]] = {}  # newest point per signal in each patient's last write
    vitals_partition: dict[str, int] = {}  # partition of each patient's vitals events (and of its table key)
    vitals_unwritten: set[str] = set()  # patients whose vitals changed since their last write
    # per patient, the first vitals event since its last write (unacknowledged until the write) and when it came
    vitals_pending: dict[str, tuple[EventT, float]] = {}
    vitals_arrival: dict[str, float] = {}  # wall time of each patient's last vitals event
    # per patient and lead, for beat classing (models.qrs.ecg_classify_beats); read back from the table after a restart
    beat_references = BeatReferences(load=lambda patient_id: read_beats(patient_id))
    ecg_partition: dict[str, int] = {}  # partition of each patient's waveform events (and of its beats table key)

    def vitals_of(patient_id: str) -> dict[str, list[list[Any]]]:
        """A patient's vitals history: this worker's, or the table's when that is newer (or all there is)."""
        stored = tables.vitals.get(patient_id) or {}
        live = vitals_live.get(patient_id)
        if live is None or newer_than(stored, live):
            live = vitals_live[patient_id] = {name: [list(p) for p in series] for name, series in stored.items()}
        return live

    def write_vitals(patient_id: str, history: dict[str, list[list[Any]]]) -> None:
        """Write a patient's vitals history to the table and its changelog (in a stream or a timer)."""
        value = {name: [list(p) for p in series] for name, series in history.items()}
        tables.vitals.data[patient_id] = value
        # the partition of the patient's vitals events: the table is co-partitioned with its input topic
        tables.vitals.send_changelog(vitals_partition.get(patient_id), patient_id, value)
        vitals_written[patient_id] = newest_points(history)
        vitals_unwritten.discard(patient_id)
        if (pending := vitals_pending.pop(patient_id, None)) is not None:
            pending[0].ack()  # its partition's committed offset may now pass it: the changelog holds its point

    def write_beats(patient_id: str, record: dict[str, Any]) -> None:
        """Write a patient's reference beats to the table and its changelog (co-partitioned with the waveform)."""
        tables.beats.data[patient_id] = record
        tables.beats.send_changelog(ecg_partition.get(patient_id), patient_id, record)
        metrics.BEAT_REFERENCES.labels("learned").inc()

    def read_beats(patient_id: str) -> dict[str, Any] | None:
        """A patient's reference beats from the table (after a restart or a rebalance), or None."""
        record = tables.beats.get(patient_id) or None
        if record is not None:
            metrics.BEAT_REFERENCES.labels("restored").inc()
        return record

    # ----------------------------------------------------------------------------------------- topics
    inputs = app.topic(*topics.INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    dead_letters = {
        name: app.topic(topics.dlq(name), key_serializer="raw", value_serializer="raw") for name in topics.INPUT_TOPICS
    }
    scores_topic = app.topic(topics.RISK_SCORES, key_serializer="raw", value_serializer="raw")
    shadow_topic = app.topic(topics.RISK_SCORES_SHADOW, key_serializer="raw", value_serializer="raw")
    closed_windows = app.channel()

    # ----------------------------------------------------------------------------------------- tables
    tables = declare_tables(app)

    # ----------------------------------------------------------------------------------------- agents
    async def send_windows(windows: Sequence[EcgWindow | VitalsTick], released: Sequence[Any] = ()) -> None:
        """Hand closed windows to the score agent; the released input events go with the last one (or alone)."""
        for w in windows:
            metrics.WINDOWS.labels(w.closed_by if isinstance(w, EcgWindow) else "vitals").inc()
        items = [Closed(w) for w in windows[:-1]] + [Closed(windows[-1] if windows else None, tuple(released))]
        for item in items:
            if item.window is not None or item.tokens:
                await closed_windows.send(value=item)

    async def route_dead_letter(event: EventT, fault: InvalidEvent) -> None:
        msg = event.message
        letter = dead_letter(
            msg.topic,
            msg.partition,
            msg.offset,
            int(msg.timestamp * 1000) if msg.timestamp else None,
            msg.key,
            msg.value,
            fault,
        )
        await dead_letters[msg.topic].send(key=msg.key, value=letter.model_dump_json(by_alias=True).encode())
        metrics.EVENTS.labels(msg.topic, "dead_letter").inc()
        metrics.DEAD_LETTERS.labels(msg.topic, fault.code).inc()
        metrics.OUTPUTS.labels(topics.dlq(msg.topic)).inc()
        log.warning("dead letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, fault.reason)

    async def ingest_events(stream: faust.StreamT) -> None:
        """Validate every input event; fold the good ones into windows and tables, the bad ones to the DLQ."""
        event: EventT
        async for event in cast(faust.Stream, stream).noack().events():
            msg = event.message
            heartbeat.last_input_s = time.time()
            ok, result = process(ingest, msg.topic, msg.key, msg.value)
            if not ok:
                await route_dead_letter(event, result)
                event.ack()
                continue
            metrics.EVENTS.labels(msg.topic, "accepted").inc()
            acknowledge = True
            if isinstance(result, WaveformChunk):
                ecg_partition[result.patient_id] = msg.partition
                buf = buffers.get(result.patient_id)
                if buf is None:
                    buf = buffers[result.patient_id] = EcgBuffer(result.patient_id)
                    metrics.PATIENTS.set(len(buffers))
                outcome = add_chunk(buf, result, window_config, time.time(), event)
                metrics.CHUNKS.labels(outcome.status).inc()
                if outcome.gap_s > 0:
                    metrics.GAPS.inc()
                    metrics.GAP_SECONDS.inc(outcome.gap_s)
                await send_windows(outcome.windows, outcome.released)
                continue
            if isinstance(result, VitalsEvent):
                vitals_arrival[result.patient_id] = time.time()
                vitals_partition[result.patient_id] = msg.partition
                history = add_vitals(vitals_of(result.patient_id), result, align_config)
                if changelog_due(history, vitals_written.get(result.patient_id, {}), align_config):
                    write_vitals(result.patient_id, history)
                else:
                    vitals_unwritten.add(result.patient_id)
                    if result.patient_id not in vitals_pending:  # acknowledged once the history is written
                        vitals_pending[result.patient_id] = (event, time.time())
                        acknowledge = False
                buf = buffers.get(result.patient_id)
                if buf is None or buf.lost:  # no waveform: score the hop from vitals alone
                    end = -(-round(result.time.timestamp() * US) // window_config.hop_us) * window_config.hop_us
                    if end > vitals_ticks.get(result.patient_id, 0):
                        vitals_ticks[result.patient_id] = end
                        tick = VitalsTick(result.patient_id, end - window_config.window_us, end, time.time())
                        await send_windows([tick])
            elif isinstance(result, ImagingEvent | NoteEvent):
                tables.context[result.patient_id] = add_context(
                    dict(tables.context[result.patient_id]), result, align_config
                )
            if acknowledge:
                event.ack()

    Scoring = asyncio.Queue[tuple[list[AlignedSample], asyncio.Future[Any], list[Any]] | None]

    async def publish(scoring: Scoring, slots: asyncio.Semaphore) -> None:
        """Publish each batch's scores in the order the batches were taken, then acknowledge its input events.

        Returns at the ``None`` that ends the queue, once every batch before it is published.
        """
        while (item := await scoring.get()) is not None:
            samples, future, tokens = item
            payloads, shadow, seconds, learned = await future
            metrics.SCORING_SECONDS.observe(seconds)
            for sample, reference in zip(samples, learned, strict=True):
                if (record := beat_references.learned(sample, reference)) is not None:
                    write_beats(sample.patient_id, record)
            for sample, payload in zip(samples, payloads, strict=True):
                await scores_topic.send(key=sample.patient_id.encode(), value=payload)
            for sample, payload in zip(samples, shadow, strict=False):
                await shadow_topic.send(key=sample.patient_id.encode(), value=payload)
            now = time.time()
            metrics.OUTPUTS.labels(topics.RISK_SCORES).inc(len(payloads))
            for sample in samples:
                metrics.EVENT_LATENCY.observe(now - sample.end_us / US)
                metrics.ARRIVAL_LATENCY.observe(now - sample.arrival_s)
            for token in tokens:
                token.ack()
            slots.release()

    async def score(stream: faust.StreamT) -> None:
        """Align closed windows with vitals and context, score them in batches off the loop, publish.

        Scoring is pipelined: a batch goes to the scoring process as soon as it is taken, while the batch
        before it is still being published, so the scoring process does not wait for the event loop's share
        (aligning, publishing). At most :data:`PIPELINE_BATCHES` batches are submitted and unpublished at a
        time. When the agent stops, the batches already submitted are published before it returns (for at
        most :data:`DRAIN_S`). A failure to score or publish is raised in the agent at its next batch.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, score_batch, the_scorer, [])  # start and import before data flows
        scoring: Scoring = asyncio.Queue()
        slots = asyncio.Semaphore(PIPELINE_BATCHES)
        publisher = asyncio.ensure_future(publish(scoring, slots))
        slot: asyncio.Future[Any] | None = None
        try:
            async for closed in stream.take(settings.batch_size, within=settings.batch_within_s):
                batch = [c.window for c in closed if c.window is not None]
                tokens = [t for c in closed for t in c.tokens]
                metrics.BATCH_SIZE.observe(len(batch))
                samples = [
                    align(
                        w if isinstance(w, EcgWindow) else None,
                        w.patient_id,
                        w.start_us,
                        w.end_us,
                        vitals_live[w.patient_id] if w.patient_id in vitals_live else vitals_of(w.patient_id),
                        tables.context.get(w.patient_id),
                        align_config,
                    )
                    for w in batch
                ]
                for sample, w in zip(samples, batch, strict=True):
                    sample.arrival_s = w.arrival_s
                    beat_references.attach(sample)
                slot = asyncio.ensure_future(slots.acquire())
                await asyncio.wait((slot, publisher), return_when=asyncio.FIRST_COMPLETED)
                if not slot.done():
                    publisher.result()  # the publisher ended before a slot freed: it failed; raise it here
                scoring.put_nowait((samples, loop.run_in_executor(executor, score_batch, the_scorer, samples), tokens))
        finally:
            if slot is not None and not slot.done():
                slot.cancel()
            if not publisher.done():
                scoring.put_nowait(None)
                try:
                    await asyncio.wait_for(asyncio.shield(publisher), DRAIN_S)
                except Exception:
                    log.exception("scores of the last batches not published")
                    publisher.cancel()

    app.agent(inputs, name="ingest")(ingest_events)
    app.agent(closed_windows, name="score")(score)

    # ----------------------------------------------------------------------------------------- timers
    async def watermark() -> None:
        """Close silent patients' windows by wall time; raise their signal-lost events; forget long-silent ones."""
        now = time.time()
        for patient_id, buf in list(buffers.items()):
            windows, released, lost = advance_wall(buf, window_config, now)
            if lost is not None:
                metrics.SIGNAL_LOST.inc()
                log.info("signal lost: %s silent for %.1f s", patient_id, lost.silent_s)
            await send_windows(windows, released)
            if idle(buf, now, FORGET_AFTER_S):
                del buffers[patient_id]
                beat_references.forget(patient_id)
                ecg_partition.pop(patient_id, None)
                metrics.PATIENTS.set(len(buffers))

    async def forget_vitals() -> None:
        """Drop the in-memory vitals of patients without a measurement for :data:`FORGET_AFTER_S`."""
        horizon = time.time() - FORGET_AFTER_S
        forgotten = [p for p in vitals_live if vitals_arrival.get(p, 0.0) < horizon]
        write_unwritten([p for p in forgotten if p in vitals_pending])  # none left to hold a partition back
        for patient_id in forgotten:
            del vitals_live[patient_id]
            vitals_arrival.pop(patient_id, None)
            vitals_written.pop(patient_id, None)
            vitals_partition.pop(patient_id, None)
            vitals_unwritten.discard(patient_id)
            vitals_ticks.pop(patient_id, None)

    def write_unwritten(patient_ids: list[str]) -> int:
        """Write these patients' vitals, for the partitions this worker still holds (others own the rest now)."""
        try:
            held = app.consumer.assignment()
        except ConsumerNotStarted:  # stopped before it started: nothing was consumed, nothing is held
            held = set()
        written = 0
        for patient_id in patient_ids:
            vitals_unwritten.discard(patient_id)
            if patient_id in vitals_live and TP(topics.VITALS, vitals_partition[patient_id]) in held:
                write_vitals(patient_id, vitals_live[patient_id])
                written += 1
            else:  # the partition went to another worker, which consumes the unwritten events again
                vitals_pending.pop(patient_id, None)
        return written

    async def persist_vitals() -> None:
        """Write the vitals of patients quiet for :data:`VITALS_SETTLE_S` that changed since their last write.

        Also those whose held vitals event came ``resolution_s`` ago or more (a monitor whose clock stepped
        back, or that resends one reading, never makes a write due), so no event holds a partition back longer.
        """
        now = time.time()
        quiet, held = now - VITALS_SETTLE_S, now - align_config.resolution_s
        write_unwritten(
            [
                p
                for p in vitals_unwritten
                if vitals_arrival.get(p, quiet) <= quiet or (p in vitals_pending and vitals_pending[p][1] <= held)
            ]
        )

    async def persist_vitals_on_stop(sender: Any, **_: Any) -> None:
        """On a graceful stop, write every held patient's vitals that changed since their last write.

        Faust sends this signal once its consumer has stopped and before it flushes its producer, so a restart
        finds the newest points in the table (after a crash it consumes the unwritten events again instead).
        A failure here is logged, never raised: it would stop Faust's shutdown before the flush.
        """
        pending = list(vitals_unwritten)
        try:
            log.info("stopping: wrote the vitals of %d of %d patients", write_unwritten(pending), len(pending))
        except Exception:
            log.exception("stopping: the vitals of %d patients not written", len(pending))

    async def loop_lag() -> None:
        """Measure how late the event loop wakes a sleeper (event-loop lag)."""
        interval = 0.5
        while not app.should_stop:
            started = time.perf_counter()
            await asyncio.sleep(interval)
            metrics.LOOP_LAG.set(max(time.perf_counter() - started - interval, 0.0))

    async def release_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        """Forget the held vitals events of revoked partitions: whoever gets them next consumes them again."""
        for patient_id in [p for p, (e, _) in vitals_pending.items() if e.message.tp in revoked]:
            del vitals_pending[patient_id]

    app.timer(interval=max(settings.hop_s / 2, 0.25))(watermark)
    app.timer(interval=60.0)(forget_vitals)
    app.timer(interval=VITALS_SETTLE_S)(persist_vitals)
    app.on_before_shutdown.connect(cast(Any, persist_vitals_on_stop))  # mode types its receivers narrowly
    app.on_partitions_revoked.connect(cast(Any, release_revoked))
    app.task(loop_lag)

    # -------------------------------------------------------------------------------------- web views
    async def metrics_page(web: Any, request: Any) -> Any:
        """Prometheus metrics."""
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health(web: Any, request: Any) -> Any:
        """200 once the worker has joined its group and consumes its partitions."""
        ready = app.consumer is not None and not app.rebalancing
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()) if ready else []
        return web.json({"status": "ok" if ready else "starting", "assigned": assigned}, status=200 if ready else 503)

    app.page("/metrics")(metrics_page)
    app.page("/health")(health)
    for plugin in load_plugins(settings.worker_plugins) if plugins is None else plugins:
        plugin(app, settings, heartbeat)
    return app
