"""Cost of judging a preset child: sample, layer dicts, analyze, update, log.

Drives the FNAS oracle on the paper's MNIST space with a spec no child can
meet, so every sample is rejected, and prints the median wall time of one
rejection cycle for children seen for the first time (taken from
consecutive rejected.jsonl timestamps), with the median of each part:
sample (the controller's sample and its values), layer dicts (the preset
fast path, or with --build a Keras build with placeholder weights and its
reading), analyze (the latency model behind the constraint's cache),
update (the controller's REINFORCE step), log (the rejected.jsonl line)
and the rest. Then times `space_report()` of the whole MNIST space (6,561
children). Each figure is printed per run and as the median of --runs
runs, with the machine's load average: the figures are wall times.

Run:
    .venv/bin/python benchmarks/rejection_cost.py
    .venv/bin/python benchmarks/rejection_cost.py --children=500 --runs=5
    .venv/bin/python benchmarks/rejection_cost.py --build  # a build_model
"""

from __future__ import annotations

import collections
import os
import tempfile
import time

import entry
import numpy as np
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("children", 300, "Rejections to time per run.")
flags.DEFINE_integer("runs", 3, "Runs; figures are medians over them.")
flags.DEFINE_string("device", "xc7z020", "FPGA part or board name.")
flags.DEFINE_float("latency_spec_ms", 0.5,
                   "A spec below the space's fastest child (0.88 ms).")
flags.DEFINE_bool("build", False,
                  "Judge children as a user's build_model(hp) is judged: a "
                  "Keras build each (the path the presets skip).")
flags.DEFINE_bool("space_report", True,
                  "Also time space_report() of all 6,561 MNIST children "
                  "(not with --build).")

PARTS = ("sample", "layer dicts", "analyze", "update", "log")

entry.check_flags(children=entry.at_least(2), device=entry.device,
                  latency_spec_ms=entry.positive)


def main(argv):
    del argv
    print(f"load average at start: {_load()}")
    if FLAGS.space_report and not FLAGS.build:
        seconds = [space_report_seconds() for _ in range(FLAGS.runs)]
        for run, (wall, cpu) in enumerate(seconds, 1):
            print(f"run {run}: space_report_s: {wall:.2f} (CPU {cpu:.2f})")
        wall, cpu = np.median(seconds, axis=0)
        print(f"space_report_s_median: {wall:.2f} (CPU {cpu:.2f}; all "
              f"6,561 MNIST children, {FLAGS.device})")
    runs = [rejection_run() for _ in range(FLAGS.runs)]
    for run, (cycle, cpu, parts) in enumerate(runs, 1):
        shown = " | ".join(f"{p} {parts[p]:.3f}" for p in PARTS)
        print(f"run {run}: rejection_ms_median_new_child: {cycle:.2f} "
              f"({shown}); CPU ms per rejection {cpu:.2f}")
    cycle = float(np.median([c for c, _, _ in runs]))
    cpu = float(np.median([c for _, c, _ in runs]))
    parts = {p: float(np.median([r[p] for _, _, r in runs])) for p in PARTS}
    rest = cycle - sum(parts.values())
    path = "Keras build" if FLAGS.build else "preset fast path"
    print(f"rejection_ms_median: {cycle:.2f} ({path}, median of "
          f"{FLAGS.runs} runs of {FLAGS.children} rejections)")
    for p in PARTS:
        print(f"  {p:<12} {parts[p]:8.3f} ms")
    print(f"  {'the rest':<12} {rest:8.3f} ms")
    print(f"CPU ms per rejection (mean, all parts): {cpu:.2f}")
    print(f"load average at end: {_load()} on {os.cpu_count()} CPUs")


def new_tuner(directory: str, max_rejections: int = 1):
    """An FNAS tuner on the MNIST preset (a plain HyperModel with --build)."""
    import keras_tuner

    import fnas_keras
    from fnas_keras import hypermodel

    preset = hypermodel.FNASHyperModel("mnist")
    model_space = preset
    if FLAGS.build:

        class Built(keras_tuner.HyperModel):
            def build(self, hp):
                return preset.build(hp)

        model_space = Built()
    return fnas_keras.FNAS(
        model_space,
        objective="val_accuracy",
        device=FLAGS.device,
        latency_spec_ms=FLAGS.latency_spec_ms,
        max_rejections=max_rejections,
        directory=directory,
        overwrite=True,
        seed=0,
    )


def space_report_seconds() -> tuple[float, float]:
    """Wall and CPU seconds of space_report() on a fresh constraint cache."""
    with tempfile.TemporaryDirectory() as directory:
        tuner = new_tuner(directory)
        started, cpu = time.perf_counter(), time.process_time()
        report = tuner.space_report()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    assert report.exhaustive and report.evaluated == 6561, report
    return wall, cpu


def rejection_run() -> tuple[float, float, dict]:
    """One run, in ms: the median new-child cycle, the mean CPU time per
    rejection and each part's median."""
    import keras_tuner

    from fnas_keras import storage

    with tempfile.TemporaryDirectory() as directory:
        tuner = new_tuner(directory, FLAGS.children)
        oracle = tuner.oracle
        oracle.verbose = 0
        tuner._populate_initial_space()
        times = collections.defaultdict(list)
        oracle.gate = _timer(tuner._gate, times["gate"])
        patches = [
            (oracle._decisions, "sync", "sync"),
            (oracle.controller, "sample", "sample"),
            (oracle._decisions, "values_for", "values_for"),
            (tuner.constraint, "check_layers", "analyze"),
            (oracle.controller, "update", "update"),
            (storage, "append_jsonl", "log"),
        ]
        cpu = time.process_time()
        with _timed(patches, times):
            try:
                oracle.populate_space("0")
            except keras_tuner.errors.FatalValueError:
                pass  # Every child is over the spec, as intended.
        cpu = time.process_time() - cpu
        records = tuner.rejected()
    cycles_ms = np.diff([r["time"] for r in records]) * 1000
    fresh = np.array([r["gate_s"] > 0 for r in records[1:]])
    cpu_ms = cpu * 1000 / max(len(records), 1)
    return float(np.median(cycles_ms[fresh])), cpu_ms, _parts(times)


def _parts(times: dict) -> dict:
    """Each part's median per child, in ms.

    The gate makes the layer dicts and then calls the constraint once, so
    a child's layer-dict time is its gate time less its analyze time.
    """
    def ms(name):
        return float(np.median(times[name])) * 1000 if times[name] else 0.0

    dicts = np.subtract(times["gate"], times["analyze"]) * 1000
    return {
        "sample": ms("sync") + ms("sample") + ms("values_for"),
        "layer dicts": float(np.median(dicts)),
        "analyze": ms("analyze"),
        "update": ms("update"),
        "log": ms("log"),
    }


class _timed:
    """Wraps attributes to record their call times; restores them after."""

    def __init__(self, patches, times):
        self.patches = patches
        self.times = times
        self.saved = []

    def __enter__(self):
        for owner, name, part in self.patches:
            original = getattr(owner, name)
            self.saved.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, _timer(original, self.times[part]))

    def __exit__(self, *exc):
        for owner, name, saved in reversed(self.saved):
            if saved is None:
                delattr(owner, name)
            else:
                setattr(owner, name, saved)


def _timer(fn, out: list):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            out.append(time.perf_counter() - started)

    return timed


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    entry.run(main)
