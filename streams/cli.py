"""The ``cardiowatch`` command line: one entry point, a subcommand per job.

Output for people goes through this layer; service code logs.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from streams import topics
from streams.errors import StreamsError
from streams.settings import Settings


def _env_help() -> str:
    lines = ["environment variables (defaults suit the embedded broker):"]
    prefix = Settings.model_config["env_prefix"]
    for name, f in Settings.model_fields.items():
        default = "" if f.default is None else f" [default: {f.default}]"
        lines.append(f"  {prefix}{name.upper():<22} {f.description}{default}")
    return "\n".join(lines)


#: A subcommand added by a package that builds on ``streams``: name, help, ``configure(parser)``, and
#: ``run(args, settings) -> exit status`` (the ``alerts`` command of :mod:`alerts.cli`).
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Settings], int]]


def _parser(extra: Sequence[Command] = ()) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    root = argparse.ArgumentParser(
        prog="cardiowatch",
        description="Real-time cardiac patient monitoring on Kafka.",
        epilog=_env_help(),
        formatter_class=fmt,
    )
    root.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=_env_help(), formatter_class=fmt)

    p = add(
        "broker",
        "Run the embedded Kafka-compatible broker (Tansu, memory only) on loopback and create "
        "the topics; stops on Ctrl-C or SIGTERM.",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: the port of CARDIOWATCH_BOOTSTRAP_SERVERS)")

    add("topics", "Create every cardiowatch topic (same partition count) on the configured Kafka.")

    p = add("replay", "Replay recordings (WFDB records, CinC .mat, CSV, or a capture) into Kafka as live streams.")
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="records (path without extension), .mat/.csv files, or folders (their RECORDS list or every .hea)",
    )
    p.add_argument("--capture", type=Path, help="play back a capture file byte for byte instead")
    p.add_argument("--speed", default="1", help="event seconds per wall second, or 'max' (default 1: real time)")
    p.add_argument("--chunk-s", type=float, default=1.0, help="waveform chunk length in seconds (default 1)")
    p.add_argument("--start", help="event time of the first sample, ISO 8601 with offset (default: now)")
    p.add_argument("--max-duration", type=float, help="replay at most this many seconds of each recording")
    p.add_argument("--patient-map", type=Path, help="CSV 'recording,patient_id' naming the patient of each recording")
    p.add_argument("--csv-sampling-rate", type=float, help="sampling rate of CSV files without a time_s column")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("capture", "Record topics to a capture file that `replay --capture` plays back byte for byte.")
    p.add_argument("topics", nargs="+", help="topics to record")
    p.add_argument("--out", type=Path, required=True, help="capture file to write")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message, not the newest")
    p.add_argument("--max", type=int, help="stop after this many messages")
    p.add_argument("--idle-s", type=float, default=5.0, help="stop when nothing arrived for this long (default 5)")

    p = add("tail", "Follow a topic live, decoded and readable (dead-letter reasons included).")
    p.add_argument("topic", help=f"one of: {', '.join(topics.ALL_TOPICS)}")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    p.add_argument("--max", type=int, help="stop after this many messages")
    p.add_argument("--idle-s", type=float, help="stop when nothing arrived for this long (default: never)")

    add(
        "worker",
        "Run the stream worker: validates every input event (bad ones to <topic>.dlq), windows each "
        "patient's streams by event time, aligns vitals and context, scores every hop to risk.scores, and "
        "serves /metrics and /health on CARDIOWATCH_WEB_PORT.",
    )

    p = add(
        "ec57",
        "Validate the QRS detector the ANSI/AAMI EC57 way on <data>/mitdb (150 ms match window, first 5 "
        "minutes skipped): Se and +P per record and gross.",
    )
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="data folder laid out like shared/data")
    p.add_argument("--out", type=Path, help="also write the report as JSON here")

    p = add("demo", "Start the embedded broker and a worker, replay real recordings, and show them live.")
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="data folder laid out like shared/data")
    p.add_argument("--speed", type=float, default=5.0, help="replay speed, x real time (default 5)")
    p.add_argument("--duration", type=float, default=60.0, help="wall seconds to run (default 60)")

    p = add(
        "train",
        "Train the multimodal risk model on a folder laid out like shared/data (patient-wise splits, seeded) "
        "and write a versioned artifact folder.",
    )
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="data folder laid out like shared/data")
    p.add_argument("--out", type=Path, help="artifact folder to write (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0, help="seed of splits' sampling, initialisation and augmentation")
    p.add_argument("--epochs", type=int, default=55, help="epochs of 150 batches (default 55)")
    p.add_argument("--minutes", type=float, default=42.0, help="wall-time budget; stops before passing it (default 42)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")

    p = add(
        "evaluate",
        "Evaluate a model artifact on a folder laid out like shared/data (patients it was trained on are left "
        "out): AUROC/AUPRC with bootstrap CIs, CinC 2017 F1, calibration, ECG-only vs fused, naive baselines.",
    )
    p.add_argument("--model", type=Path, help="artifact folder (default: the shipped one)")
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="data folder laid out like shared/data")
    p.add_argument("--out", type=Path, required=True, help="folder for report.json, summary.md and the plots")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")

    p = add("contracts", "Write the JSON Schema of every JSON event contract to a folder.")
    p.add_argument("--out", type=Path, required=True, help="folder to write <topic>.schema.json into")
    for name, help_text, configure, _ in extra:
        configure(add(name, help_text))
    return root


def main(argv: list[str] | None = None, extra: Sequence[Command] = ()) -> int:
    """Run one ``cardiowatch`` subcommand (the console script is :func:`alerts.cli.main`, which adds its own)."""
    args = _parser(extra).parse_args(argv)
    commands = {**COMMANDS, **{name: run for name, _, _, run in extra}}
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(commands[args.command](args, Settings()) or 0)
    except StreamsError as err:
        print(f"cardiowatch {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker import EmbeddedBroker
    from streams.kafka import ensure_topics

    port = args.port or int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    stop = _stop_event()
    with EmbeddedBroker(port=port) as broker:
        created = ensure_topics(settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers}))
        print(
            f"broker ready on {broker.bootstrap_servers}; created {len(created)} topics. Ctrl-C stops it.", flush=True
        )
        while not stop.wait(0.5):
            if broker.process is not None and broker.process.poll() is not None:
                print("broker exited unexpectedly", file=sys.stderr)
                return 1
    return 0


def _cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka import ensure_topics

    created = ensure_topics(settings)
    print(
        f"{len(created)} topics created, {len(topics.all_topics(settings.app_id)) - len(created)} existed "
        f"({settings.partitions} partitions each)"
    )
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.capture import capture_events
    from streams.kafka import producer, wait_for_kafka
    from streams.replay import event_count, parse_start, recording_events, replay
    from streams.sources import default_patient_id, expand, read_csv, read_recording

    speed = float("inf") if args.speed == "max" else float(args.speed)
    wait_for_kafka(settings).close()
    if args.capture:
        streams, total, patients = [capture_events(args.capture)], None, 0
    else:
        paths = expand(args.paths)
        if not paths:
            raise StreamsError("nothing to replay: give recordings, folders, or --capture")
        mapping = _patient_map(args.patient_map)
        recordings = []
        for path in paths:
            if path.suffix == ".csv" and args.csv_sampling_rate:
                rec = read_csv(path, args.csv_sampling_rate, max_duration_s=args.max_duration)
            else:
                rec = read_recording(path, args.max_duration)
            patient = mapping.get(str(path), mapping.get(path.name, default_patient_id(path)))
            if rec.skipped_channels:
                logging.getLogger(__name__).info(
                    "%s: channels outside the contract not sent: %s", path, ", ".join(rec.skipped_channels)
                )
            recordings.append((patient, rec))
        start = parse_start(args.start, speed, max(rec.duration_s for _, rec in recordings))
        streams = [recording_events(rec, patient, start, args.chunk_s) for patient, rec in recordings]
        total = sum(event_count(rec, args.chunk_s) for _, rec in recordings)
        patients = len(recordings)
    with producer(settings) as prod:
        summary = replay(prod, streams, speed, total, patients, progress=not args.no_progress)
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


def _patient_map(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    with open(path, newline="") as handle:
        return {row[0].strip(): row[1].strip() for row in csv.reader(handle) if len(row) >= 2 and row[0].strip()}


def _cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    from streams.capture import capture
    from streams.kafka import consumer

    cons = consumer(settings, *args.topics, auto_offset_reset="earliest" if args.from_beginning else "latest")
    try:
        count = capture(cons, args.out, args.topics, args.max, args.idle_s)
    finally:
        cons.close()
    print(f"captured {count} messages from {', '.join(args.topics)} to {args.out}")
    return 0


def _cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from streams.kafka import consumer
    from streams.tail import render

    cons = consumer(settings, args.topic, auto_offset_reset="earliest" if args.from_beginning else "latest")
    stop = _stop_event()
    seen, last = 0, time.monotonic()
    try:
        while not stop.is_set():
            for messages in cons.poll(timeout_ms=200).values():
                for m in messages:
                    print(render(m.topic, m.key, m.value), flush=True)
                    seen += 1
                    last = time.monotonic()
                    if args.max is not None and seen >= args.max:
                        return 0
            if args.idle_s is not None and time.monotonic() - last > args.idle_s:
                return 0
    finally:
        cons.close()
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from faust import Worker

    from streams.app import create_app
    from streams.kafka import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    Worker(app, loglevel="INFO" if not args.verbose else "DEBUG").execute_from_commandline()
    return 0


def _cmd_ec57(args: argparse.Namespace, settings: Settings) -> int:
    from models import ec57

    argv = ["--data", str(args.data)] + (["--out", str(args.out)] if args.out else [])
    return ec57.main(argv)


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from models.artifact import SHIPPED
    from models.train import train

    train(
        args.data, args.out or SHIPPED, seed=args.seed, minutes=args.minutes, epochs=args.epochs, threads=args.threads
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from models.artifact import SHIPPED
    from models.evaluate import evaluate

    evaluate(args.model or SHIPPED, args.data, args.out, bootstrap=args.bootstrap)
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    return run_demo(settings, args.data, args.speed, args.duration)


def _cmd_contracts(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import BaseModel

    from streams.records import Alert, AlertAck, DeadLetter, ImagingEvent, NoteEvent, RiskScore, VitalsEvent

    args.out.mkdir(parents=True, exist_ok=True)
    schemas: dict[str, type[BaseModel]] = {
        topics.VITALS: VitalsEvent,
        topics.IMAGING: ImagingEvent,
        topics.NOTES: NoteEvent,
        topics.RISK_SCORES: RiskScore,
        topics.ALERTS: Alert,
        topics.ALERTS_ACK: AlertAck,
        "dlq": DeadLetter,
    }
    for name, cls in schemas.items():
        (args.out / f"{name}.schema.json").write_text(json.dumps(cls.model_json_schema(by_alias=True), indent=2))
    print(f"wrote {len(schemas)} JSON Schemas to {args.out} (ecg.waveform is binary: see docs/contracts.md)")
    return 0


COMMANDS = {
    "broker": _cmd_broker,
    "topics": _cmd_topics,
    "replay": _cmd_replay,
    "capture": _cmd_capture,
    "tail": _cmd_tail,
    "worker": _cmd_worker,
    "ec57": _cmd_ec57,
    "demo": _cmd_demo,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "contracts": _cmd_contracts,
}

if __name__ == "__main__":
    sys.exit(main())
