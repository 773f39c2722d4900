"""The main job: an FNAS (or plain NAS) search on one dataset.

Searches a preset space, prints one line per trained or rejected child and
the final table, and writes results.csv, pareto.png, best_model.keras, the
best model's per-layer latency report and summary.txt into
<directory>/<project>. --fixed_point also measures every child within the
spec in hls4ml's fixed-point C simulation; --deploy measures the best child
at 16 and 8 bits and exports its HLS project to <directory>/<project>/hls.

Run (`make run` runs the first line):
    .venv/bin/python benchmarks/search.py --deploy
    .venv/bin/python benchmarks/search.py
    .venv/bin/python benchmarks/search.py --fixed_point \\
        --fixed_point_examples=100
    .venv/bin/python benchmarks/search.py --mode=nas --max_trials=5
    .venv/bin/python benchmarks/search.py --dataset=cifar10 \\
        --device=zcu102 --latency_spec_ms=2 --epochs=10
    .venv/bin/python benchmarks/search.py --dataset=imagenet2012 \\
        --data_dir=/data/tfds --device=vcu118 --latency_spec_ms=30 \\
        --strategy=mirrored

A bad flag value is one line on stderr and exit status 2; TensorFlow's
start-up messages show only with FNAS_VERBOSE=1. The run ends with the next
steps: TensorBoard, fnas-latency on the best model, the resume command.

Distributed (keras-tuner's chief/worker mode): run this same command once
per process with KERASTUNER_TUNER_ID=chief (or tuner0, tuner1, ...),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set; see the README.
"""

from __future__ import annotations

import os
import sys
import time

import entry
from absl import flags

from fnas_keras import fpga

_PRESET_OF = {
    "digits": "mnist", "mnist": "mnist", "fashion_mnist": "mnist",
    "cifar10": "cifar10", "cifar100": "cifar10",
    "imagenet_resized/32x32": "cifar10",
    "imagenette": "imagenet", "imagenet2012": "imagenet",
}

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "digits", "digits (offline) or a TFDS name.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_enum("preset", None, ["mnist", "cifar10", "imagenet"],
                  "Search space; by default the one that fits the dataset.")
flags.DEFINE_string("device", "xc7z020", "FPGA part or board name.")
flags.DEFINE_enum("bits", "16", ["8", "16", "32"], "Datapath width.")
flags.DEFINE_enum("mapping", "pipelined", list(fpga.MAPPINGS),
                  "The latency model's mapping (fpga.MAPPINGS); pipelined: "
                  "an engine per layer (FNAS), shared: one, auto: the "
                  "faster of the two per child.")
flags.DEFINE_float("latency_spec_ms", 3.0,
                   "Latency spec. The default keeps about 22% of the MNIST "
                   "space on xc7z020 at 16 bits (pipelined).")
flags.DEFINE_enum("mode", "fnas", ["fnas", "nas"],
                  "fnas rejects children over the spec before training; "
                  "nas trains every child and rewards accuracy alone.")
flags.DEFINE_enum("reward", "constrained",
                  ["constrained", "fnas", "mnas_soft", "mnas_hard"],
                  "Reward rule in fnas mode: constrained (the default: "
                  "accuracy alone among children within the spec) or fnas "
                  "(the paper's).")
flags.DEFINE_integer("max_trials", 8, "Children trained at most.")
flags.DEFINE_integer("max_episodes", None,
                     "Children judged at most (trained + rejected).")
flags.DEFINE_integer("epochs", 6, "Training epochs per child.")
flags.DEFINE_integer("batch_size", None,
                     "Training batch size (default: the recipe's).")
flags.DEFINE_integer("train_examples", None,
                     "Use only the first N training examples.")
flags.DEFINE_integer("space_samples", 200,
                     "Architectures sampled for the feasibility report "
                     "before the search when the space is too large to "
                     "enumerate (0: skip the report).")
flags.DEFINE_string("directory", "fnas_runs", "Where projects are kept.")
flags.DEFINE_string("project", None, "Project name; default from flags.")
flags.DEFINE_bool("resume", False,
                  "Continue an interrupted search instead of starting over.")
flags.DEFINE_enum("strategy", "none", ["none", "mirrored"],
                  "tf.distribute strategy for each trial's training.")
flags.DEFINE_integer("seed", 1, "Seed of the controller.")
flags.DEFINE_bool("fixed_point", False,
                  "Record each child's val_accuracy_fixed (C simulation).")
flags.DEFINE_integer("fixed_point_examples", 100,
                     "Validation examples each child's C simulation runs.")
flags.DEFINE_bool("deploy", False,
                  "Measure the best child at 16 and 8 bits and export its "
                  "HLS project (hls/ in the project directory).")
flags.DEFINE_integer("deploy_examples", 100,
                     "Validation examples the best child's C simulations "
                     "run on.")

entry.check_flags(
    device=entry.device, latency_spec_ms=entry.positive,
    max_trials=entry.at_least(1), max_episodes=entry.at_least(1),
    epochs=entry.at_least(1), batch_size=entry.at_least(1),
    train_examples=entry.at_least(1), space_samples=entry.at_least(0),
)


def _check_preset(preset: str | None, dataset: str) -> None:
    if preset is None and dataset not in _PRESET_OF:
        raise ValueError(f"no default search space for --dataset={dataset}"
                         f"; pass --preset=mnist, cifar10 or imagenet")


def _check_resume(resume: bool) -> None:
    # A worker's oracle is the chief's: only the chief has state to resume.
    worker = os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    path = os.path.join(FLAGS.directory, project_name(), "oracle.json")
    if resume and not worker and not os.path.exists(path):
        raise ValueError(f"no search to resume in {path}; run "
                         f"without --resume to start one")


entry.check_after(_check_preset, "preset", "dataset")
entry.check_after(_check_resume, "resume")
entry.check_after(entry.dataset, "dataset")


def project_name() -> str:
    """The project's name: --project, or one made from mode and dataset."""
    default = f"{FLAGS.mode}_{FLAGS.dataset}".replace("/", "_")
    return FLAGS.project or default


def build_tuner(hypermodel):
    """The FNAS tuner the flags describe."""
    import fnas_keras

    nas = FLAGS.mode == "nas"
    strategy = None
    if FLAGS.strategy == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
    project = project_name()
    return fnas_keras.FNAS(
        hypermodel,
        objective="val_accuracy",
        max_trials=FLAGS.max_trials,
        max_episodes=FLAGS.max_episodes,
        device=FLAGS.device,
        latency_spec_ms=FLAGS.latency_spec_ms,
        bits=int(FLAGS.bits),
        mapping=FLAGS.mapping,
        reward="accuracy" if nas else FLAGS.reward,
        enforce_spec=not nas,
        seed=FLAGS.seed,
        directory=FLAGS.directory,
        project_name=project,
        overwrite=not FLAGS.resume,
        distribution_strategy=strategy,
        display="lines",
        fixed_point=FLAGS.fixed_point,
        fixed_point_examples=FLAGS.fixed_point_examples,
    )


def deploy_best(tuner, args, kwargs) -> None:
    """Prints the best child's float, 16- and 8-bit accuracies; exports it."""
    from fnas_keras import deploy

    best = tuner.get_best_models(1)[0]
    x, y = deploy.examples(kwargs["validation_data"], FLAGS.deploy_examples)
    calibration = deploy.examples(args if len(args) > 1 else args[0],
                                  256)[0]
    print(f"best child on {len(x)} validation examples:")
    for bits in (16, 8):
        r = deploy.evaluate(best, x, y, tuner.device, bits, calibration)
        if bits == 16:
            print(f"  float32          accuracy {r['float']:.4f}")
        print(f"  {bits:>2}-bit fixed    accuracy {r['fixed']:.4f}, "
              f"agreement with float {r['agreement']:.4f} "
              f"(C simulation {r['seconds']:.1f} s)")
    if int(FLAGS.bits) not in (8, 16):
        print(f"no HLS export: {FLAGS.bits} bits is timed as float")
        return
    path = deploy.export_hls(
        best, tuner.device, int(FLAGS.bits),
        os.path.join(tuner.project_dir, "hls"), calibration=calibration)
    print(f"HLS project ({FLAGS.bits}-bit, {tuner.device.part}): "
          f"{os.path.relpath(path)}")


def main(argv):
    del argv
    import recipe

    from fnas_keras import results

    preset = FLAGS.preset or _PRESET_OF[FLAGS.dataset]
    # First, so a missing download stops the run before anything else.
    args, kwargs = recipe.fit_data(
        FLAGS.dataset, batch_size=FLAGS.batch_size,
        limit=FLAGS.train_examples, data_dir=FLAGS.data_dir,
    )
    space = recipe.hypermodel(preset, FLAGS.dataset)
    tuner = build_tuner(space)
    print(f"{FLAGS.mode.upper()} search: {FLAGS.dataset}, {preset} space "
          f"({space.space.size} architectures), {FLAGS.device} at "
          f"{FLAGS.bits} bits, {FLAGS.mapping}, spec "
          f"{FLAGS.latency_spec_ms} ms")
    if FLAGS.space_samples and not tuner._is_worker():
        print(tuner.space_report(samples=FLAGS.space_samples))
    started = time.time()
    try:
        tuner.search(*args, epochs=FLAGS.epochs, verbose=0, **kwargs)
    except KeyboardInterrupt:
        print(entry.interrupted(__file__, tuner.project_dir),
              file=sys.stderr)
        return 130
    if tuner._is_worker():
        return
    elapsed = time.time() - started
    paths = results.write(tuner)
    print()
    print(open(paths["summary"]).read())
    print(f"search wall time: {elapsed:.1f} s")
    if FLAGS.fixed_point:
        _print_fixed_point_cost(tuner, elapsed)
    if FLAGS.deploy and tuner.oracle.get_best_trials(1):
        deploy_best(tuner, args, kwargs)
    print("files:")
    for path in paths.values():
        print(f"  {entry.shown(path)}")
    print()
    more = {"max_trials": 2 * FLAGS.max_trials}
    if FLAGS.max_episodes:
        more["max_episodes"] = 2 * FLAGS.max_episodes
    print(entry.next_steps(
        tuner.project_dir, paths.get("model"), FLAGS.device, FLAGS.bits,
        FLAGS.mapping,
        entry.command(__file__, entry.resume_argv(sys.argv[1:], more)),
    ))


def _print_fixed_point_cost(tuner, elapsed: float) -> None:
    from fnas_keras import gate

    seconds = [gate.metric(t, "fixed_point_s")
               for t in tuner.oracle.trials.values()]
    seconds = [s for s in seconds if s is not None]
    print(f"fixed-point C simulation: {sum(seconds):.1f} s over "
          f"{len(seconds)} children, {100 * sum(seconds) / elapsed:.0f}% "
          "of the search wall time")


if __name__ == "__main__":
    entry.run(main)
