"""FNASOracle: the RL controller behind keras-tuner's Oracle interface.

Every hyperparameter is one categorical decision of the controller. Before a
sample becomes a trial it passes the latency gate: a child over the spec gets
the penalty reward at once, is logged to `rejected.jsonl` and is never
trained. Trained children are rewarded when their trial ends.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import time
from typing import Any
from typing import Callable
from typing import NamedTuple

import keras_tuner
import numpy as np
from keras_tuner.src.engine import trial as trial_module

from fnas_keras import controller as controller_module
from fnas_keras import fpga
from fnas_keras import lease
from fnas_keras import progress
from fnas_keras import reward as reward_module
from fnas_keras import storage

TrialStatus = trial_module.TrialStatus
Gate = Callable[[dict], "fpga.LatencyReport"]

# Ints and Floats with a step and at most this many values are enumerated;
# larger or step-less ranges get `float_values` points on their scale.
_MAX_ENUMERATED = 64
_SAVE_EVERY_REJECTIONS = 100
_REPORT_METRICS = ("latency_ms", "dsp_used", "bram18_used", "throughput_fps")


class FNASOracle(keras_tuner.Oracle):
    """An LSTM controller trained with REINFORCE, gated by FPGA latency.

    Args:
        objective: As for any keras-tuner Oracle; its value is the accuracy
            term of the reward (negated when the direction is "min").
        max_trials: Number of trained children at most.
        latency_spec_ms: The latency spec; None searches on accuracy alone.
        reward: "fnas" (default), "mnas_soft", "mnas_hard" or "accuracy".
        enforce_spec: Reject children over the spec before training. False
            measures latency (when a gate is set) but trains every child.
        max_episodes: Children judged at most, trained and rejected
            together (None: no limit); NAS and FNAS compare at equal
            episodes.
        max_rejections: Samples in a row without a new trial before the
            search stops with an error (all over spec) or ends (exhausted).
        float_values: Values a Float or step-less range is discretised into.
        display: "table" (keras-tuner's per-trial table) or "lines" (one
            line per trial). Rejections are one line each in both.
        controller_options: Keyword arguments for `controller.Controller`.
        seed: Seed of the controller; same seed, same samples.
        trial_timeout_s: In distributed tuning, seconds a worker may stay
            silent before its trial is run again by another (see
            `expire_leases`). Workers' tuners send a heartbeat while they
            fit, so this bounds silence, not a trial's length.
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As for
            `keras_tuner.Oracle`.

    Example:
        >>> oracle = FNASOracle(objective="val_accuracy", max_trials=10,
        ...                     latency_spec_ms=5.0, seed=1)
        >>> oracle.gate = lambda values: fpga.analyze(layers(values), "pynq-z1")
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 10,
        *,
        latency_spec_ms: float | None = None,
        reward: str = "fnas",
        enforce_spec: bool = True,
        max_episodes: int | None = None,
        max_rejections: int = 1000,
        float_values: int = 10,
        display: str = "table",
        controller_options: dict | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        trial_timeout_s: float = lease.DEFAULT_TIMEOUT_S,
    ):
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        _check_positive_int("max_trials", max_trials)
        _check_positive_int("max_rejections", max_rejections)
        if max_episodes is not None:
            _check_positive_int("max_episodes", max_episodes)
        self.max_episodes = max_episodes
        if display not in ("table", "lines"):
            raise ValueError(
                f"unknown display {display!r}; known: table, lines"
            )
        if display == "lines":
            self._display = progress.LineDisplay(oracle=self)
        _check_positive_int("float_values", float_values)
        self.latency_spec_ms = checked_spec(latency_spec_ms)
        self.reward_rule = reward_module.check_rule(reward)
        self.enforce_spec = bool(enforce_spec)
        self.max_rejections = max_rejections
        self.float_values = float_values
        self.gate: Gate | None = None
        self.controller = controller_module.Controller(
            seed=self.seed, **(controller_options or {})
        )
        self._decisions: dict[str, list] = {}
        self._pending: dict[str, dict] = {}
        self._accuracy_baseline: float | None = None
        # Values hash -> (latency or None, reason) of each rejected child.
        self._rejected: dict[str, tuple[float | None, str]] = {}
        self._controller_file = ""
        self.num_rejected = 0
        self.num_samples = 0
        # Trial id -> [start, end] wall-clock times (seconds since epoch).
        self.trial_times: dict[str, list] = {}
        self.fastest_ms: float | None = None
        # Set by the tuner on the chief: progress.ControllerLog or None.
        self.progress = None
        self._leases = lease.Leases(trial_timeout_s)
        self.trial_timeout_s = self._leases.timeout_s

    # Sampling ------------------------------------------------------------

    def populate_space(self, trial_id: str) -> dict:
        """Samples until a new child passes the gate; see the module doc."""
        if not self.hyperparameters.space:
            raise keras_tuner.errors.FatalValueError(
                "the search space is empty: the hypermodel declared no "
                "hyperparameters, so there is nothing to search"
            )
        over_spec = 0
        for _ in range(self.max_rejections):
            if self.episodes_left() == 0:
                return {"status": TrialStatus.STOPPED, "values": None}
            # The gate's builds can reveal new (e.g. loop-dependent) ones.
            self._sync_decisions()
            decisions = self.controller.sample()
            values = self._values_for(decisions)
            self.num_samples += 1
            digest = self._compute_values_hash(values)
            if self._duplicate(values):
                self._reward_duplicate(digest, decisions)
                continue
            verdict = self._judge(digest, values)
            if verdict.rejected:
                over_spec += 1
                self._reject(digest, values, decisions, verdict)
                continue
            self._pending[trial_id] = {
                "decisions": decisions,
                "report": verdict.figures,
            }
            return {"status": TrialStatus.RUNNING, "values": values}
        return self._give_up(over_spec)

    def _sync_decisions(self) -> None:
        """Adds a decision for each hyperparameter the controller lacks."""
        for hp in self.hyperparameters.space:
            if hp.name not in self._decisions:
                choices = decision_values(hp, self.float_values)
                self._decisions[hp.name] = choices
                self.controller.add_decision(len(choices))

    def _values_for(self, decisions: list[int]) -> dict:
        """Maps decisions to the values of the active hyperparameters."""
        hps = keras_tuner.HyperParameters()
        index = {name: i for i, name in enumerate(self._decisions)}
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                choices = self._decisions[hp.name]
                hps.values[hp.name] = choices[decisions[index[hp.name]]]
        return hps.values

    def _judge(self, digest: str, values: dict) -> "Verdict":
        """Runs the gate on one child; a repeat of a rejected one is cached.

        A child that does not fit on the device at all is rejected with an
        infinite latency.
        """
        if digest in self._rejected:
            latency, reason = self._rejected[digest]
            latency = math.inf if latency is None else latency
            return Verdict(True, latency, None, reason, 0.0)
        if self.gate is None:
            return Verdict(False, None, None, "", 0.0)
        started = time.perf_counter()
        try:
            report = self.gate(values)
        except fpga.ResourceError as error:
            seconds = time.perf_counter() - started
            return Verdict(True, math.inf, None, str(error), seconds)
        seconds = time.perf_counter() - started
        if report is None:  # The child did not build; its trial fails.
            return Verdict(False, None, None, "", seconds)
        latency = report.latency_ms
        self.fastest_ms = _min(self.fastest_ms, latency)
        spec = self.latency_spec_ms
        over = self.enforce_spec and spec is not None and latency > spec
        figures = _report_figures(report)
        return Verdict(over, latency, figures, "over spec", seconds)

    def _reject(
        self, digest: str, values: dict, decisions: list, verdict: "Verdict"
    ) -> None:
        """Penalises, logs and remembers one child over the spec."""
        spec = self.latency_spec_ms
        latency = verdict.latency_ms
        value = reward_module.rejected(self.reward_rule, latency, spec)
        stats = self.controller.update(decisions, value)
        self.num_rejected += 1
        finite = latency if math.isfinite(latency) else None
        self._rejected[digest] = (finite, verdict.reason)
        record = {
            "step": stats.step,
            "values": values,
            "latency_ms": finite,
            "dsp_used": (verdict.figures or {}).get("dsp_used"),
            "bram18_used": (verdict.figures or {}).get("bram18_used"),
            "spec_ms": spec,
            "reason": verdict.reason,
            "reward": value,
            "time": time.time(),
            "gate_s": verdict.seconds,
        }
        storage.append_jsonl(self._rejected_path(), record)
        self._log_progress(stats)
        if self.verbose:
            shown = "does not fit" if finite is None else f"{finite:.3f} ms"
            print(
                f"Rejected child {self.num_rejected}: latency {shown} > spec "
                f"{spec} ms, not trained"
            )
        if self.num_rejected % _SAVE_EVERY_REJECTIONS == 0:
            self.save()

    def _reward_duplicate(self, digest: str, decisions: list) -> None:
        """Rewards a repeat of an ended trial with its known result."""
        trial = self._trial_by_hash(digest)
        if trial is None or trial.status == TrialStatus.RUNNING:
            return
        value = self._trained_reward(trial, update_baseline=False)
        stats = self.controller.update(decisions, value)
        self._log_progress(stats)

    def _trial_by_hash(self, digest: str):
        for trial_id, trial_digest in self._id_to_hash.items():
            if trial_digest == digest and trial_id in self.trials:
                return self.trials[trial_id]
        return None

    def _log_progress(self, stats) -> None:
        if self.progress is not None:
            self.progress.on_update(stats, self)

    def episodes_left(self) -> int | None:
        """Children that may still be judged under max_episodes, or None."""
        if self.max_episodes is None:
            return None
        return max(0, self.max_episodes - len(self.trials) - self.num_rejected)

    def _give_up(self, over_spec: int) -> dict:
        """Stops after `max_rejections` samples without a new trial."""
        if over_spec == self.max_rejections:
            fastest = (
                "none fits on the device"
                if self.fastest_ms is None
                else f"the fastest seen is {self.fastest_ms:.3f} ms"
            )
            raise keras_tuner.errors.FatalValueError(
                f"{self.max_rejections} children in a row were over the "
                f"latency spec of {self.latency_spec_ms} ms ({fastest}); "
                "raise latency_spec_ms, pick a larger device or shrink the "
                "search space"
            )
        print(
            f"Search space exhausted: {self.max_rejections} samples in a row "
            "repeated architectures already tried; stopping."
        )
        return {"status": TrialStatus.STOPPED, "values": None}

    # Trial life cycle ----------------------------------------------------

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        """Creates a trial and attaches its FPGA figures as metrics.

        Once no new trial may start, a tuner asking while others still run
        gets an IDLE trial, not STOPPED: a dead worker's trial may yet come
        back to be run again (see `expire_leases`).
        """
        self._leases.renew(tuner_id)
        self.expire_leases()
        if self._should_wait(tuner_id):
            return trial_module.Trial(self.get_space(), status=TrialStatus.IDLE)
        trial = super().create_trial(tuner_id)
        pending = self._pending.get(trial.trial_id)
        if trial.status == TrialStatus.RUNNING and pending:
            _attach_report(trial, pending["report"])
            self.trial_times[trial.trial_id] = [time.time(), None]
            self._save_trial(trial)
        return trial

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        """Ends a trial, then rewards the controller for it.

        A late end from a worker presumed dead counts only if it is the
        first COMPLETED one; see `_accept_end`.
        """
        self._renew_holder(trial.trial_id)
        if not self._accept_end(trial):
            print(f"Ignored a late end of trial {trial.trial_id} "
                  f"({trial.status}): it is ended or queued to run again")
            return
        times = self.trial_times.get(trial.trial_id)
        if times is not None:
            times[1] = time.time()
            _attach_report(self.trials[trial.trial_id],
                           {"wall_time_s": times[1] - times[0]})
        try:
            super().end_trial(trial)
        finally:
            # keras-tuner raises on too many failures in a row before it
            # saves; saving anyway keeps a resume from training them again.
            self._save_trial(self.trials[trial.trial_id])
            self._settle_ended_trials()
            self.save()

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

    # Leases (distributed tuning) -----------------------------------------

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
        full = self.max_trials and len(self.trials) >= self.max_trials
        if not (full or self.episodes_left() == 0):
            return False
        return any(t != tuner_id for t in self.ongoing_trials)

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

    def score_trial(self, trial) -> None:
        """Scores a trial as keras-tuner does; a NaN score says so."""
        super().score_trial(trial)
        if trial.score is not None and math.isnan(trial.score):
            trial.message = f"objective {self.objective.name} is NaN"

    def _settle_ended_trials(self) -> None:
        """Rewards every pending child whose trial has ended (idempotent)."""
        ended = set(self.end_order)
        for trial_id in [t for t in self._pending if t in ended]:
            trial = self.trials[trial_id]
            value = self._trained_reward(trial, update_baseline=True)
            decisions = self._pending.pop(trial_id)["decisions"]
            stats = self.controller.update(
                self._full_decisions(decisions, trial), value
            )
            self._log_progress(stats)

    def _full_decisions(self, decisions: list, trial) -> list:
        """A child's decisions, extended to the controller's current size.

        While a child trains, other trials (other workers, or a restart)
        can reveal hyperparameters and so add decisions. Each added one
        takes the value the child was built with (a default), or its first
        choice when the child has none.
        """
        values = trial.hyperparameters.values
        added = list(self._decisions)[len(decisions):]
        return [*decisions, *(
            _index(self._decisions[name], values.get(name)) for name in added
        )]

    def _trained_reward(self, trial, update_baseline: bool) -> float:
        """The reward of an ended trial; a failed one counts as accuracy 0."""
        spec = self.latency_spec_ms
        if trial.status != TrialStatus.COMPLETED or trial.score is None:
            return reward_module.rejected(self.reward_rule, math.inf, spec or 1)
        accuracy = trial.score
        if self.objective.direction == "min":
            accuracy = -accuracy
        latency = metric(trial, "latency_ms")
        result = reward_module.trained(
            self.reward_rule, accuracy, latency, spec, self._accuracy_baseline
        )
        if update_baseline:
            self._accuracy_baseline = result.baseline
        return result.value

    def get_best_trials(self, num_trials: int = 1) -> list:
        """The best completed trials; with an enforced spec, within it."""
        trials = [
            t for t in self.trials.values()
            if t.status == TrialStatus.COMPLETED and self.meets_spec(t)
        ]
        trials.sort(
            key=lambda t: t.score, reverse=self.objective.direction == "max"
        )
        return trials[:num_trials]

    def meets_spec(self, trial) -> bool:
        """Whether a trial's latency is within the spec (or none is set)."""
        latency = metric(trial, "latency_ms")
        spec = self.latency_spec_ms
        if not self.enforce_spec or spec is None or latency is None:
            return True
        return latency <= spec

    # State ---------------------------------------------------------------

    def get_state(self) -> dict:
        state = super().get_state()
        state["fnas"] = {
            "decisions": self._decisions,
            "pending": self._pending,
            "accuracy_baseline": self._accuracy_baseline,
            "num_rejected": self.num_rejected,
            "num_samples": self.num_samples,
            "fastest_ms": self.fastest_ms,
            "trial_times": self.trial_times,
            "controller_file": self._controller_file,
        }
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        fnas = state["fnas"]
        self._decisions = fnas["decisions"]
        self._pending = fnas["pending"]
        self._accuracy_baseline = fnas["accuracy_baseline"]
        self.num_rejected = fnas["num_rejected"]
        self.num_samples = fnas["num_samples"]
        self.fastest_ms = fnas["fastest_ms"]
        self.trial_times = fnas["trial_times"]
        self._controller_file = fnas["controller_file"]
        path = os.path.join(self._project_dir, self._controller_file)
        self.controller = controller_module.Controller.load(path)
        self.discard_unsaved_rejections()

    def discard_unsaved_rejections(self) -> None:
        """Drops rejections logged after the controller was last saved.

        The restored controller and random state draw and log them again,
        once; a fresh search (no state) drops them all.
        """
        kept = storage.truncate_jsonl(
            self._rejected_path(),
            keep=lambda record: record["step"] <= self.controller.step,
        )
        self._rejected = {
            self._compute_values_hash(r["values"]): (r["latency_ms"],
                                                     r["reason"])
            for r in kept
        }

    def save(self) -> None:
        """Writes the controller, then oracle.json, each atomically.

        oracle.json names the controller file it goes with, so a kill
        between the two writes leaves the previous pair intact.
        """
        self._controller_file = self._save_controller()
        storage.write_json(self._get_oracle_fname(), self.get_state())
        storage.remove_stale(
            self._project_dir, "controller-*.npz", keep=self._controller_file
        )

    def reload(self) -> None:
        """Reloads, checking every state file and naming a corrupt one."""
        pattern = os.path.join(self._project_dir, "trial_*", "trial.json")
        for path in [self._get_oracle_fname(), *glob.glob(pattern)]:
            storage.read_json(path)
        super().reload()
        self._drop_unsaved_trials()
        self._end_reported_trials()
        self._settle_ended_trials()

    def _drop_unsaved_trials(self) -> None:
        """Forgets trials whose trial.json outlived the oracle.json save.

        A kill inside create_trial can leave a trial the saved oracle never
        started; the restored controller draws it again under the same id.
        """
        started = set(self.start_order)
        for trial_id in [t for t in self.trials if t not in started]:
            del self.trials[trial_id]
            shutil.rmtree(self._get_trial_dir(trial_id), ignore_errors=True)

    def _end_reported_trials(self) -> None:
        """Ends, instead of retrying, trials a kill left after their fit.

        keras-tuner's reload retries every ongoing trial. One already in
        end_order died between end_trial's saves and is done; one whose
        objective reached update_trial died before end_trial and only lacks
        its ending. Neither is trained again.
        """
        for trial_id in list(self._retry_queue):
            trial = self.trials[trial_id]
            if trial_id in self.end_order:
                self._retry_queue.remove(trial_id)
            elif self._reported(trial):
                self._retry_queue.remove(trial_id)
                trial.status = TrialStatus.COMPLETED
                # Quietly: the display lost the trial's start with the kill.
                verbose, self.verbose = self.verbose, 0
                try:
                    self.end_trial(trial)
                finally:
                    self.verbose = verbose

    def _reported(self, trial) -> bool:
        """Whether every objective metric of a trial has been reported."""
        names = getattr(self.objective, "name_to_direction", None)
        names = names or [self.objective.name]
        return all(trial.metrics.exists(name) for name in names)

    def _save_controller(self) -> str:
        # Numbered by save, not by step: sampling moves the random state
        # without a step, and the file oracle.json names must never be
        # overwritten before the new oracle.json is in place.
        number = int(self._controller_file[11:19] or 0) + 1
        name = f"controller-{number:08d}.npz"
        self.controller.save(os.path.join(self._project_dir, name))
        return name

    def _save_trial(self, trial) -> None:
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        storage.write_json(path, trial.get_state())

    def _rejected_path(self) -> str:
        return os.path.join(self._project_dir, "rejected.jsonl")

    def rejected(self) -> list[dict]:
        """Every rejected child so far, as logged in rejected.jsonl."""
        return storage.read_jsonl(self._rejected_path())


def decision_values(hp, float_values: int = 10) -> list:
    """The finite list of values one hyperparameter's decision chooses from.

    Args:
        hp: A keras-tuner hyperparameter.
        float_values: Points for a Float or Int without a usable step, spread
            on its sampling scale (linear, log or reverse_log).

    Returns:
        The values, in order.

    Raises:
        keras_tuner.errors.FatalValueError: For an unsupported type.
    """
    hp_types = keras_tuner.engine.hyperparameters
    if isinstance(hp, hp_types.Boolean):
        return [False, True]
    if isinstance(hp, hp_types.Fixed):
        return [hp.value]
    if isinstance(hp, hp_types.Choice):
        return list(hp.values)
    if isinstance(hp, (hp_types.Int, hp_types.Float)):
        cast = int if isinstance(hp, hp_types.Int) else float
        if hp.step is not None and hp._get_n_values() <= _MAX_ENUMERATED:
            count = hp._get_n_values()
            return [cast(hp._get_value_by_index(i)) for i in range(count)]
        probs = np.linspace(0.0, 1.0, float_values)
        points = [cast(hp._sample_numerical_value(p)) for p in probs]
        if hp.step is not None:
            points = [cast(hp.prob_to_value(min(p, 1 - 1e-9))) for p in probs]
        return list(dict.fromkeys(points))
    raise keras_tuner.errors.FatalValueError(
        f"hyperparameter {hp.name!r} of type {type(hp).__name__} cannot be "
        "searched; supported: Choice, Int, Float, Boolean, Fixed"
    )


class Verdict(NamedTuple):
    """The gate's judgement of one child."""

    rejected: bool
    latency_ms: float | None
    figures: dict | None
    reason: str
    seconds: float


def _report_figures(report) -> dict:
    return {name: float(getattr(report, name)) for name in _REPORT_METRICS}


def _attach_report(trial, figures: dict | None) -> None:
    """Records a child's FPGA figures as metrics of its trial."""
    for name, value in (figures or {}).items():
        if not trial.metrics.exists(name):  # A retried trial has them.
            trial.metrics.register(name, direction="min")
            trial.metrics.update(name, value)


def metric(trial, name: str) -> float | None:
    """The last value of a trial's metric, or None if it has none."""
    if not trial.metrics.exists(name):
        return None
    return trial.metrics.get_last_value(name)


def _index(choices: list, value: Any) -> int:
    return choices.index(value) if value in choices else 0


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def checked_spec(spec: float | None) -> float | None:
    """Returns a latency spec as a float, or None.

    Raises:
        ValueError: If it is not a finite number > 0 (zero, negative, NaN).
    """
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, (int, float)):
        raise ValueError(f"latency_spec_ms must be a number, got {spec!r}")
    if not (math.isfinite(spec) and spec > 0):
        raise ValueError(
            f"latency_spec_ms must be a finite number > 0, got {spec!r}"
        )
    return float(spec)
