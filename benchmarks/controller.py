"""Does the controller earn its keep? FNAS against constrained random search.

Runs the FNAS tuner and a constrained random search (the same tuner and gate
with `controller_options={"epsilon": 1.0}`: uniform architectures, the same
rejections) at equal trained children, once per seed, each run in its own
process (`--processes` at a time). Prints, per seed, the best and the mean
validation accuracy of the trained children (all within the spec), then the
mean and standard deviation of both over the seeds.

Run:
    .venv/bin/python benchmarks/controller.py
    .venv/bin/python benchmarks/controller.py --children=48 --seeds=1,2,3,4,5,6
    .venv/bin/python benchmarks/controller.py --reward=fnas  # the paper's
    .venv/bin/python benchmarks/controller.py --feasible_fraction=0.18
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import entry
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["1", "2", "3", "4", "5", "6"], "Seeds to run.")
flags.DEFINE_list("methods", ["fnas", "random"],
                  "fnas (the controller) and/or random (epsilon = 1).")
flags.DEFINE_string("reward", None,
                    "FNAS reward rule; by default the tuner's default.")
flags.DEFINE_integer("children", 16, "Trained children per run.")
flags.DEFINE_integer("epochs", 6, "Training epochs per child.")
flags.DEFINE_integer("batch_size", 16, "Training batch size.")
flags.DEFINE_integer("train_examples", None,
                     "Use only the first N training examples.")
flags.DEFINE_string("dataset", "digits", "digits (offline) or a TFDS name.")
flags.DEFINE_enum("preset", "mnist", ["mnist", "cifar10", "imagenet"],
                  "Search space.")
flags.DEFINE_string("device", "xc7z020", "FPGA part or board name.")
flags.DEFINE_enum("bits", "16", ["8", "16", "32"], "Datapath width.")
flags.DEFINE_float("latency_spec_ms", 7.0, "Latency spec.")
flags.DEFINE_float("feasible_fraction", None,
                   "If set, the spec is instead the latency that this share "
                   "of a uniform sample of the space meets.")
flags.DEFINE_integer("space_samples", 300,
                     "Architectures sampled to pick the spec from "
                     "--feasible_fraction.")
flags.DEFINE_integer("processes", 2, "Runs at a time.")
flags.DEFINE_string("directory", None, "Where projects are kept (temp dir).")
flags.DEFINE_string("one", None, "Internal: run one METHOD:SEED, print JSON.")


def _tuner(method: str, seed: int, spec: float, directory: str):
    import fnas_keras
    from fnas_keras import data
    from fnas_keras import hypermodel

    info = data.info(FLAGS.dataset)
    space = hypermodel.FNASHyperModel(
        FLAGS.preset, input_shape=info.input_shape,
        num_classes=info.num_classes)
    options = {}
    if FLAGS.reward is not None:
        options["reward"] = FLAGS.reward
    if method == "random":
        options["controller_options"] = {"epsilon": 1.0}
    return fnas_keras.FNAS(
        space, objective="val_accuracy", max_trials=FLAGS.children,
        device=FLAGS.device, latency_spec_ms=spec, bits=int(FLAGS.bits),
        seed=seed, directory=directory, project_name=f"{method}_{seed}",
        overwrite=True, display="lines", **options)


def run_one(method: str, seed: int, spec: float, directory: str) -> dict:
    """Searches once; returns the trained children's scores and counts."""
    import keras

    from fnas_keras import data

    keras.utils.set_random_seed(seed)
    tuner = _tuner(method, seed, spec, directory)
    tuner.oracle.verbose = 0
    args, kwargs = data.fit_data(FLAGS.dataset, batch_size=FLAGS.batch_size,
                                 limit=FLAGS.train_examples)
    started = time.time()
    tuner.search(*args, epochs=FLAGS.epochs, verbose=0, **kwargs)
    rows = [r for r in tuner.trials_table() if r["status"] == "COMPLETED"]
    return {"method": method, "seed": seed,
            "scores": [r["score"] for r in rows],
            "latencies": [r["latency_ms"] for r in rows],
            "rejected": tuner.oracle.num_rejected,
            "seconds": time.time() - started}


def pick_spec() -> float:
    """The spec from the flags: given, or the feasible_fraction quantile."""
    if FLAGS.feasible_fraction is None:
        return FLAGS.latency_spec_ms
    import numpy as np

    from fnas_keras import space

    tuner = _tuner("random", 0, FLAGS.latency_spec_ms,
                   tempfile.mkdtemp())
    report = space.report(tuner.hypermodel, tuner.oracle.get_space(),
                          tuner.constraint, max_enumerate=0,
                          samples=FLAGS.space_samples)
    return float(np.quantile(report.latencies_ms, FLAGS.feasible_fraction))


def _spawn(method: str, seed: int, spec: float, directory: str) -> dict:
    flags_ = [f"--{name}={FLAGS[name].serialize().split('=', 1)[1]}"
              for name in ("children", "epochs", "batch_size", "dataset",
                           "preset", "device", "bits")]
    flags_ += [f for f in (FLAGS["reward"].serialize(),
                           FLAGS["train_examples"].serialize()) if f]
    command = [sys.executable, os.path.abspath(__file__), *flags_,
               f"--latency_spec_ms={spec!r}", f"--directory={directory}",
               f"--one={method}:{seed}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{method} seed {seed} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stats(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {spread:.3f}"


def table(results: list[dict]) -> str:
    """Per-seed best and mean, then mean and spread over the seeds."""
    lines = [f"{'method':>8} {'seed':>5} {'trained':>8} {'rejected':>9} "
             f"{'best':>6} {'mean':>6} {'wall_s':>7}"]
    for r in sorted(results, key=lambda r: (r["method"], r["seed"])):
        lines.append(
            f"{r['method']:>8} {r['seed']:>5} {len(r['scores']):>8} "
            f"{r['rejected']:>9} {max(r['scores']):>6.3f} "
            f"{statistics.mean(r['scores']):>6.3f} {r['seconds']:>7.0f}")
    lines.append("over seeds (mean +- std):")
    for method in sorted({r["method"] for r in results}):
        mine = [r for r in results if r["method"] == method]
        best = _stats([max(r["scores"]) for r in mine])
        mean = _stats([statistics.mean(r["scores"]) for r in mine])
        lines.append(f"{method:>8} best {best}  mean of trained {mean}")
    return "\n".join(lines)


def main(argv):
    del argv
    directory = FLAGS.directory or tempfile.mkdtemp(prefix="fnas_ctl_")
    if FLAGS.one:
        method, seed = FLAGS.one.split(":")
        print(json.dumps(run_one(method, int(seed), FLAGS.latency_spec_ms,
                                 directory)))
        return
    spec = pick_spec()
    print(f"{FLAGS.dataset}, {FLAGS.preset} space, {FLAGS.device} at "
          f"{FLAGS.bits} bits, spec {spec:.3f} ms, {FLAGS.children} trained "
          f"children of {FLAGS.epochs} epochs, reward "
          f"{FLAGS.reward or 'default'}, seeds {','.join(FLAGS.seeds)}")
    started = time.time()
    jobs = [(m, int(s)) for s in FLAGS.seeds for m in FLAGS.methods]
    with concurrent.futures.ThreadPoolExecutor(FLAGS.processes) as pool:
        results = list(pool.map(
            lambda job: _spawn(*job, spec, directory), jobs))
    print(table(results))
    print(f"wall time: {time.time() - started:.0f} s")


if __name__ == "__main__":
    entry.run(main)
