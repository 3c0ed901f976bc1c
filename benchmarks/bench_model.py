"""Inference benchmark: the engine against batch size 1 and against plain eager calls, same model, same run.

Input: real 2-lead MIT-BIH 10-s windows at 360 Hz, as the worker hands them over (resampling to 100 Hz and
filtering are part of every call). Scored four ways, back to back in one process:

(a) **eager**: one ``RiskModel.predict([window])`` call per window, in the caller's thread, in turn (what a
    per-event worker without batching does) -- the baseline;
(b) **engine, batch 1**: :class:`models.engine.InferenceEngine` with a preferred batch of 1;
(c) **engine**: preferred batch ``--batch`` (64), at most ``--delay-ms`` (5 ms) of queueing;
(d) **engine + TorchScript**: (c) running the traced network (CPU only).

Two loads for each: **saturation** -- every window submitted at once, giving windows/s; and **paced** --
windows offered at ``--rate`` per second (500/s: 1,000 patients at a 2-s hop) for ``--seconds``, each
window's latency measured from its scheduled arrival to its result, so a scorer that falls behind shows it
in its p99. Ratios are printed against (a). The goal on the 2-core development CPU: >= 500 windows/s with
p99 <= 250 ms at the engine.

Usage: python benchmarks/bench_model.py [--data ../shared/data] [--device auto|cpu|cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import wfdb

from models import artifact
from models.engine import InferenceEngine, pick_device
from models.preprocess import EcgInput

RECORDS = ("106", "119", "201", "208", "220", "223")


def windows(data: Path, n: int) -> list[EcgInput]:
    """``n`` consecutive 10-s windows taken round-robin from a few MIT-BIH records, 360 Hz, 2 leads."""
    out = []
    recs = [wfdb.rdrecord(str(data / "mitdb" / r)) for r in RECORDS]
    for i in range(n):
        rec = recs[i % len(recs)]
        start = (i // len(recs)) * 3600 % (rec.sig_len - 3600)
        out.append(EcgInput(tuple(rec.sig_name), rec.p_signal[start : start + 3600].T.astype(np.float32), 360.0))
    return out


def saturation(score_all: Callable[[list[EcgInput]], None], ws: list[EcgInput]) -> float:
    """Windows per second when every window is offered at once."""
    started = time.perf_counter()
    score_all(ws)
    return len(ws) / (time.perf_counter() - started)


def paced_eager(model: artifact.RiskModel, ws: list[EcgInput], rate: float, seconds: float) -> dict[str, float]:
    """Eager calls at an offered rate: latency from each window's scheduled arrival to its result."""
    n = int(rate * seconds)
    lat = []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        model.predict([ws[i % len(ws)]])
        lat.append(time.perf_counter() - due)
    return summary(lat, n, time.perf_counter() - t0)


def paced_engine(engine: InferenceEngine, ws: list[EcgInput], rate: float, seconds: float) -> dict[str, float]:
    """The engine at an offered rate, windows submitted by a pacing thread."""
    n = int(rate * seconds)
    lat = [0.0] * n
    done = threading.Semaphore(0)
    t0 = time.perf_counter() + 0.05

    def finish(i: int, due: float) -> Callable[[object], None]:
        def callback(_: object) -> None:
            lat[i] = time.perf_counter() - due
            done.release()

        return callback

    for i in range(n):
        due = t0 + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        engine.submit(ws[i % len(ws)]).add_done_callback(finish(i, due))
    for _ in range(n):
        done.acquire()
    return summary(lat, n, time.perf_counter() - t0)


def summary(lat: list[float], n: int, elapsed: float) -> dict[str, float]:
    """Latency percentiles (ms) and the rate achieved."""
    a = np.asarray(lat) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "achieved": n / elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--model", type=Path, default=artifact.SHIPPED)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--delay-ms", type=float, default=5.0)
    p.add_argument("--windows", type=int, default=1024, help="windows per saturation pass")
    p.add_argument("--rate", type=float, default=500.0, help="offered windows/s in the paced runs")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each paced run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model = artifact.load(args.model, device=device)
    ws = windows(args.data, args.windows)
    print(f"model {model.version} on {device} ({torch.get_num_threads()} CPU threads); {len(ws)} real 10-s windows")
    model.predict(ws[:64])  # warm-up

    rows: dict[str, dict[str, float]] = {}

    def eager_all(batch: list[EcgInput]) -> None:
        for w in batch:
            model.predict([w])

    rows["(a) eager, one call per window"] = {"saturation": saturation(eager_all, ws[: max(len(ws) // 4, 64)])}
    rows["(a) eager, one call per window"] |= paced_eager(model, ws, args.rate, args.seconds)
    configs = {
        "(b) engine, batch 1": dict(preferred_batch=1, max_delay_s=0.0),
        f"(c) engine, batch {args.batch}, {args.delay_ms:g} ms": dict(
            preferred_batch=args.batch, max_delay_s=args.delay_ms / 1000
        ),
    }
    if device.type == "cpu":
        configs[f"(d) engine + TorchScript, batch {args.batch}"] = dict(
            preferred_batch=args.batch, max_delay_s=args.delay_ms / 1000, torchscript=True
        )
    for name, kw in configs.items():
        engine = InferenceEngine(artifact.load(args.model), device=str(device), **kw)  # type: ignore[arg-type]
        try:
            engine.predict_many(ws[:64])  # warm-up
            rows[name] = {"saturation": saturation(engine.predict_many, ws)}
            rows[name] |= paced_engine(engine, ws, args.rate, args.seconds)
        finally:
            engine.close()
    base = rows["(a) eager, one call per window"]
    print(f"\npaced load: {args.rate:g} windows/s offered for {args.seconds:g} s\n")
    head = ("scorer", "windows/s", "x eager", "achieved", "p50 ms", "p99 ms", "x eager p99")
    print(f"{head[0]:<40} " + " ".join(f"{h:>10}" for h in head[1:]))
    for name, r in rows.items():
        print(
            f"{name:<40} {r['saturation']:>10.0f} {r['saturation'] / base['saturation']:>10.2f} "
            f"{r['achieved']:>10.0f} {r['p50_ms']:>10.1f} {r['p99_ms']:>10.1f} {base['p99_ms'] / r['p99_ms']:>10.2f}"
        )
    best = max((r for n, r in rows.items() if "engine" in n and "batch 1" not in n), key=lambda r: r["saturation"])
    met = best["saturation"] >= 500 and best["p99_ms"] <= 250 and best["achieved"] >= 0.97 * args.rate
    print(f"\ngoal (>= 500 windows/s, p99 <= 250 ms at {args.rate:g}/s offered): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
