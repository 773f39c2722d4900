"""FNASOracle: the RL controller behind keras-tuner's Oracle interface.

Every hyperparameter is one categorical decision of the controller. Before a
sample becomes a trial it passes the latency gate: a child over the spec is
logged to `rejected.jsonl` and never trained, and the controller samples
again (under the paper's "fnas" rule it also gets the penalty reward at
once; under the default "constrained" rule a rejection teaches nothing, so
trials are draws from the policy truncated to the children within the
spec). Trained children are rewarded when their trial ends.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from fnas_keras import controller as controller_module
from fnas_keras import decisions as decisions_module
from fnas_keras import gate as gate_module
from fnas_keras import lease
from fnas_keras import progress
from fnas_keras import reward as reward_module
from fnas_keras import storage
from fnas_keras import validation

TrialStatus = trial_module.TrialStatus

_SAVE_EVERY_REJECTIONS = 100
# A space with at most this many decision combinations is enumerated when
# the controller stops proposing new children (each untried one is judged).
_MAX_ENUMERATED = 10_000


class FNASOracle(lease.LeasedOracle):
    """An LSTM controller trained with REINFORCE, gated by FPGA latency.

    Args:
        objective: As for any keras-tuner Oracle; its value is the accuracy
            term of the reward (negated when the direction is "min").
        max_trials: Number of trained children at most.
        latency_spec_ms: The latency spec; None searches on accuracy alone.
        reward: "constrained" (default: accuracy alone among children
            within the spec; rejections teach nothing), "fnas" (the
            paper's), "mnas_soft", "mnas_hard" or "accuracy".
        enforce_spec: Reject children over the spec before training. False
            measures latency (when a gate is set) but trains every child.
        max_episodes: Children judged at most, trained and rejected
            together (None: no limit); NAS and FNAS compare at equal
            episodes.
        max_rejections: Samples in a row without a new child before the
            oracle draws untried children itself: all of a space of at
            most 10,000 combinations, in a random order, else this many
            uniform ones. The search ends when none is found ("exhausted"
            only when every child was tried), or stops with an error when
            no child has ever met the spec.
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
        reward: str = reward_module.DEFAULT,
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
            trial_timeout_s=trial_timeout_s,
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
        self.gate: gate_module.Gate | None = None
        options = dict(
            controller_module.CONSTRAINED
            if self.reward_rule == "constrained" else {}
        )
        options.update(controller_options or {})
        self.controller = controller_module.Controller(seed=self.seed,
                                                       **options)
        self._decisions = decisions_module.Decisions(float_values)
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

    # Sampling ------------------------------------------------------------

    def populate_space(self, trial_id: str) -> dict:
        """Samples until a new child passes the gate; see the module doc.

        After `max_rejections` samples in a row without a new child, it
        draws untried children itself (see `_fallback`).
        """
        if not self.hyperparameters.space:
            raise keras_tuner.errors.FatalValueError(
                "the search space is empty: the hypermodel declared no "
                "hyperparameters, so there is nothing to search"
            )
        for _ in range(self.max_rejections):
            if self.episodes_left() == 0:
                return {"status": TrialStatus.STOPPED, "values": None}
            # The gate's builds can reveal new (e.g. loop-dependent) ones.
            self._decisions.sync(self.hyperparameters, self.controller)
            result = self._consider(trial_id, self.controller.sample(), True)
            if result is not None:
                return result
        return self._fallback(trial_id)

    def _consider(
        self, trial_id: str, decisions: list, learn: bool
    ) -> dict | None:
        """Judges one sampled child; returns its RUNNING answer if new.

        Args:
            trial_id: The trial the child would become.
            decisions: The child's decisions.
            learn: Whether the controller drew it (and so may learn from a
                rejection or a repeat); False for the fallback's draws.

        Returns:
            The populate_space answer for a new child within the spec, or
            None for a repeat or a rejection.
        """
        values = self._decisions.values_for(self.hyperparameters, decisions)
        self.num_samples += 1
        digest = self._compute_values_hash(values)
        if not self._duplicate(values):
            verdict = self._judge(digest, values)
            if verdict.rejected:
                self._reject(digest, values, decisions, verdict, learn)
                return None
            if not self._duplicate(values):  # Not completed into a tried one.
                self._pending[trial_id] = {
                    "decisions": decisions,
                    "report": verdict.figures,
                }
                return {"status": TrialStatus.RUNNING, "values": values}
            digest = self._compute_values_hash(values)
        if learn:
            self._reward_duplicate(digest, decisions)
        return None

    def _tried(self, decisions: list) -> bool:
        """Whether a child was trained (or is training) or rejected."""
        values = self._decisions.values_for(self.hyperparameters, decisions)
        return (self._duplicate(values)
                or self._compute_values_hash(values) in self._rejected)

    def _fallback(self, trial_id: str) -> dict:
        """Draws untried children after the controller kept repeating.

        A space of at most `_MAX_ENUMERATED` decision combinations is
        enumerated in a random order, judging each untried child until one
        meets the spec; "exhausted" is said only when none is left. A
        larger space gets `max_rejections` uniform draws, and the message
        says what is known without claiming exhaustion.

        Raises:
            keras_tuner.errors.FatalValueError: When no child was ever within
                the spec (no trial yet) and none was found here either.
        """
        sizes = self.controller.sizes
        size = math.prod(sizes)
        enumerate_all = size <= _MAX_ENUMERATED
        draws = (
            (list(np.unravel_index(i, sizes)) for i in
             self.controller.shuffled(size)) if enumerate_all else
            (self.controller.uniform() for _ in range(self.max_rejections))
        )
        seen = set()
        for decisions in draws:
            decisions = [int(a) for a in decisions]
            values = self._decisions.values_for(self.hyperparameters, decisions)
            seen.add(self._compute_values_hash(values))
            if self._tried(decisions):
                continue
            if self.episodes_left() == 0:
                return {"status": TrialStatus.STOPPED, "values": None}
            result = self._consider(trial_id, decisions, False)
            if result is not None:
                return result
        if not self.trials:
            self._over_spec_error()
        if enumerate_all:
            print(
                f"Search space exhausted: every one of its {len(seen)} "
                f"architectures was tried: {len(self.trials)} trained, "
                f"{len(self._rejected)} rejected by the gate; none is left "
                f"within the spec; stopping."
            )
        else:
            print(
                f"No new child within the spec in {self.max_rejections} "
                f"samples from the controller and {self.max_rejections} "
                f"uniform ones ({len(self.trials)} trained, "
                f"{len(self._rejected)} rejected, of {size} decision "
                "combinations); the space is not exhausted, but stopping."
            )
        return {"status": TrialStatus.STOPPED, "values": None}

    def _judge(self, digest: str, values: dict) -> gate_module.Verdict:
        """Runs the gate on one child; a repeat of a rejected one is cached."""
        if digest in self._rejected:
            latency, reason = self._rejected[digest]
            latency = math.inf if latency is None else latency
            return gate_module.Verdict(True, latency, None, reason, 0.0)
        verdict = gate_module.judge(
            self.gate, values, self.latency_spec_ms, self.enforce_spec
        )
        if verdict.figures is not None:
            self.fastest_ms = _min(self.fastest_ms, verdict.latency_ms)
        return verdict

    def _reject(
        self,
        digest: str,
        values: dict,
        decisions: list,
        verdict: gate_module.Verdict,
        learn: bool = True,
    ) -> None:
        """Logs and remembers one child over the spec; penalises if the rule
        has a penalty and the controller drew it (`learn`)."""
        spec = self.latency_spec_ms
        latency = verdict.latency_ms
        value = reward_module.rejected(self.reward_rule, latency, spec)
        if value is not None and learn:
            self._log_progress(self.controller.update(decisions, value))
        self.num_rejected += 1
        finite = latency if math.isfinite(latency) else None
        self._rejected[digest] = (finite, verdict.reason)
        record = {
            # The sample that drew it: one per record, and what a resume
            # compares with the saved state to drop unsaved records.
            "step": self.num_samples,
            "update": self.controller.step,
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

    def _no_new_trials(self) -> bool:
        """Whether max_trials or max_episodes allows no new trial."""
        return super()._no_new_trials() or self.episodes_left() == 0

    def _over_spec_error(self) -> None:
        """Raises: no child judged so far meets the spec."""
        fastest = (
            "none fits on the device"
            if self.fastest_ms is None
            else f"the fastest seen is {self.fastest_ms:.3f} ms"
        )
        raise keras_tuner.errors.FatalValueError(
            f"{self.max_rejections} children in a row were over the "
            f"latency spec of {self.latency_spec_ms} ms, and so was every "
            f"untried one drawn after them ({fastest}); raise "
            "latency_spec_ms, pick a larger device or shrink the search "
            "space"
        )

    # Trial life cycle ----------------------------------------------------

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        """Creates a trial and attaches its FPGA figures as metrics.

        See `lease.LeasedOracle.create_trial` for when a tuner must wait.
        """
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
        first COMPLETED one; see `lease.LeasedOracle._accept_end`.
        """
        if self._late_end(trial):
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
            decisions = self._decisions.full(
                decisions, trial.hyperparameters.values
            )
            stats = self.controller.update(decisions, value)
            self._log_progress(stats)

    def _trained_reward(self, trial, update_baseline: bool) -> float:
        """The reward of an ended trial; a failed one counts as accuracy 0."""
        spec = self.latency_spec_ms
        if trial.status != TrialStatus.COMPLETED or trial.score is None:
            return reward_module.failed(self.reward_rule)
        accuracy = trial.score
        if self.objective.direction == "min":
            accuracy = -accuracy
        latency = gate_module.metric(trial, "latency_ms")
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
        latency = gate_module.metric(trial, "latency_ms")
        spec = self.latency_spec_ms
        if not self.enforce_spec or spec is None or latency is None:
            return True
        return latency <= spec

    # State ---------------------------------------------------------------

    def get_state(self) -> dict:
        state = super().get_state()
        state["fnas"] = {
            "decisions": self._decisions.choices,
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
        self._decisions = decisions_module.Decisions(
            self.float_values, fnas["decisions"]
        )
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
            keep=lambda record: record["step"] <= self.num_samples,
        )
        self._rejected = {
            self._compute_values_hash(r["values"]): (r["latency_ms"],
                                                     r["reason"])
            for r in kept
        }

    def save(self) -> None:
        """Writes the controller, then oracle.json, each atomically.

        oracle.json names the controller file it goes with, so a kill
        between the two writes leaves the previous pair intact. The
        rejection log is forced to disk first: oracle.json counts its lines.
        """
        storage.sync(self._rejected_path())
        self._controller_file = self._save_controller()
        super().save()
        storage.remove_stale(
            self._project_dir, "controller-*.npz", keep=self._controller_file
        )

    def reload(self) -> None:
        """Reloads and repairs (see `resume`), then rewards ended trials."""
        super().reload()
        self._settle_ended_trials()

    def _save_controller(self) -> str:
        # Numbered by save, not by step: sampling moves the random state
        # without a step, and the file oracle.json names must never be
        # overwritten before the new oracle.json is in place.
        number = int(self._controller_file[11:19] or 0) + 1
        name = f"controller-{number:08d}.npz"
        self.controller.save(os.path.join(self._project_dir, name))
        return name

    def _rejected_path(self) -> str:
        return os.path.join(self._project_dir, "rejected.jsonl")

    def rejected(self) -> list[dict]:
        """Every rejected child so far, as logged in rejected.jsonl."""
        return storage.read_jsonl(self._rejected_path())


# Every report figure is a cost to minimise except throughput.
_DIRECTIONS = {"throughput_fps": "max"}


def _attach_report(trial, figures: dict | None) -> None:
    """Records a child's FPGA figures as metrics of its trial."""
    for name, value in (figures or {}).items():
        if not trial.metrics.exists(name):  # A retried trial has them.
            trial.metrics.register(name, direction=_DIRECTIONS.get(name,
                                                                   "min"))
            trial.metrics.update(name, value)


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
    return validation.positive_number("latency_spec_ms", spec)
