"""The controller's progress as TensorBoard scalars.

Written to `<project_dir>/controller`, beside keras-tuner's own files, one
point per controller update: reward, baseline, entropy, rejection rate and
the best accuracy so far among children that meet the spec.
"""

from __future__ import annotations

import os

import tensorflow as tf

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
