"""The main job: an FNAS (or plain NAS) search on one dataset.

Searches a preset space, prints one line per trained or rejected child and
the final table, and writes results.csv, pareto.png, best_model.keras, the
best model's per-layer latency report and summary.txt into
<directory>/<project>.

Run (`make run` runs the first line):
    .venv/bin/python benchmarks/search.py
    .venv/bin/python benchmarks/search.py --mode=nas --max_trials=5
    .venv/bin/python benchmarks/search.py --dataset=cifar10 \\
        --device=zcu102 --latency_spec_ms=2 --epochs=10
    .venv/bin/python benchmarks/search.py --dataset=imagenet2012 \\
        --data_dir=/data/tfds --device=vcu118 --latency_spec_ms=30 \\
        --strategy=mirrored

Distributed (keras-tuner's chief/worker mode): run this same command once
per process with KERASTUNER_TUNER_ID=chief (or tuner0, tuner1, ...),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set; see the README.
"""

from __future__ import annotations

import os
import time

from absl import app
from absl import flags

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
flags.DEFINE_enum("mapping", "pipelined", ["pipelined", "shared"],
                  "pipelined: an engine per layer (FNAS); shared: one.")
flags.DEFINE_float("latency_spec_ms", 7.0,
                   "Latency spec. The default keeps about 18% of the MNIST "
                   "space on xc7z020 at 16 bits (pipelined).")
flags.DEFINE_enum("mode", "fnas", ["fnas", "nas"],
                  "fnas rejects children over the spec before training; "
                  "nas trains every child and rewards accuracy alone.")
flags.DEFINE_enum("reward", "fnas", ["fnas", "mnas_soft", "mnas_hard"],
                  "Reward rule in fnas mode.")
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
                     "before the search (0: skip).")
flags.DEFINE_string("directory", "fnas_runs", "Where projects are kept.")
flags.DEFINE_string("project", None, "Project name; default from flags.")
flags.DEFINE_bool("resume", False,
                  "Continue an interrupted search instead of starting over.")
flags.DEFINE_enum("strategy", "none", ["none", "mirrored"],
                  "tf.distribute strategy for each trial's training.")
flags.DEFINE_integer("seed", 1, "Seed of the controller.")


def build_tuner(hypermodel):
    """The FNAS tuner the flags describe."""
    import fnas_keras

    nas = FLAGS.mode == "nas"
    strategy = None
    if FLAGS.strategy == "mirrored":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
    project = FLAGS.project or f"{FLAGS.mode}_{FLAGS.dataset}".replace(
        "/", "_")
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
    )


def main(argv):
    del argv
    import recipe

    from fnas_keras import results

    preset = FLAGS.preset or _PRESET_OF[FLAGS.dataset]
    space = recipe.hypermodel(preset, FLAGS.dataset)
    tuner = build_tuner(space)
    print(f"{FLAGS.mode.upper()} search: {FLAGS.dataset}, {preset} space "
          f"({space.space.size} architectures), {FLAGS.device} at "
          f"{FLAGS.bits} bits, {FLAGS.mapping}, spec "
          f"{FLAGS.latency_spec_ms} ms")
    if FLAGS.space_samples and not tuner._is_worker():
        print(tuner.space_report(samples=FLAGS.space_samples,
                                 max_enumerate=FLAGS.space_samples))
    args, kwargs = recipe.fit_data(
        FLAGS.dataset, batch_size=FLAGS.batch_size,
        limit=FLAGS.train_examples, data_dir=FLAGS.data_dir,
    )
    started = time.time()
    tuner.search(*args, epochs=FLAGS.epochs, verbose=0, **kwargs)
    if tuner._is_worker():
        return
    elapsed = time.time() - started
    paths = results.write(tuner)
    print()
    print(open(paths["summary"]).read())
    print(f"search wall time: {elapsed:.1f} s")
    print("files:")
    for path in paths.values():
        print(f"  {os.path.relpath(path)}")


if __name__ == "__main__":
    app.run(main)
