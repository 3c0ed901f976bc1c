"""Consumer tooling: ``cardiowatch alerts`` follows the alerts live and acknowledges them.

This module is also the ``cardiowatch`` console script: the command line of :mod:`streams.cli` plus the
``alerts`` command (``alerts`` builds on ``streams``, never the other way round).

    cardiowatch alerts                                   # follow new alerts
    cardiowatch alerts --from-beginning --idle-s 5       # the whole audit trail, then stop
    cardiowatch alerts --ack 'bed-7:asystole:2026-11-23T10:00:04.120Z' --user rn.lee --reason "at bedside"
    cardiowatch alerts --ack ID --action silence --silence-s 120 --user rn.lee
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from alerts.policy import RULES
from streams import cli as streams_cli
from streams import topics
from streams.kafka import consumer, producer
from streams.records import Alert, AlertAck
from streams.settings import Settings

#: ANSI colours of the priorities on a terminal (IEC 60601-1-8 colours: red, yellow, cyan).
_COLOURS = {"high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m"}


def patient_of(alert_id: str) -> str:
    """The patient id inside a deterministic alert id (``patient:kind:onset``)."""
    for kind in RULES:
        head, sep, _ = alert_id.rpartition(f":{kind}:")
        if sep:
            return head
    raise ValueError(f"{alert_id!r} is not a cardiowatch alert id (patient:kind:onset)")


def render(alert: Alert, colour: bool = False) -> str:
    """One line per change of state: time, priority, patient, kind, state, revision, message, evidence."""
    evidence = " ".join(f"{k}={v}" for k, v in alert.evidence.items() if not isinstance(v, dict | list))
    start, end = (_COLOURS.get(alert.priority.value, ""), "\033[0m") if colour else ("", "")
    return (
        f"{alert.time:%H:%M:%S} {start}{alert.priority.value.upper():<6}{end} {alert.patient_id:<16} "
        f"{alert.kind:<24} {alert.state.value:<12} r{alert.revision:<3} {alert.message}"
        + (f"  [{evidence[:160]}]" if evidence else "")
        + f"  id={alert.alert_id}"
    )


def follow(
    settings: Settings, from_beginning: bool, patient: str | None, idle_s: float | None, limit: int | None
) -> int:
    """Print every alert record as it arrives; stop after ``idle_s`` quiet seconds or ``limit`` records."""
    cons = consumer(settings, topics.ALERTS, auto_offset_reset="earliest" if from_beginning else "latest")
    seen, last = 0, time.monotonic()
    colour = sys.stdout.isatty()
    try:
        while True:
            for messages in cons.poll(timeout_ms=200).values():
                for m in messages:
                    last = time.monotonic()
                    try:
                        alert = Alert.model_validate_json(m.value)
                    except ValueError as err:
                        print(f"(not an alert record: {err})", file=sys.stderr)
                        continue
                    if patient is not None and alert.patient_id != patient:
                        continue
                    print(render(alert, colour), flush=True)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return 0
            if idle_s is not None and time.monotonic() - last > idle_s:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        cons.close()


def acknowledge(
    settings: Settings, alert_id: str, action: str, user: str, reason: str, silence_s: float | None
) -> AlertAck:
    """Send one action on an alert to ``alerts.ack`` (keyed by its patient, as every patient event)."""
    ack = AlertAck.model_validate(
        {
            "schema": "cardiowatch.alert_ack",
            "version": 1,
            "alert_id": alert_id,
            "patient_id": patient_of(alert_id),
            "action": action,
            "user": user,
            "reason": reason,
            "silence_s": silence_s,
            "time": datetime.now(UTC),
        }
    )
    prod = producer(settings)
    try:
        prod.send(topics.ALERTS_ACK, key=ack.patient_id.encode(), value=ack.model_dump_json(by_alias=True).encode())
        prod.flush(timeout=30)
    finally:
        prod.close()
    return ack


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest alert record (the audit trail)")
    p.add_argument("--patient", help="only this patient's alerts")
    p.add_argument("--idle-s", type=float, help="stop when nothing arrived for this long (default: never)")
    p.add_argument("--max", type=int, help="stop after this many records")
    p.add_argument("--ack", metavar="ALERT_ID", help="act on this alert instead of following")
    p.add_argument("--action", choices=["acknowledge", "silence", "resolve"], default="acknowledge")
    p.add_argument("--user", help="who acts (required with --ack)")
    p.add_argument("--reason", default="", help="why (kept in the audit trail)")
    p.add_argument("--silence-s", type=float, help="with --action silence: for how long, seconds (<= 3600)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.ack is None:
        return follow(settings, args.from_beginning, args.patient, args.idle_s, args.max)
    if not args.user:
        print("cardiowatch alerts: --ack needs --user", file=sys.stderr)
        return 2
    if args.action == "silence" and not args.silence_s:
        print("cardiowatch alerts: --action silence needs --silence-s", file=sys.stderr)
        return 2
    try:
        ack = acknowledge(settings, args.ack, args.action, args.user, args.reason, args.silence_s)
    except ValueError as err:
        print(f"cardiowatch alerts: {err}", file=sys.stderr)
        return 2
    print(f"sent {ack.action} of {ack.alert_id} by {ack.user} to {topics.ALERTS_ACK}")
    return 0


COMMAND: streams_cli.Command = (
    "alerts",
    "Follow alerts live (priority, patient, kind, state, evidence), or acknowledge, silence or resolve one.",
    _configure,
    _run,
)


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="a folder laid out like shared/data")
    p.add_argument("--out", type=Path, required=True, help="folder for alarms.json and alarms.md")
    p.add_argument("--records", nargs="*", default=[], help="record paths relative to --data (default: all annotated)")
    p.add_argument("--minutes", type=float, help="replay only the first MINUTES of each annotated record")
    p.add_argument("--speed", type=float, default=20.0, help="replay speed, x real time (default 20)")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="longest wait for the pipeline")


def _run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import evaluate  # reads WFDB annotations with models.ec57's codes: imported when used

    return evaluate.run(args, settings)


EVALUATE: streams_cli.Command = (
    "evaluate-alarms",
    "Replay annotated recordings through broker + worker and judge the alarms per kind against the "
    "annotations, beside a naive threshold baseline (alarms.json, alarms.md).",
    _configure_evaluate,
    _run_evaluate,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cardiowatch`` console script."""
    return streams_cli.main(argv, extra=[COMMAND, EVALUATE])


if __name__ == "__main__":
    sys.exit(main())
