"""One process of a distributed FNAS search, run by tests/distributed_test.py.

Start one chief and any number of workers, each with KERASTUNER_TUNER_ID
(`chief`, `tuner0`, ...), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT:

    python tests/distributed_script.py --directory /tmp/run --log w0.log \
        --max-trials 4 --trial-timeout-s 10 --fit-sleep-s 0

With `--nan-loss` every child's loss is NaN, so every trial fails.
FNAS_ORACLE_SECRET, when set, must be the same in every process.

Each worker appends `start <trial_id>` before a trial, `fit` when Keras
starts fitting it and `done <trial_id>` after it, so a test can tell which
process trained what, and when a process is in the middle of a fit.
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import tensorflow as tf
import tiny_cnn

import fnas_keras
from fnas_keras import data

SPEC_MS = 0.27


def build_model(hp):
    """A tiny CNN whose larger variants exceed SPEC_MS on the xc7z020."""
    model = keras.Sequential()
    tiny_cnn.add_conv_stack(model, hp, max_layers=3)
    return tiny_cnn.finish(model, "adam")


def nan_loss(y_true, y_pred):
    return keras.ops.mean(y_pred) * float("nan")


def build_diverging(hp):
    """The same children, each with a NaN loss."""
    model = build_model(hp)
    model.compile("adam", nan_loss, metrics=["accuracy"])
    return model


def append(path: str, line: str) -> None:
    """Appends one line and flushes it, so a SIGKILL cannot lose it."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


class SlowFit(keras.callbacks.Callback):
    """Marks the start of a fit in the log, then stalls it for a while."""

    def __init__(self, log: str, seconds: float):
        super().__init__()
        self.log = log
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        append(self.log, "fit")
        time.sleep(self.seconds)


class LoggedFNAS(fnas_keras.FNAS):
    """FNAS that logs the trials this process trains."""

    def __init__(self, *args, log: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log

    def run_trial(self, trial, *args, **kwargs):
        append(self.log, f"start {trial.trial_id}")
        result = super().run_trial(trial, *args, **kwargs)
        append(self.log, f"done {trial.trial_id}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-trials", type=int, default=4)
    parser.add_argument("--trial-timeout-s", type=float, default=None)
    parser.add_argument("--fit-sleep-s", type=float, default=0.0)
    parser.add_argument("--nan-loss", action="store_true")
    args = parser.parse_args()
    # Two cores run three processes: one thread each avoids thrashing.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    extra = {}
    if args.trial_timeout_s is not None:
        extra["trial_timeout_s"] = args.trial_timeout_s
    chief = os.environ["KERASTUNER_TUNER_ID"] == "chief"
    tuner = LoggedFNAS(
        build_diverging if args.nan_loss else build_model,
        objective="val_accuracy",
        max_trials=args.max_trials,
        device="xc7z020",
        latency_spec_ms=SPEC_MS,
        seed=2,
        directory=args.directory,
        project_name="digits",
        # Only the chief starts afresh: a worker must not wipe its files.
        overwrite=chief,
        log=args.log,
        **extra,
    )
    x, y = data.load_arrays("digits", "train", limit=256)
    xv, yv = data.load_arrays("digits", "validation", limit=64)
    tuner.search(
        x, y, validation_data=(xv, yv), epochs=1, batch_size=64, verbose=0,
        callbacks=[SlowFit(args.log, args.fit_sleep_s)],
    )
    append(args.log, "exit")


if __name__ == "__main__":
    main()
