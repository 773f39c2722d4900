"""Search progress: TensorBoard scalars and a one-line-per-trial display.

The scalars go to `<project_dir>/controller`, beside keras-tuner's own
files, one point per controller update: reward, baseline, entropy,
rejection rate and the best score so far among children within the spec.
"""

from __future__ import annotations

import datetime
import os

import tensorflow as tf
from keras_tuner.src.engine import oracle as oracle_module

from fnas_keras import gate

_FLUSH_EVERY = 50


class ControllerLog:
    """Logs each controller update as TensorBoard scalars.

    Args:
        project_dir: The tuner's project directory.

    Example:
        >>> log = ControllerLog(tuner.project_dir)
        >>> tuner.oracle.progress = log  # FNAS.search does this for you
    """

    def __init__(self, project_dir: str):
        self.logdir = os.path.join(project_dir, "controller")
        self._writer = tf.summary.create_file_writer(self.logdir)
        self._updates = 0

    def on_update(self, stats, oracle) -> None:
        """Writes one update's scalars.

        Args:
            stats: The controller's `UpdateStats`.
            oracle: The FNASOracle, for its rejection and trial counts.
        """
        judged = oracle.num_rejected + len(oracle.trials)
        best = oracle.get_best_trials(1)
        with self._writer.as_default(step=stats.step):
            tf.summary.scalar("controller/reward", stats.reward)
            tf.summary.scalar("controller/baseline", stats.baseline)
            tf.summary.scalar("controller/entropy", stats.entropy)
            tf.summary.scalar("controller/loss", stats.loss)
            if judged:
                rate = oracle.num_rejected / judged
                tf.summary.scalar("search/rejection_rate", rate)
            if best and best[0].score is not None:
                tf.summary.scalar("search/best_feasible_score", best[0].score)
        self._updates += 1
        if self._updates % _FLUSH_EVERY == 0:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        self._writer.close()


class LineDisplay(oracle_module.Display):
    """keras-tuner's trial display, one line per trial instead of a table.

    The lines show whatever `verbose` `search()` is given: keras-tuner
    passes that value to `fit` too, so `verbose=0` means quiet epochs with
    the search's progress still visible.

    Example:
        >>> FNAS(build_model, ..., display="lines")
    """

    @property
    def verbose(self) -> int:
        return 1

    @verbose.setter
    def verbose(self, value) -> None:
        del value  # Always on; see the class docstring.

    def on_trial_begin(self, trial) -> None:
        if self.verbose < 1:
            return
        now = datetime.datetime.now()
        self.trial_start[trial.trial_id] = now
        self.search_start = self.search_start or now
        self.trial_number[trial.trial_id] = len(self.oracle.trials)

    def on_trial_end(self, trial) -> None:
        if self.verbose < 1 or trial.trial_id not in self.trial_start:
            return
        elapsed = datetime.datetime.now() - self.trial_start[trial.trial_id]
        number = self.trial_number[trial.trial_id]
        total = self.oracle.max_trials
        score = "-" if trial.score is None else f"{trial.score:.4f}"
        latency = gate.metric(trial, "latency_ms")
        shown = "" if latency is None else f", latency {latency:.3f} ms"
        print(
            f"Trial {number}/{total} {trial.status.lower()}: "
            f"{self.oracle.objective.name} {score}{shown}, "
            f"{self.format_duration(elapsed)}",
            flush=True,
        )

