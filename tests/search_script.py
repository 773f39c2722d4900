"""A small real FNAS search that resume_test.py kills and restarts.

Run: python tests/search_script.py DIRECTORY

Every completed fit appends "trial_id values" to DIRECTORY/fits.log. With
FNAS_KILL=point:n the process SIGKILLs itself at the n-th time it reaches a
point, so kills land at exact moments rather than at timing luck:

    reject    right after a rejection record is appended to rejected.jsonl
    created   after a new trial's trial.json, before oracle.json is saved
    midfit    in the middle of a fit (after its second batch)
    reported  after update_trial saved the metrics, before end_trial
    save      in oracle.save, after the controller file, before oracle.json
    ended     after end_trial's first save, before the controller's reward
"""

import os
import signal
import sys

import keras
import tensorflow as tf
import tiny_cnn

import fnas_keras
from fnas_keras import data
from fnas_keras import oracle as oracle_module
from fnas_keras import storage

MAX_TRIALS = 6
SPEC_MS = 0.2
_counts: dict = {}


def hook(point: str) -> None:
    """SIGKILLs this process at the n-th `point` named by FNAS_KILL."""
    name, _, n = os.environ.get("FNAS_KILL", "").partition(":")
    if name != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(n):
        os.kill(os.getpid(), signal.SIGKILL)


def build_model(hp):
    """An mnist-like tiny CNN; the seed makes every fit repeatable."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1))])
    tiny_cnn.add_conv_stack(model, hp, max_layers=2)
    return tiny_cnn.finish(model, keras.optimizers.Adam(1e-2))


class MidFit(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            hook("midfit")


def install_hooks(directory: str) -> None:
    """Wraps the library at each kill point; fits are logged to fits.log."""
    append = storage.append_jsonl
    storage.append_jsonl = lambda *a: (append(*a), hook("reject"))[0]
    oracle_class = oracle_module.FNASOracle
    save_trial = oracle_class._save_trial
    seen = set()

    def first_save_trial(self, trial):
        save_trial(self, trial)
        if trial.trial_id not in seen:
            seen.add(trial.trial_id)
            hook("created")

    oracle_class._save_trial = first_save_trial
    update = oracle_class.update_trial
    oracle_class.update_trial = lambda self, *a, **k: (
        update(self, *a, **k), hook("reported"))[0]
    save_controller = oracle_class._save_controller
    oracle_class._save_controller = lambda self: (
        save_controller(self), hook("save"))[0]
    settle = oracle_class._settle_ended_trials
    oracle_class._settle_ended_trials = lambda self: (
        hook("ended"), settle(self))[1]
    run_trial = fnas_keras.FNAS.run_trial

    def logged_run_trial(self, trial, *args, **kwargs):
        result = run_trial(self, trial, *args, **kwargs)
        with open(os.path.join(directory, "fits.log"), "a") as f:
            f.write(f"{trial.trial_id} {trial.hyperparameters.values}\n")
        return result

    fnas_keras.FNAS.run_trial = logged_run_trial


def main(directory: str) -> None:
    tf.config.experimental.enable_op_determinism()
    os.makedirs(directory, exist_ok=True)
    install_hooks(directory)
    x, y = data.load_arrays("digits", "train", limit=128)
    xv, yv = data.load_arrays("digits", "validation", limit=64)
    tuner = fnas_keras.FNAS(
        build_model,
        objective="val_accuracy",
        max_trials=MAX_TRIALS,
        device="xc7z020",
        latency_spec_ms=SPEC_MS,
        seed=4,
        directory=directory,
        project_name="search",
        overwrite=False,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, batch_size=32,
                 callbacks=[MidFit()], verbose=0)


if __name__ == "__main__":
    main(sys.argv[1])
