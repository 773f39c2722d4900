"""Search progress: TensorBoard scalars and a one-line-per-trial display.

The scalars go to `<project_dir>/controller`, beside keras-tuner's own
files, one point per controller update: reward, baseline, entropy,
rejection rate and the best score so far among children within the spec.
The display adds, under each trial, how far the search is: trials done of
max_trials, children judged, the rejection rate and the time left.
"""

from __future__ import annotations

import datetime
import os
import statistics

import tensorflow as tf
from keras_tuner.engine import trial as trial_module
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
        print(f"  {search_progress(self.oracle)}", flush=True)


def search_progress(oracle) -> str:
    """How far a search is, from the oracle's public counts.

    Args:
        oracle: An FNASOracle (its trials, max_trials, num_rejected,
            trial_times and episodes_left()), or a gated tuner's oracle,
            which has no fit times or episode limit: no time estimate then.

    Returns:
        A line such as "3/8 trials done, 17 children judged, 14 rejected
        (82%), about 1m10s left".
    """
    running = trial_module.TrialStatus.RUNNING
    statuses = [t.status for t in oracle.trials.values()]
    done = sum(status != running for status in statuses)
    times = getattr(oracle, "trial_times", {})
    fits = [end - start for start, end in times.values() if end is not None]
    episodes_left = getattr(oracle, "episodes_left", lambda: None)
    return progress_line(
        done=done, max_trials=oracle.max_trials,
        rejected=oracle.num_rejected, judged=oracle.num_rejected
        + len(statuses), fit_seconds=fits,
        running=statuses.count(running),
        episodes_left=episodes_left(),
    )


def progress_line(*, done: int, max_trials: int | None, judged: int,
                  rejected: int, fit_seconds: list[float], running: int = 0,
                  episodes_left: int | None = None) -> str:
    """The progress line of `search_progress`, from plain numbers.

    The time left is the mean fit time times the trials still to train,
    shared among the processes training now (one, plus one per other
    running trial); rejections cost milliseconds and are not counted.

    Args:
        done: Trials ended (completed or failed).
        max_trials: The search's max_trials.
        judged: Children judged: trials plus rejections.
        rejected: Children rejected without training.
        fit_seconds: Wall times of the ended trials.
        running: Trials training now, besides the one just ended.
        episodes_left: Children max_episodes still allows, or None.
    """
    rate = rejected / judged if judged else 0.0
    # Hyperband has no max_trials: its budget is in epochs, not children.
    total = "" if max_trials is None else f"/{max_trials}"
    parts = [f"{done}{total} trials done",
             f"{judged} {'child' if judged == 1 else 'children'} judged",
             f"{rejected} rejected ({rate:.0%})"]
    if max_trials is None:
        return ", ".join(parts)
    left = max(0, max_trials - done)
    if episodes_left is not None:
        left = min(left, episodes_left + running)
    if left and fit_seconds:
        seconds = statistics.fmean(fit_seconds) * left / (1 + running)
        parts.append(f"about {_duration(seconds)} left")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    """3725 -> "1h02m", 70 -> "1m10s", 9 -> "9s"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"

