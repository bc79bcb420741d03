"""Fuzz ``nvcodec info`` and ``nvcodec decode`` with mutated real .nvc files (nvcodec/fuzz.py).

Run:  nice -n 19 .venv/bin/python benchmarks/fuzz_decoders.py --inputs 100000 [--seed S] [--jobs N]
      (--first N starts at input N, to split a run)
      .venv/bin/python benchmarks/fuzz_decoders.py --seed S --replay 1234   (one input, traceback)

Allowed outcomes are success and NvcodecError subclasses. Each worker process caps its address
space (RLIMIT_AS, ``--memory-cap`` GiB: an allocation past it fails and counts as a bug) and
runs inputs one at a time; the parent kills a worker whose input runs past ``--timeout``
seconds (a hang) and replaces a worker that dies (a crash). Input N is a pure function of
(--seed, N), so any finding is replayed by its number. Prints counts per outcome, mutation and
error message class, the slowest inputs and the workers' peak RSS; ``--json`` saves them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BUG = "BUG"


def fuzz_input(number: int, seed: int, corpus: list[Any], work: Path) -> dict[str, Any]:
    """Make input ``number`` and run the decoders on it; a non-NvcodecError is a finding."""
    from nvcodec.fuzz import message_class, mutate, run_decoders

    rng = random.Random(f"{seed}:{number}")
    start = rng.choice(corpus)
    mutation, data = mutate(start, corpus, rng)
    path = work / "input.nvc"
    path.write_bytes(data)
    result: dict[str, Any] = {"input": number, "seed": start.name, "mutation": mutation}
    began = time.perf_counter()
    try:
        for step, outcome in run_decoders(path, work / f"output{start.suffix}").items():
            result[step] = outcome.result
            if outcome.message:
                result[f"{step}_message"] = message_class(outcome.message)
    except Exception as e:
        result["info"] = result["decode"] = BUG
        result["bug"] = f"{type(e).__name__}: {message_class(str(e))}"
        result["where"] = traceback.format_exc(limit=-3).splitlines()[-5:]
    result["seconds"] = time.perf_counter() - began
    result["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def corpus_in(directory: Path) -> list[Any]:
    import torch

    from nvcodec.fuzz import build_corpus

    torch.set_num_threads(1)
    return build_corpus(SAMPLES, directory)


def worker(conn: Connection, corpus_dir: Path, seed: int, cap_bytes: int) -> None:
    """Run the inputs the parent sends (None ends) under an address-space cap."""
    resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))
    from nvcodec.fuzz import models_loaded_once

    corpus = corpus_in(corpus_dir)
    with tempfile.TemporaryDirectory() as work, models_loaded_once():
        conn.send("ready")
        while (number := conn.recv()) is not None:
            conn.send(fuzz_input(number, seed, corpus, Path(work)))


class Pool:
    """Worker processes, each busy with at most one input, replaced when killed or dead."""

    def __init__(self, jobs: int, corpus_dir: Path, seed: int, cap_bytes: int) -> None:
        self.context = multiprocessing.get_context("spawn")  # no fork after torch's threads
        self.args = (corpus_dir, seed, cap_bytes)
        self.idle: list[tuple[BaseProcess, Connection]] = []
        self.busy: dict[Connection, tuple[BaseProcess, int, float]] = {}
        for _ in range(jobs):
            self.idle.append(self.start())

    def start(self) -> tuple[BaseProcess, Connection]:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker, args=(child, *self.args), daemon=True)
        process.start()
        child.close()
        if parent.recv() != "ready":
            raise RuntimeError("fuzz worker failed to start")
        return process, parent

    def submit(self, number: int) -> None:
        process, conn = self.idle.pop()
        conn.send(number)
        self.busy[conn] = (process, number, time.monotonic())

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        """Results that arrived, plus a hang for each input over ``timeout`` seconds and a
        crash for each worker that died."""
        deadline = min(started for _, _, started in self.busy.values()) + timeout
        ready = wait(list(self.busy), max(0.0, deadline - time.monotonic()))
        results = []
        for conn in ready:
            process, number, _ = self.busy.pop(conn)
            try:
                results.append(conn.recv())
                self.idle.append((process, conn))
            except EOFError:
                process.join()
                results.append(self.failed(number, f"crash (exit code {process.exitcode})"))
                self.idle.append(self.start())
        now = time.monotonic()
        for conn, (process, number, started) in list(self.busy.items()):
            if now - started > timeout:
                del self.busy[conn]
                process.kill()
                process.join()
                results.append(self.failed(number, f"hang (over {timeout:g} s)", now - started))
                self.idle.append(self.start())
        return results

    @staticmethod
    def failed(number: int, what: str, seconds: float = 0.0) -> dict[str, Any]:
        return {"input": number, "info": BUG, "decode": BUG, "bug": what, "seconds": seconds}

    def close(self) -> None:
        for process, conn in self.idle:
            conn.send(None)
            process.join()


def summarize(results: list[dict[str, Any]], elapsed: float, args: argparse.Namespace) -> dict:
    bugs = [r for r in results if r["decode"] == BUG]
    slowest = sorted(results, key=lambda r: -r["seconds"])[:5]
    return {
        "inputs": len(results),
        "seed": args.seed,
        "jobs": args.jobs,
        "seconds": round(elapsed, 1),
        "inputs_per_second": round(len(results) / elapsed, 2),
        "memory_cap_gib": args.memory_cap,
        "timeout_s": args.timeout,
        "peak_rss_mib": round(max(r.get("maxrss_mib", 0) for r in results), 1),
        "max_seconds_per_input": round(slowest[0]["seconds"], 3),
        "slowest": [(r["input"], r.get("mutation"), round(r["seconds"], 3)) for r in slowest],
        "info": dict(Counter(r["info"] for r in results).most_common()),
        "decode": dict(Counter(r["decode"] for r in results).most_common()),
        "mutations": dict(
            Counter(r.get("mutation", "?").split("+")[0] for r in results).most_common()
        ),
        "decode_messages": dict(
            Counter(r["decode_message"] for r in results if "decode_message" in r).most_common(40)
        ),
        "bugs": dict(Counter(r["bug"] for r in bugs).most_common()),
        "bug_inputs": [(r["input"], r.get("seed"), r.get("mutation"), r["bug"]) for r in bugs][:50],
    }


def run(args: argparse.Namespace) -> dict:
    cap = int(args.memory_cap * (1 << 30))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as corpus_dir:
        corpus_in(Path(corpus_dir))  # encoded once, here, with the installed models
        pool = Pool(args.jobs, Path(corpus_dir), args.seed, cap)
        began = time.monotonic()
        next_input, end = args.first, args.first + args.inputs
        while len(results) < args.inputs:
            while pool.idle and next_input < end:
                pool.submit(next_input)
                next_input += 1
            for result in pool.collect(args.timeout):
                results.append(result)
                if result["decode"] == BUG:
                    print(f"input {result['input']}: {result['bug']}", flush=True)
                if len(results) % args.progress == 0:
                    elapsed = time.monotonic() - began
                    bugs = sum(r["decode"] == BUG for r in results)
                    print(f"{len(results)} inputs, {elapsed:.0f} s, {bugs} bugs", flush=True)
        pool.close()
    return summarize(results, time.monotonic() - began, args)


def replay(args: argparse.Namespace) -> None:
    """Run one input in this process and show its traceback (if any)."""
    from nvcodec.fuzz import message_class, models_loaded_once, mutate, run_decoders

    cap = int(args.memory_cap * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    with tempfile.TemporaryDirectory() as work:
        corpus = corpus_in(Path(work) / "corpus")
        rng = random.Random(f"{args.seed}:{args.replay}")
        start = rng.choice(corpus)
        mutation, data = mutate(start, corpus, rng)
        print(f"input {args.replay}: {start.name}, {mutation}, {len(data)} bytes")
        path = Path(work) / "input.nvc"
        path.write_bytes(data)
        if args.save:
            Path(args.save).write_bytes(data)
        with models_loaded_once():
            try:
                print(run_decoders(path, Path(work) / f"output{start.suffix}"))
            except Exception as e:
                traceback.print_exc()
                print(message_class(str(e)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="number of the first input")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per input")
    parser.add_argument("--memory-cap", type=float, default=2.0, help="GiB of address space")
    parser.add_argument("--progress", type=int, default=1000, help="print every N inputs")
    parser.add_argument("--json", type=Path, help="save the summary here")
    parser.add_argument("--replay", type=int, help="run only this input, with its traceback")
    parser.add_argument("--save", type=Path, help="with --replay: write the input here")
    args = parser.parse_args()
    if args.replay is not None:
        replay(args)
        return
    summary = run(args)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    sys.exit(1 if summary["bugs"] else 0)


if __name__ == "__main__":
    main()
