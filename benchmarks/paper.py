"""The paper's protocol (FNAS, DAC 2019): NAS, FNAS and gated baselines.

For every seed: plain NAS once (every child trained, reward = accuracy);
for every latency spec, FNAS (children over the spec rejected before
training) with the same controller, seed and episode budget, and the
baselines (`--baselines`): keras-tuner's RandomSearch and
BayesianOptimization behind the same latency gate (`fnas_keras.gated`),
each training as many children as FNAS trained. Then, with
`--final_epochs`, the best child within the spec of each method (and NAS's
best child whatever its latency, the paper's reference) is trained again
from scratch with one recipe (`recipe.py`): that is `final_accuracy`.

Writes into --directory: paper.csv (one row per spec, method and seed),
paper.md (mean and standard deviation over the seeds) and paper.png; prints
paper.md and, per seed, the search-time comparison.

Run:
    .venv/bin/python benchmarks/paper.py
    .venv/bin/python benchmarks/paper.py --latency_spec_ms=2.1,2.7 --seeds=3 \\
        --episodes=16 --epochs=6 --final_epochs=30 --baselines=random,bayesian
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time

import entry
from absl import flags

from fnas_keras import fpga

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "digits", "digits (offline) or a TFDS name.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_enum("preset", "mnist", ["mnist", "cifar10", "imagenet"],
                  "Search space.")
flags.DEFINE_string("device", "xc7z020", "FPGA part or board name.")
flags.DEFINE_enum("bits", "16", ["8", "16", "32"], "Datapath width.")
flags.DEFINE_enum("mapping", "pipelined", list(fpga.MAPPINGS),
                  "Accelerator mapping (fpga.MAPPINGS).")
flags.DEFINE_list("latency_spec_ms", ["2.1", "2.7"],
                  "Latency specs, one row each; 2.1 and 2.7 ms keep about "
                  "10% and 20% of the MNIST space (xc7z020, 16 bits).")
flags.DEFINE_integer("episodes", 30,
                     "Children judged per search (trained + rejected).")
flags.DEFINE_integer("epochs", 6, "Training epochs per child in a search.")
flags.DEFINE_integer("final_epochs", 0,
                     "Epochs of the final training from scratch of each "
                     "method's best child (0: none).")
flags.DEFINE_integer("seeds", 1, "Seeds per method: seed, seed+1, ...")
flags.DEFINE_list("baselines", [],
                  "Gated keras-tuner baselines: random, bayesian.")
flags.DEFINE_integer("batch_size", None,
                     "Training batch size (default: the recipe's).")
flags.DEFINE_integer("train_examples", None,
                     "Use only the first N training examples.")
flags.DEFINE_integer("validation_examples", None,
                     "Use only the first N validation examples (digits).")
flags.DEFINE_string("directory", "fnas_runs/paper", "Where runs are kept.")
flags.DEFINE_integer("seed", 1, "The first seed.")

METHODS = ("nas", "fnas", "random", "bayesian")
COLUMNS = ("spec_ms", "method", "seed", "final_accuracy", "search_accuracy",
           "latency_ms", "meets_spec", "search_time_s", "trained",
           "rejected", "values")

entry.check_flags(
    device=entry.device, latency_spec_ms=entry.positives,
    episodes=entry.at_least(1), epochs=entry.at_least(1),
    batch_size=entry.at_least(1), train_examples=entry.at_least(1),
    seeds=entry.at_least(1), baselines=lambda names: _known_baselines(names),
)
entry.check_after(entry.dataset, "dataset")


def _known_baselines(names: list[str]) -> None:
    unknown = set(names) - {"random", "bayesian"}
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; known: "
                         "random, bayesian")


# Searches --------------------------------------------------------------


def run_search(mode: str, spec_ms: float, fit_args, fit_kwargs,
               seed: int | None = None) -> dict:
    """One NAS or FNAS search; returns its children, counts and time."""
    import fnas_keras

    nas = mode == "nas"
    seed = FLAGS.seed if seed is None else seed
    tuner = fnas_keras.FNAS(
        _hypermodel(),
        objective="val_accuracy",
        max_trials=FLAGS.episodes,
        max_episodes=FLAGS.episodes,
        device=FLAGS.device,
        latency_spec_ms=spec_ms,
        bits=int(FLAGS.bits),
        mapping=FLAGS.mapping,
        reward="accuracy" if nas else "fnas",
        enforce_spec=not nas,
        seed=seed,
        directory=FLAGS.directory,
        project_name=f"{mode}_{spec_ms:g}ms_seed{seed}",
        overwrite=True,
        display="lines",
    )
    return _searched(tuner, mode, seed, fit_args, fit_kwargs)


def run_baseline(kind: str, spec_ms: float, trained: int, fit_args,
                 fit_kwargs, seed: int) -> dict:
    """A gated keras-tuner tuner that trains `trained` children."""
    import keras_tuner

    import fnas_keras

    tuner_class = {"random": keras_tuner.RandomSearch,
                   "bayesian": keras_tuner.BayesianOptimization}[kind]
    extra = {}
    if kind == "bayesian":
        # keras-tuner's default, 3 random points per hyperparameter (24),
        # would leave no budget to the Gaussian process.
        extra["num_initial_points"] = initial_points(trained)
    tuner = fnas_keras.gated(tuner_class)(
        _hypermodel(),
        objective="val_accuracy",
        max_trials=max(1, trained),
        device=FLAGS.device,
        latency_spec_ms=spec_ms,
        bits=int(FLAGS.bits),
        mapping=FLAGS.mapping,
        seed=seed,
        directory=FLAGS.directory,
        project_name=f"{kind}_{spec_ms:g}ms_seed{seed}",
        overwrite=True,
        display="lines",
        **extra,
    )
    return _searched(tuner, kind, seed, fit_args, fit_kwargs)


def initial_points(trained: int) -> int:
    """Random children BayesianOptimization starts from: a third, 2 or more.

    The same seed gives both baselines the same first random children, so
    the Gaussian process's picks are what tells them apart.
    """
    return max(2, math.ceil(trained / 3))


def _searched(tuner, mode: str, seed: int, fit_args, fit_kwargs) -> dict:
    import keras

    keras.utils.set_random_seed(seed)
    started = time.time()
    tuner.search(*fit_args, epochs=FLAGS.epochs, verbose=0, **fit_kwargs)
    elapsed = time.time() - started
    children = [
        {"score": row["score"], "latency_ms": row["latency_ms"],
         "values": row["values"], "end": _end_time(tuner, row, started)}
        for row in tuner.trials_table() if row["status"] == "COMPLETED"
    ]
    return {
        "mode": mode,
        "seed": seed,
        "wall_s": elapsed,
        "started": started,
        "trained": len(tuner.oracle.trials),
        "rejected": tuner.oracle.num_rejected,
        "children": children,
        "trials": [(c["end"], c["score"], c["latency_ms"]) for c in children],
    }


def _end_time(tuner, row: dict, started: float) -> float:
    times = getattr(tuner.oracle, "trial_times", {}).get(row["trial_id"])
    return (times[1] - started) if times and times[1] else math.nan


def _hypermodel():
    import recipe

    return recipe.hypermodel(FLAGS.preset, FLAGS.dataset)


def best_child(run: dict, spec_ms: float | None) -> dict | None:
    """The most accurate child of a run within the spec (None: any)."""
    ok = [c for c in run["children"]
          if spec_ms is None or c["latency_ms"] <= spec_ms]
    return max(ok, key=lambda c: c["score"]) if ok else None


def best_within(run: dict, spec_ms: float | None) -> tuple | None:
    """(score, latency) of the run's most accurate child within the spec."""
    ok = [(s, lat) for _, s, lat in run["trials"]
          if spec_ms is None or lat <= spec_ms]
    return max(ok) if ok else None


# Final training ----------------------------------------------------------


def retrain(values: dict, seed: int, epochs: int, fit_args,
            fit_kwargs) -> float:
    """A child trained from scratch with the recipe: its last val accuracy."""
    import keras
    import keras_tuner

    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    hp.values = dict(values)
    model = _hypermodel().build(hp)
    history = model.fit(*fit_args, epochs=epochs, verbose=0, **fit_kwargs)
    return float(history.history["val_accuracy"][-1])


# Rows and the table --------------------------------------------------------


def row(spec_ms: float, method: str, run: dict, child: dict | None,
        final: float | None) -> dict:
    """One paper.csv row: a method's pick at a spec, for one seed."""
    latency = child["latency_ms"] if child else None
    return {
        "spec_ms": spec_ms,
        "method": method,
        "seed": run["seed"],
        "final_accuracy": final,
        "search_accuracy": child["score"] if child else None,
        "latency_ms": latency,
        "meets_spec": latency is not None and latency <= spec_ms,
        "search_time_s": run["wall_s"],
        "trained": run["trained"],
        "rejected": run["rejected"],
        "values": json.dumps(child["values"] if child else None,
                             sort_keys=True),
    }


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def summary(rows: list[dict]) -> str:
    """paper.md: one line per spec and method, mean ± std over seeds.

    `loss_pts` is NAS's final accuracy minus the method's, in points, and
    `speedup` NAS's search time over the method's, both paired by seed.
    """
    head = ("| spec_ms | method | seeds | in spec | latency/spec | "
            "final_accuracy | search_accuracy | search_time_s | trained | "
            "rejected | loss_pts vs nas | speedup vs nas |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for spec in sorted({r["spec_ms"] for r in rows}):
        at = [r for r in rows if r["spec_ms"] == spec]
        nas = {r["seed"]: r for r in at if r["method"] == "nas"}
        for method in METHODS:
            mine = [r for r in at if r["method"] == method]
            if not mine:
                continue
            loss = [100 * (nas[r["seed"]]["final_accuracy"]
                           - r["final_accuracy"])
                    for r in mine if r["seed"] in nas
                    and _num(r["final_accuracy"])
                    and _num(nas[r["seed"]]["final_accuracy"])]
            speed = [nas[r["seed"]]["search_time_s"] / r["search_time_s"]
                     for r in mine if r["seed"] in nas]
            latency = [r["latency_ms"] / spec for r in mine
                       if _num(r["latency_ms"])]
            lines.append(
                f"| {spec:g} | {method} | {len(mine)} | "
                f"{sum(r['meets_spec'] for r in mine)}/{len(mine)} | "
                f"{_stat(latency, '.2f', 'x')} | "
                f"{_stat([r['final_accuracy'] for r in mine])} | "
                f"{_stat([r['search_accuracy'] for r in mine])} | "
                f"{_stat([r['search_time_s'] for r in mine], '.0f')} | "
                f"{_stat([r['trained'] for r in mine], '.1f')} | "
                f"{_stat([r['rejected'] for r in mine], '.1f')} | "
                f"{'-' if method == 'nas' else _stat(loss, '.2f')} | "
                f"{'-' if method == 'nas' else _stat(speed, '.2f', 'x')} |"
            )
    return "\n".join(lines)


def _num(value) -> bool:
    return value is not None and not (isinstance(value, float)
                                      and math.isnan(value))


def _stat(values: list, fmt: str = ".3f", unit: str = "") -> str:
    """'mean ± std' of the numbers among `values` ('-' if none)."""
    values = [float(v) for v in values if _num(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:{fmt}}{unit}"
    return f"{mean:{fmt}}{unit} ± {statistics.stdev(values):{fmt}}"


def table(nas: dict, fnas_runs: dict[float, dict]) -> str:
    """One seed's search comparison, one row per spec.

    acc_loss_pts compares FNAS with NAS's most accurate child, whatever its
    latency (the paper's measure); nas_in_spec is NAS's best child within
    the spec, what an accuracy-only search offers a user bound by it.
    """
    head = (f"{'spec_ms':>8} | {'NAS lat/spec':>12} {'acc':>6} "
            f"{'time_s':>7} {'trained':>7} {'nas_in_spec':>11} | "
            f"{'FNAS lat/spec':>13} {'acc':>6} {'time_s':>7} {'trained':>7} "
            f"{'rejected':>8} | {'acc_loss_pts':>12} {'speedup':>7}")
    lines = [head, "-" * len(head)]
    nas_acc, nas_lat = best_within(nas, None)
    for spec, run in fnas_runs.items():
        f_acc, f_lat = best_within(run, spec) or (math.nan, math.nan)
        in_spec, _ = best_within(nas, spec) or (math.nan, math.nan)
        loss = 100 * (nas_acc - f_acc)
        lines.append(
            f"{spec:>8g} | {nas_lat / spec:>11.2f}x {nas_acc:>6.3f} "
            f"{nas['wall_s']:>7.0f} {nas['trained']:>7} {in_spec:>11.3f} | "
            f"{f_lat / spec:>12.2f}x {f_acc:>6.3f} {run['wall_s']:>7.0f} "
            f"{run['trained']:>7} {run['rejected']:>8} | "
            f"{loss:>12.2f} {nas['wall_s'] / run['wall_s']:>6.2f}x"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    """Final accuracy (mean ± std over seeds) per method, one panel a spec."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    specs = sorted({r["spec_ms"] for r in rows})
    fig, axes = pyplot.subplots(1, len(specs), squeeze=False,
                                figsize=(4.5 * len(specs), 3.8))
    for ax, spec in zip(axes[0], specs):
        methods = [m for m in METHODS
                   if any(r["method"] == m and r["spec_ms"] == spec
                          for r in rows)]
        for i, method in enumerate(methods):
            mine = [r for r in rows
                    if r["method"] == method and r["spec_ms"] == spec]
            key = "final_accuracy" if any(
                _num(r["final_accuracy"]) for r in mine) else "search_accuracy"
            values = [r[key] for r in mine if _num(r[key])] or [0.0]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.bar(i, statistics.fmean(values), yerr=std, capsize=4,
                   color="tab:red" if method == "nas" else "tab:blue")
            inside = sum(r["meets_spec"] for r in mine)
            ax.text(i, 0.02, f"{inside}/{len(mine)}\nin spec",
                    ha="center", fontsize=8, color="white")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_title(f"spec {spec:g} ms")
        ax.set_ylabel("accuracy (final if retrained)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


# The protocol --------------------------------------------------------------


def protocol(specs: list[float], seeds: list[int], fit_args,
             fit_kwargs) -> list[dict]:
    """Every search, then every final training; returns the csv rows."""
    rows, finals = [], {}
    for seed in seeds:
        print(f"NAS, seed {seed}: {FLAGS.episodes} episodes, every child "
              "trained")
        nas = run_search("nas", specs[0], fit_args, fit_kwargs, seed)
        fnas_runs = {}
        for spec in specs:
            print(f"FNAS at {spec:g} ms, seed {seed}: {FLAGS.episodes} "
                  "episodes")
            fnas = fnas_runs[spec] = run_search("fnas", spec, fit_args,
                                                fit_kwargs, seed)
            runs = {"nas": nas, "fnas": fnas}
            for kind in FLAGS.baselines:
                print(f"{kind} at {spec:g} ms, seed {seed}: "
                      f"{fnas['trained']} trained children")
                runs[kind] = run_baseline(kind, spec, fnas["trained"],
                                          fit_args, fit_kwargs, seed)
            for method, run in runs.items():
                child = best_child(run, None if method == "nas" else spec)
                final = _final(child, seed, finals, fit_args, fit_kwargs)
                rows.append(row(spec, method, run, child, final))
        print(f"\nseed {seed}, search accuracies:")
        print(table(nas, fnas_runs))
    return rows


def _final(child: dict | None, seed: int, finals: dict, fit_args,
           fit_kwargs) -> float | None:
    """The child's final accuracy; each architecture is trained once a seed."""
    if child is None or FLAGS.final_epochs < 1:
        return None
    key = (json.dumps(child["values"], sort_keys=True), seed)
    if key not in finals:
        print(f"final training, {FLAGS.final_epochs} epochs: "
              f"{child['values']}")
        finals[key] = retrain(child["values"], seed, FLAGS.final_epochs,
                              fit_args, fit_kwargs)
    return finals[key]


def main(argv):
    del argv
    import recipe

    specs = [float(s) for s in FLAGS.latency_spec_ms]
    seeds = [FLAGS.seed + i for i in range(FLAGS.seeds)]
    fit_args, fit_kwargs = recipe.fit_data(
        FLAGS.dataset, batch_size=FLAGS.batch_size,
        limit=FLAGS.train_examples, data_dir=FLAGS.data_dir,
        validation_limit=FLAGS.validation_examples,
    )
    started = time.time()
    rows = protocol(specs, seeds, fit_args, fit_kwargs)
    os.makedirs(FLAGS.directory, exist_ok=True)
    paths = {name: os.path.join(FLAGS.directory, f"paper.{name}")
             for name in ("csv", "md", "png")}
    write_csv(rows, paths["csv"])
    text = (
        f"{FLAGS.dataset}, {FLAGS.preset} space, {FLAGS.device} at "
        f"{FLAGS.bits} bits ({FLAGS.mapping}), {FLAGS.episodes} episodes, "
        f"{FLAGS.epochs} epochs per child, final training "
        f"{FLAGS.final_epochs} epochs, seeds {seeds}\n\n{summary(rows)}\n"
    )
    with open(paths["md"], "w") as f:
        f.write(text)
    plot(rows, paths["png"])
    print()
    print(text)
    print(f"wall time: {time.time() - started:.0f} s")
    print("files: " + ", ".join(paths.values()))


if __name__ == "__main__":
    entry.run(main)
