"""A trial's model files, written atomically.

keras-tuner writes each trial's best-epoch weights and its
`build_config.json` in place. A kill in the middle of a write, or two
writers at once (a worker presumed dead still running while another
reruns its trial on a shared file system), leaves a torn file that
`get_best_models` cannot load. Here both are written to a temporary file
in the same directory and renamed over the old one: a reader sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any
from typing import Iterator

from keras_tuner.src import backend
from keras_tuner.src.engine import tuner_utils

from fnas_keras import storage


class AtomicSaveBestEpoch(tuner_utils.SaveBestEpoch):
    """keras-tuner's best-epoch checkpoint, saved atomically.

    Example:
        >>> callback = AtomicSaveBestEpoch(objective, "trial_0/checkpoint")
    """

    def _save_model(self) -> None:
        strategy = self.model.distribute_strategy
        if backend.io.write_filepath(self.filepath, strategy) != self.filepath:
            # A non-chief replica of a multi-worker strategy: keras-tuner
            # writes into a temporary folder, then removes it.
            super()._save_model()
            return
        with atomic_path(self.filepath) as tmp:
            self.model.save_weights(tmp)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path to write; renamed over `path` if the body succeeds.

    The temporary name ends like `path` (Keras checks weight files'
    suffixes) and is removed if the body raises.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(
        directory, f".tmp-{os.getpid()}-{threading.get_ident()}-{name}"
    )
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_and_fit(tuner: Any, trial: Any, *args: Any, **kwargs: Any) -> Any:
    """keras-tuner's `Tuner._build_and_fit_model`, with atomic writes.

    Args:
        tuner: The keras-tuner `Tuner` running the trial.
        trial: The trial.
        *args, **kwargs: What `fit` takes; `callbacks` holds keras-tuner's
            best-epoch checkpoint, which is made atomic.

    Returns:
        What the hypermodel's `fit` returns.
    """
    for callback in kwargs.get("callbacks") or []:
        if type(callback) is tuner_utils.SaveBestEpoch:
            # The same object is shared by a trial's executions (it keeps
            # the best value); the subclass adds no state.
            callback.__class__ = AtomicSaveBestEpoch
    hp = trial.hyperparameters
    model = tuner._try_build(hp)
    results = tuner.hypermodel.fit(hp, model, *args, **kwargs)
    if backend.config.multi_backend():
        storage.write_json(
            tuner._get_build_config_fname(trial.trial_id),
            model.get_build_config(),
        )
    tuner_utils.validate_trial_results(
        results, tuner.oracle.objective, "HyperModel.fit()"
    )
    return results
