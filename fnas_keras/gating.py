"""The FPGA latency gate on any keras-tuner tuner.

`gated(keras_tuner.BayesianOptimization)` is BayesianOptimization that
judges every child's FPGA latency before it is fitted: a child over the
spec is logged to `rejected.jsonl` (the format FNAS writes) and never
becomes a trial, so it spends neither `max_trials` nor Hyperband's budget.
Every trial records `latency_ms`, `dsp_used`, `bram18_used` and
`throughput_fps` as metrics.

Where each oracle is gated (their `populate_space` has side effects, so a
rejected child must never reach it):

* every oracle's random draws (`_random_values`: RandomSearch, Hyperband's
  first rounds, BayesianOptimization's initial points, a user's oracle
  that uses it) draw again until a child passes; a rejected child counts as
  already tried, so it is never drawn twice;
* GridSearch steps over rejected grid points in grid order
  (`_get_next_combination`), the first one included, and ends with the grid;
* BayesianOptimization's Gaussian process is told that a rejected child is
  bad: it enters the process's data with the worst score seen, so the
  acquisition moves away from it and its neighbours; a proposal that
  repeats a rejected child is replaced by a gated random draw;
* anything else a `populate_space` returns (a user's own oracle) is judged
  there, and `populate_space` is asked again after a rejection.

Hyperband's later rounds train children that already passed; they are not
judged again.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any
from typing import Sequence

import keras_tuner
import numpy as np
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.tuners import bayesian
from keras_tuner.src.tuners import gridsearch

from fnas_keras import fpga
from fnas_keras import gate as gate_module
from fnas_keras import oracle as oracle_module
from fnas_keras import progress
from fnas_keras import resume
from fnas_keras import storage
from fnas_keras import tuner as tuner_module

RUNNING = trial_module.TrialStatus.RUNNING
STOPPED = trial_module.TrialStatus.STOPPED

# keras-tuner's private names this module relies on (keras-tuner 1.4.x):
#   Oracle._random_values, ._duplicate, ._compute_values_hash,
#   ._project_dir, ._save_trial, ._display;
#   BayesianOptimizationOracle._vectorize_trials, ._nonfixed_space;
#   GridSearchOracle._get_next_combination, ._ordered_ids, ._populate_next.


def gated(tuner_class: type) -> type:
    """A subclass of `tuner_class` that gates children on FPGA latency.

    The subclass takes what `tuner_class` takes, plus the keyword arguments
    below. With no device it is `tuner_class` as it was.

    Args:
        tuner_class: `keras_tuner.RandomSearch`, `BayesianOptimization`,
            `Hyperband`, `GridSearch`, `keras_tuner.Tuner` or a subclass.

    Keyword arguments of the returned class:
        device: An `fpga.FpgaDevice` or a catalogue name ("xc7z020", ...).
        latency_spec_ms: The latency spec in milliseconds.
        bits: Datapath width: 8, 16 or 32.
        mapping: "pipelined" (one engine per layer) or "shared".
        enforce_spec: Reject children over the spec (default: whenever a
            spec is set); False measures latency and trains every child.
        input_shape: Shape of one example, for models with no Input; read
            from the data given to `search` by default.
        max_rejections: Children in a row over the spec before the search
            stops with an error naming the fastest latency seen.
        display: "table" (keras-tuner's) or "lines" (one line per trial).

    Returns:
        The gated tuner class, named `Gated<TunerClass>`.

    Raises:
        TypeError: If `tuner_class` is not a keras-tuner Tuner class.

    Example:
        >>> tuner = fnas_keras.gated(keras_tuner.BayesianOptimization)(
        ...     build_model, objective="val_accuracy", max_trials=20,
        ...     device="xc7z020", latency_spec_ms=8.0, directory="runs")
        >>> tuner.search(x, y, validation_data=(xv, yv), epochs=3)
    """
    if not (isinstance(tuner_class, type)
            and issubclass(tuner_class, keras_tuner.Tuner)):
        raise TypeError(
            f"gated() takes a keras-tuner Tuner class such as "
            f"keras_tuner.RandomSearch, got {tuner_class!r}"
        )
    return _gated_tuner_class(tuner_class)


@functools.lru_cache(maxsize=None)
def _gated_tuner_class(tuner_class: type) -> type:
    if issubclass(tuner_class, GatedTuner):
        return tuner_class
    bases = (GatedTuner,) if tuner_class is keras_tuner.Tuner else (
        tuner_class, GatedTuner)

    def __init__(
        self,
        *args: Any,
        device: str | fpga.FpgaDevice | None = None,
        latency_spec_ms: float | None = None,
        bits: int = 16,
        mapping: str = "pipelined",
        enforce_spec: bool | None = None,
        input_shape: Sequence[int] | None = None,
        max_rejections: int = 1000,
        display: str = "table",
        **kwargs: Any,
    ):
        self._configure_gate(
            device=device, latency_spec_ms=latency_spec_ms, bits=bits,
            mapping=mapping, enforce_spec=enforce_spec,
            input_shape=input_shape, max_rejections=max_rejections,
            display=display, overwrite=kwargs.get("overwrite", False),
        )
        tuner_class.__init__(self, *args, **kwargs)

    name = f"Gated{tuner_class.__name__}"
    namespace = {"__doc__": gated.__doc__, "__module__": __name__,
                 "__qualname__": name}
    if tuner_class is not keras_tuner.Tuner:
        namespace["__init__"] = __init__
    return type(name, bases, namespace)


class GatedTuner(keras_tuner.Tuner):
    """The gate's half of every `gated(...)` class; see `gated`.

    In the method order it comes after the user's tuner class and before
    `keras_tuner.Tuner`, so it receives the oracle that class built and
    gates it before keras-tuner starts or resumes the search.

    Example:
        >>> tuner = gated(keras_tuner.RandomSearch)(build_model, ...)
    """

    def __init__(self, oracle: Any, *args: Any, **kwargs: Any):
        if not hasattr(self, "_gate_options"):  # gated(keras_tuner.Tuner)
            self._configure_gate(
                **{k: kwargs.pop(k) for k in _GATE_ARGS if k in kwargs},
                overwrite=kwargs.get("overwrite", False),
            )
        if not isinstance(oracle, GatedOracle):
            oracle.__class__ = _gated_oracle_class(type(oracle))
            oracle.init_gate(**self._gate_options)
        super().__init__(oracle, *args, **kwargs)

    def _configure_gate(
        self,
        *,
        device: str | fpga.FpgaDevice | None = None,
        latency_spec_ms: float | None = None,
        bits: int = 16,
        mapping: str = "pipelined",
        enforce_spec: bool | None = None,
        input_shape: Sequence[int] | None = None,
        max_rejections: int = 1000,
        display: str = "table",
        overwrite: bool = False,
    ) -> None:
        (self.device, self.latency_spec_ms, self.enforce_spec,
         self.constraint) = gate_module.settings(
            device, latency_spec_ms, bits=bits, mapping=mapping,
            enforce_spec=enforce_spec, input_shape=input_shape,
        )
        self._input_shape = gate_module.shape_or_none(input_shape)
        self._resume = not overwrite
        self._gate_options = {
            "latency_spec_ms": self.latency_spec_ms,
            "enforce_spec": self.enforce_spec,
            "max_rejections": max_rejections,
            "display": display,
        }

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Searches as `tuner_class` does, judging each child first."""
        if self.constraint is not None and not self._is_worker():
            shape = self._input_shape or gate_module.infer_input_shape(
                fit_args, fit_kwargs
            )
            self.constraint.input_shape = shape
            self.oracle.gate = self._gate
        super().search(*fit_args, **fit_kwargs)

    def run_trial(self, trial, *fit_args: Any, **fit_kwargs: Any):
        """Fits one child; a NaN loss fails the trial, as in FNAS."""
        callbacks = list(fit_kwargs.get("callbacks") or [])
        callbacks.append(tuner_module.FailOnNaN(self.oracle.objective))
        fit_kwargs["callbacks"] = callbacks
        return super().run_trial(trial, *fit_args, **fit_kwargs)

    def _populate_initial_space(self) -> None:
        """Starts afresh, or resumes a search with no tuner0.json yet."""
        oracle_file = self.oracle._get_oracle_fname()
        if (self._resume and not self._is_worker()
                and os.path.exists(oracle_file)):
            print(f"Reloading Oracle from {oracle_file}")
            self.reload()
            return
        super()._populate_initial_space()
        if not self._is_worker():
            self.oracle.load_rejections()

    # The same as FNAS's (they use no super()): one copy, in tuner.py.
    _gate = tuner_module.FNAS._gate
    save = tuner_module.FNAS.save
    reload = tuner_module.FNAS.reload
    rejected = tuner_module.FNAS.rejected
    trials_table = tuner_module.FNAS.trials_table
    results_summary = tuner_module.FNAS.results_summary
    latency_report = tuner_module.FNAS.latency_report
    space_report = tuner_module.FNAS.space_report


_GATE_ARGS = ("device", "latency_spec_ms", "bits", "mapping",
              "enforce_spec", "input_shape", "max_rejections", "display")


class GatedOracle(resume.ResumableOracle):
    """What every gated oracle adds to its keras-tuner oracle class.

    `gated` turns the tuner's oracle into `Gated<OracleClass>`, a subclass
    of this and of the oracle's own class, and calls `init_gate`.

    Example:
        >>> tuner = gated(keras_tuner.RandomSearch)(build_model, ...)
        >>> tuner.oracle.num_rejected
        0
    """

    def init_gate(
        self,
        latency_spec_ms: float | None,
        enforce_spec: bool,
        max_rejections: int,
        display: str,
    ) -> None:
        """Sets up the gate's state on an oracle built by keras-tuner."""
        oracle_module._check_positive_int("max_rejections", max_rejections)
        if display not in ("table", "lines"):
            raise ValueError(
                f"unknown display {display!r}; known: table, lines"
            )
        if display == "lines":
            self._display = progress.LineDisplay(oracle=self)
        self.latency_spec_ms = latency_spec_ms
        self.enforce_spec = enforce_spec
        self.max_rejections = max_rejections
        self.gate: gate_module.Gate | None = None
        self.fastest_ms: float | None = None
        # Architecture hash -> the rejected.jsonl record of a rejected child.
        self._rejected: dict[str, dict] = {}
        # Architecture hash -> figures of a child that passed.
        self._passed: dict[str, dict | None] = {}
        # Trial id -> figures, from populate_space to create_trial.
        self._pending: dict[str, dict | None] = {}

    @property
    def num_rejected(self) -> int:
        """Children rejected in this search (under this spec)."""
        return len(self._rejected)

    # Judging -------------------------------------------------------------

    def judge(self, values: dict) -> gate_module.Verdict:
        """Judges one child once; a rejected one is logged the first time."""
        digest = self._architecture_hash(values)
        if digest in self._rejected:
            record = self._rejected[digest]
            latency = record["latency_ms"]
            latency = math.inf if latency is None else latency
            return gate_module.Verdict(True, latency, None, record["reason"],
                                       0.0)
        if digest in self._passed:
            figures = self._passed[digest]
            latency = None if figures is None else figures["latency_ms"]
            return gate_module.Verdict(False, latency, figures, "", 0.0)
        verdict = gate_module.judge(
            self.gate, values, self.latency_spec_ms, self.enforce_spec
        )
        digest = self._architecture_hash(values)  # The gate completes it.
        if verdict.figures is not None:
            self.fastest_ms = oracle_module._min(self.fastest_ms,
                                                 verdict.latency_ms)
        if verdict.rejected:
            self._log_rejection(digest, values, verdict)
        else:
            self._passed[digest] = verdict.figures
        return verdict

    def _log_rejection(self, digest: str, values: dict,
                       verdict: gate_module.Verdict) -> None:
        latency = verdict.latency_ms
        finite = latency if math.isfinite(latency) else None
        figures = verdict.figures or {}
        record = {
            "step": len(self._rejected) + 1,
            "values": {k: v for k, v in values.items()
                       if not k.startswith("tuner/")},
            "latency_ms": finite,
            "dsp_used": figures.get("dsp_used"),
            "bram18_used": figures.get("bram18_used"),
            "spec_ms": self.latency_spec_ms,
            "reason": verdict.reason,
            "reward": None,
            "time": time.time(),
            "gate_s": verdict.seconds,
        }
        storage.append_jsonl(self._rejected_path(), record)
        self._rejected[digest] = record
        if self.verbose:
            shown = "does not fit" if finite is None else f"{finite:.3f} ms"
            print(
                f"Rejected child {len(self._rejected)}: latency {shown} > "
                f"spec {self.latency_spec_ms} ms, not trained"
            )

    def _architecture_hash(self, values: dict) -> str:
        """The hash of a child's values without Hyperband's tuner/ keys."""
        return self._compute_values_hash(
            {k: v for k, v in values.items() if not k.startswith("tuner/")}
        )

    def _give_up(self) -> None:
        fastest = (
            "none fits on the device" if self.fastest_ms is None
            else f"the fastest seen is {self.fastest_ms:.3f} ms"
        )
        raise keras_tuner.errors.FatalValueError(
            f"{self.max_rejections} children in a row were over the latency "
            f"spec of {self.latency_spec_ms} ms ({fastest}); raise "
            "latency_spec_ms, pick a larger device or shrink the search space"
        )

    # Where children are proposed ------------------------------------------

    def _random_values(self) -> dict | None:
        """Random values of a child that passes the gate (None: exhausted)."""
        for _ in range(self.max_rejections):
            values = super()._random_values()
            if values is None or not self.judge(values).rejected:
                return values
        self._give_up()

    def _duplicate(self, values: dict) -> bool:
        """A rejected child counts as tried: random draws skip it."""
        return (super()._duplicate(values)
                or self._architecture_hash(values) in self._rejected)

    def populate_space(self, trial_id: str) -> dict:
        """The oracle's own proposal, judged; asked again after a rejection."""
        for _ in range(self.max_rejections):
            response = super().populate_space(trial_id)
            values = response.get("values")
            if response.get("status") != RUNNING or not values:
                return response
            verdict = self.judge(values)
            if not verdict.rejected:
                self._pending[trial_id] = verdict.figures
                return response
        self._give_up()

    # Trials and state ------------------------------------------------------

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        """Creates a trial and records its FPGA figures as metrics."""
        trial = super().create_trial(tuner_id)
        figures = self._pending.pop(trial.trial_id, None)
        if trial.status == RUNNING and figures:
            oracle_module._attach_report(trial, figures)
            self._save_trial(trial)
        return trial

    def reload(self) -> None:
        super().reload()
        self.load_rejections()

    def load_rejections(self) -> None:
        """Reads rejected.jsonl (a torn last line dropped) into the cache.

        After a kill, the oracle may draw again children it rejected after
        its last save; they are known from the log, so they are neither
        judged nor logged twice.
        """
        kept = storage.truncate_jsonl(self._rejected_path(), lambda r: True)
        self._rejected = {
            self._architecture_hash(r["values"]): r for r in kept
            if r.get("spec_ms") == self.latency_spec_ms
        }

    def _rejected_path(self) -> str:
        return os.path.join(self._project_dir, "rejected.jsonl")

    def rejected(self) -> list[dict]:
        """Every rejected child so far, as logged in rejected.jsonl."""
        return storage.read_jsonl(self._rejected_path())


class _GatedBayesian:
    """BayesianOptimization told that rejected children are bad."""

    def populate_space(self, trial_id: str) -> dict:
        """The process's proposal; a repeat of a rejected child is replaced.

        Values the process proposes are the centre of its acquisition's
        optimum, so it can propose a rejected child again even with that
        child in its data; a gated random draw replaces such a proposal.
        """
        response = super().populate_space(trial_id)
        values = response.get("values")
        if (response.get("status") == RUNNING and values
                and self._architecture_hash(values) in self._rejected):
            values = self._random_values()
            status = STOPPED if values is None else RUNNING
            return {"status": status, "values": values}
        return response

    def _vectorize_trials(self):
        """The process's data: trials, and rejected children as the worst.

        A rejected child has no accuracy; scoring it as the worst score
        seen (scores are negated for a "max" objective, so the largest y)
        is how a failed evaluation is usually told to a Gaussian process.
        """
        x, y = super()._vectorize_trials()
        if not len(y) or not self._rejected:
            return x, y
        rejected = [self._vector(r["values"]) for r in self._rejected.values()]
        worst = np.full(len(rejected), np.max(y))
        return np.vstack([x, rejected]), np.concatenate([y, worst])

    def _vector(self, values: dict) -> list[float]:
        """A child's values as the process's unit-cube vector."""
        hps = self.hyperparameters.copy()
        hps.values = dict(values)
        vector = []
        for hp in self._nonfixed_space():
            value = hp.default
            if hps.is_active(hp) and hp.name in values:
                value = values[hp.name]
            vector.append(hp.value_to_prob(value))
        return vector


class _GatedGrid:
    """GridSearch stepping over rejected grid points, in grid order."""

    def populate_space(self, trial_id: str) -> dict:
        """As GridSearch; a rejected first (default) point is stepped over."""
        if self.start_order:
            return super().populate_space(trial_id)
        hps = self.get_space()
        first = {hp.name: hp.default for hp in hps.space if hps.is_active(hp)}
        if not self.judge(first).rejected:
            return super().populate_space(trial_id)
        first = self._get_next_combination(first)
        if first is None:
            return {"status": STOPPED, "values": None}
        self._ordered_ids.insert(trial_id)
        self._populate_next.append(trial_id)
        return {"status": RUNNING, "values": first}

    def _get_next_combination(self, values: dict) -> dict | None:
        """The next grid point that passes the gate (None after the last)."""
        while True:
            values = super()._get_next_combination(values)
            if values is None or not self.judge(values).rejected:
                return values


@functools.lru_cache(maxsize=None)
def _gated_oracle_class(oracle_class: type) -> type:
    mixins = []
    if issubclass(oracle_class, bayesian.BayesianOptimizationOracle):
        mixins.append(_GatedBayesian)
    if issubclass(oracle_class, gridsearch.GridSearchOracle):
        mixins.append(_GatedGrid)
    # GatedOracle first: its populate_space judges what the mixins return.
    return type(f"Gated{oracle_class.__name__}",
                (GatedOracle, *mixins, oracle_class), {})
