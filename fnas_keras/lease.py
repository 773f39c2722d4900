"""Leases on running trials, so that a dead worker's trial is run again.

keras-tuner 1.4.8 keeps a trial in `Oracle.ongoing_trials` until its worker
ends it. A worker killed mid-trial never does: its trial is never run again,
and the chief, which exits only once `ongoing_trials` and `tuner_ids` are
both empty, waits forever.

Here every tuner holds a lease that each of its calls to the oracle renews
(create_trial, update_trial, get_trial, end_trial). keras-tuner makes none
of these during a fit, so a worker's tuner renews its lease from a
heartbeat thread while it trains. The oracle (a `LeasedOracle`) takes back
the trial of a tuner silent for longer than the timeout, and forgets that
tuner.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Iterator

import keras_tuner
from keras_tuner.engine import trial as trial_module

from fnas_keras import resume
from fnas_keras import validation

TrialStatus = trial_module.TrialStatus

DEFAULT_TIMEOUT_S = 3600.0


class Leases:
    """When each tuner was last heard from.

    Args:
        timeout_s: Seconds of silence after which a tuner counts as dead.
        clock: Monotonic time in seconds; tests pass a fake one.

    Example:
        >>> leases = Leases(60.0)
        >>> leases.renew("tuner0")
        >>> leases.expired(["tuner0"])
        []
    """

    def __init__(
        self, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ):
        self.timeout_s = checked_timeout(timeout_s)
        self._clock = clock
        # A tuner never heard from by this process (e.g. one the oracle
        # knew before a restart) gets a full timeout from now.
        self._start = clock()
        self._seen: dict[str, float] = {}

    def renew(self, tuner_id: str) -> None:
        """Records that `tuner_id` is alive now."""
        self._seen[tuner_id] = self._clock()

    def forget(self, tuner_id: str) -> None:
        self._seen.pop(tuner_id, None)

    def expired(self, tuner_ids: Iterable[str]) -> list[str]:
        """The tuners among `tuner_ids` silent for longer than the timeout."""
        now = self._clock()
        return sorted(
            t for t in set(tuner_ids)
            if now - self._seen.get(t, self._start) > self.timeout_s
        )


class LeasedOracle(resume.ResumableOracle):
    """A resumable Oracle that runs again the trials of dead workers.

    Each call a tuner makes renews its lease; `expire_leases` takes back
    the trial of a tuner silent for longer than `trial_timeout_s`.
    Subclasses that override `end_trial` start it with
    `if self._late_end(trial): return`.

    Args:
        trial_timeout_s: Seconds a tuner may stay silent before its trial is
            run again by another. Workers' tuners send a heartbeat while
            they fit, so this bounds silence, not a trial's length.
        *args, **kwargs: As for `keras_tuner.Oracle`.

    Raises:
        ValueError: If `trial_timeout_s` is not a finite number > 0.

    Example:
        >>> class MyOracle(LeasedOracle):
        ...     def populate_space(self, trial_id):
        ...         return {"status": "RUNNING", "values": {}}
        >>> oracle = MyOracle(objective="val_accuracy", trial_timeout_s=600)
    """

    def __init__(
        self,
        *args: Any,
        trial_timeout_s: float = DEFAULT_TIMEOUT_S,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._leases = Leases(trial_timeout_s)
        self.trial_timeout_s = self._leases.timeout_s

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        """Renews the tuner's lease, expires others', then creates a trial.

        Once no new trial may start, a tuner asking while others still run
        gets an IDLE trial, not STOPPED: a dead worker's trial may yet come
        back to be run again (see `expire_leases`).
        """
        self._leases.renew(tuner_id)
        self.expire_leases()
        if self._should_wait(tuner_id):
            return trial_module.Trial(self.get_space(), status=TrialStatus.IDLE)
        return super().create_trial(tuner_id)

    @keras_tuner.synchronized
    def update_trial(self, trial_id: str, metrics: dict, step: int = 0):
        """Records metrics; a late report on an ended trial is dropped."""
        self._renew_holder(trial_id)
        if trial_id in self.end_order:
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step=step)

    @keras_tuner.synchronized
    def get_trial(self, trial_id: str):
        """Returns a trial; from a worker's heartbeat it renews its lease."""
        self._renew_holder(trial_id)
        return super().get_trial(trial_id)

    @keras_tuner.synchronized
    def expire_leases(self) -> list[str]:
        """Takes back the trials of tuners silent for `trial_timeout_s`.

        A silent tuner is forgotten, so the chief can exit without it. Its
        trial is queued to run again without counting as a run (it did not
        fail), unless the objective already reached the oracle: the worker
        then died after its fit, and the trial is ended instead.

        Returns:
            The tuners found silent.
        """
        silent = self._leases.expired([*self.tuner_ids, *self.ongoing_trials])
        for tuner_id in silent:
            self._leases.forget(tuner_id)
            self.tuner_ids.discard(tuner_id)
            trial = self.ongoing_trials.pop(tuner_id, None)
            if trial is not None:
                self._take_back(tuner_id, trial)
        return silent

    def _take_back(self, tuner_id: str, trial) -> None:
        reported = self._reported(trial)
        fate = "ended as reported" if reported else "will run again"
        print(f"Tuner {tuner_id} silent for over {self.trial_timeout_s:g} "
              f"s; its trial {trial.trial_id} {fate}")
        if reported:
            trial.status = TrialStatus.COMPLETED
            self.end_trial(trial)
        else:
            self._retry_queue.append(trial.trial_id)
            self.save()

    def _renew_holder(self, trial_id: str) -> None:
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                self._leases.renew(tuner_id)

    def _should_wait(self, tuner_id: str) -> bool:
        """Whether a tuner must wait for others' trials instead of stopping."""
        if tuner_id in self.ongoing_trials or self._retry_queue:
            return False
        if not self._no_new_trials():
            return False
        return any(t != tuner_id for t in self.ongoing_trials)

    def _no_new_trials(self) -> bool:
        """Whether no new trial may start; subclasses add their limits."""
        return bool(self.max_trials and len(self.trials) >= self.max_trials)

    def _late_end(self, trial) -> bool:
        """Renews the holder's lease; True, and says so, for a late end."""
        self._renew_holder(trial.trial_id)
        if self._accept_end(trial):
            return False
        print(f"Ignored a late end of trial {trial.trial_id} "
              f"({trial.status}): it is ended or queued to run again")
        return True

    def _accept_end(self, trial) -> bool:
        """Whether an end_trial call counts.

        Ends of a trial already ended are late duplicates. A trial in the
        retry queue was taken back from a silent worker (or awaits a
        retry), so an end for it comes from that worker, late: its
        COMPLETED result is kept (the trial leaves the queue), anything
        else is left to the rerun.
        """
        if trial.trial_id in self.end_order:
            return False
        if trial.trial_id in self._retry_queue:
            if trial.status != TrialStatus.COMPLETED:
                return False
            self._retry_queue.remove(trial.trial_id)
        return True


def heartbeat_interval(timeout_s: float) -> float:
    """Seconds between heartbeats: four chances per timeout."""
    return timeout_s / 4


def poll_interval(timeout_s: float) -> float:
    """Seconds an idle worker waits before asking for a trial again."""
    return min(5.0, timeout_s / 8)


@contextlib.contextmanager
def heartbeat(oracle: Any, trial_id: str, timeout_s: float) -> Iterator[None]:
    """Renews the lease on `trial_id` from a thread while the body runs.

    Args:
        oracle: The worker's oracle (keras-tuner's gRPC OracleClient); its
            `get_trial` reaches the chief, which renews the lease.
        trial_id: The trial being run.
        timeout_s: The oracle's trial timeout.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_interval(timeout_s)):
            try:
                oracle.get_trial(trial_id)
            except Exception:  # noqa: BLE001
                # A missed beat risks only a rerun; a chief that is gone
                # is reported by the tuner's own next call.
                pass

    # A daemon, and never joined: a beat may wait on an unreachable chief.
    threading.Thread(
        target=beat, name=f"fnas-heartbeat-{trial_id}", daemon=True
    ).start()
    try:
        yield
    finally:
        stop.set()


def checked_timeout(timeout_s: Any) -> float:
    """Returns a trial timeout as a float.

    Raises:
        ValueError: If it is not a finite number > 0.
    """
    return validation.positive_number("trial_timeout_s", timeout_s)
