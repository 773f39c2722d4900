"""FNAS: the drop-in keras-tuner Tuner for FPGA-aware architecture search."""

from __future__ import annotations

import math
import os
import time
from typing import Any
from typing import Sequence

import keras
import keras_tuner
import numpy as np

from fnas_keras import checkpoint
from fnas_keras import deploy
from fnas_keras import finiteness
from fnas_keras import fpga
from fnas_keras import gate
from fnas_keras import hypermodel as hypermodel_module
from fnas_keras import keras_reader
from fnas_keras import lease
from fnas_keras import oracle as oracle_module
from fnas_keras import progress
from fnas_keras import service
from fnas_keras import storage

_COLUMNS = ("latency_ms", "dsp_used", "bram18_used")
FIXED_METRIC = "val_accuracy_fixed"


class FNAS(keras_tuner.Tuner):
    """FPGA-implementation-aware NAS, used like `keras_tuner.RandomSearch`.

    An RL controller proposes children; each child's FPGA latency is computed
    from its layer shapes before training, and children over
    `latency_spec_ms` are rejected without being fitted. With no device and
    no spec it is plain NAS: the same controller on accuracy alone.

    Args:
        hypermodel: A `build_model(hp)` function or a `keras_tuner.HyperModel`.
        objective: The metric to maximise, e.g. "val_accuracy".
        max_trials: Number of children trained at most.
        device: An `fpga.FpgaDevice` or a catalogue name such as "xc7z020".
        latency_spec_ms: The latency spec in milliseconds.
        bits: Datapath width: 8, 16 or 32.
        mapping: One of `fpga.MAPPINGS`: "pipelined" (FNAS, one engine per
            layer), "shared" (one engine)...; the report names the mapping
            each child was timed with.
        reward: "constrained" (default: accuracy alone, only children
            within the spec proposed), "fnas" (the paper's), "mnas_soft",
            "mnas_hard" or "accuracy"; see `FNASOracle`.
        enforce_spec: Reject over-spec children (default: whenever a spec
            is set). False only measures latency, as plain NAS does.
        input_shape: Shape of one example, for models without an Input
            layer; by default it is read from the data given to `search`.
        max_episodes: Children judged at most, trained and rejected
            together; None for no limit besides max_trials.
        max_rejections: Samples in a row without a new trial before the
            search stops.
        float_values: Points each Float without a step is discretised into.
        display: "table" (keras-tuner's) or "lines" (one line per trial).
        controller_options: Keyword arguments for `controller.Controller`.
        seed: Random seed of the controller.
        fixed_point: Also measure every trained child within the spec as
            the FPGA computes it: `bits`-wide fixed point, types chosen
            from the data, in hls4ml's bit-accurate C simulation (needs
            g++), on the validation data. Recorded as the metric
            "val_accuracy_fixed", which can be the objective.
        fixed_point_examples: Validation examples the C simulation runs
            on (the first N); None for all. It costs seconds per image
            for the MNIST space's children (software fixed-point
            arithmetic), plus a g++ compile of minutes per child.
        trial_timeout_s: Distributed tuning: seconds a worker may be silent
            before the chief gives its trial to another worker. Workers
            send a heartbeat while they fit, so this is not a limit on a
            trial's length; give every process the same value.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As for
            keras-tuner's oracles. A child that fails (build error, NaN
            loss, out of memory) ends as a FAILED trial with the reason in
            its message, and the controller gets the rejection penalty, so
            it moves away; a failed architecture is never trained again.
            The search stops after max_consecutive_failed_trials (3, as in
            keras-tuner; None for no limit) failures in a row, which is
            what a broken training script produces. Rejected children are
            not trials and never count.
        **kwargs: What every keras-tuner Tuner takes: directory,
            project_name, overwrite, executions_per_trial,
            distribution_strategy, max_model_size, optimizer, loss, metrics...

    Raises:
        ValueError: For an unknown device, bits, mapping or reward, or a spec
            that is not a positive number.

    Example:
        >>> tuner = FNAS(build_model, objective="val_accuracy", max_trials=20,
        ...              device="xc7z020", latency_spec_ms=8.0,
        ...              directory="runs", project_name="mnist")
        >>> tuner.search(x, y, validation_data=(xv, yv), epochs=3)
        >>> best = tuner.get_best_models(1)[0]
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        *,
        device: str | fpga.FpgaDevice | None = None,
        latency_spec_ms: float | None = None,
        bits: int = 16,
        mapping: str = "pipelined",
        reward: str = "constrained",
        enforce_spec: bool | None = None,
        input_shape: Sequence[int] | None = None,
        max_episodes: int | None = None,
        max_rejections: int = 1000,
        float_values: int = 10,
        display: str = "table",
        controller_options: dict | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        fixed_point: bool = False,
        fixed_point_examples: int | None = None,
        trial_timeout_s: float = lease.DEFAULT_TIMEOUT_S,
        **kwargs: Any,
    ):
        objective = _fixed_point_objective(objective, fixed_point, device,
                                           bits)
        self.fixed_point = bool(fixed_point)
        self.fixed_point_examples = fixed_point_examples
        (self.device, self.latency_spec_ms, self.enforce_spec,
         self.constraint) = gate.settings(
            device, latency_spec_ms, bits=bits, mapping=mapping,
            enforce_spec=enforce_spec, input_shape=input_shape,
        )
        self._input_shape = gate.shape_or_none(input_shape)
        # keras-tuner resumes only once tuner0.json exists (first written
        # when a trial ends); FNAS resumes from oracle.json too.
        self._resume = not kwargs.get("overwrite", False)
        oracle = oracle_module.FNASOracle(
            objective=objective,
            max_trials=max_trials,
            latency_spec_ms=self.latency_spec_ms,
            reward=reward,
            enforce_spec=self.enforce_spec,
            max_episodes=max_episodes,
            max_rejections=max_rejections,
            float_values=float_values,
            display=display,
            controller_options=controller_options,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            trial_timeout_s=trial_timeout_s,
        )
        # Read here, never through self.oracle: on a worker that becomes
        # keras-tuner's gRPC client, which exposes only a few attributes.
        self.trial_timeout_s = oracle.trial_timeout_s
        self._idle = False
        self._probe = None
        super().__init__(oracle, hypermodel, **kwargs)
        self.oracle = service.worker_client(self.oracle)

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Searches, as `keras_tuner.Tuner.search`: takes what `fit` takes.

        The latency gate is set up here, on the process that holds the
        oracle (the chief in distributed tuning), with the input shape read
        from the data when the model has no Input layer.

        Raises:
            finiteness.NonFiniteDataError: If the data hold NaN or infinity
                (see `finiteness.checked_fit_data`).
        """
        fit_args, fit_kwargs, self._probe = finiteness.checked_fit_data(
            fit_args, fit_kwargs
        )
        if not self._is_worker():
            self.oracle.progress = progress.ControllerLog(self.project_dir)
        if self.constraint is not None and not self._is_worker():
            shape = self._input_shape or gate.infer_input_shape(
                fit_args, fit_kwargs
            )
            self.constraint.input_shape = shape
            self.oracle.gate = self._gate
        try:
            if service.is_chief():
                self._serve(fit_kwargs)
            else:
                super().search(*fit_args, **fit_kwargs)
        finally:
            if not self._is_worker():
                self.oracle.progress.close()

    def _serve(self, fit_kwargs: dict) -> None:
        """The chief's search: serves the oracle until the search ends."""
        if "verbose" in fit_kwargs:
            self.oracle.verbose = fit_kwargs["verbose"]
        self.save()
        service.serve(self.oracle)

    def run_trial(self, trial, *fit_args: Any, **fit_kwargs: Any):
        """Fits one child; with fixed_point, also its fixed-point accuracy."""
        results = self._fit_trial(trial, *fit_args, **fit_kwargs)
        latency = gate.metric(trial, "latency_ms")
        spec = self.latency_spec_ms
        within = latency is None or spec is None or latency <= spec
        if not self.fixed_point or not (
                within or FIXED_METRIC in self.oracle.objective.name):
            return results
        metrics = _history_metrics(results, self.oracle.objective)
        metrics.update(self._fixed_point_metrics(trial, fit_args,
                                                 fit_kwargs))
        return metrics

    def _fixed_point_metrics(self, trial, fit_args, fit_kwargs) -> dict:
        """val_accuracy_fixed of the trial's saved (best-epoch) model, its
        agreement with float, and the seconds the C simulation took."""
        validation = fit_kwargs.get("validation_data")
        if validation is None:
            raise keras_tuner.errors.FatalValueError(
                "fixed_point=True needs validation_data in search()")
        x, y = deploy.examples(validation, self.fixed_point_examples)
        train = fit_args[0] if fit_args else fit_kwargs.get("x")
        if isinstance(train, np.ndarray):
            calibration = train[:256]
        else:
            calibration = deploy.examples(train, 256)[0]
        figures = deploy.evaluate(
            self.load_model(trial), x, y, self.device, self.constraint.bits,
            calibration, mapping=self.constraint.mapping)
        # The agreement is with float on the same examples.
        return {FIXED_METRIC: figures["fixed"],
                "fixed_point_agreement": figures["agreement"],
                "fixed_point_s": figures["seconds"]}

    def _gate(self, values: dict) -> fpga.LatencyReport | None:
        """Models one child's FPGA latency (no fit).

        A preset child (`FNASHyperModel`) whose hyperparameters the oracle
        knows gives its layer dicts straight from `values`; any other child
        is built with placeholder weights. Values the child takes by default
        (say, the layers of a loop whose length was just sampled) are added
        to `values` in place, so that the trial trains exactly the child
        judged here (keras-tuner would otherwise fill them at random).

        Returns None when the child does not build: it then becomes a trial
        that fails with the build error recorded, and the controller gets
        the penalty.

        Raises:
            keras_tuner.errors.FatalValueError: When the model cannot be
                analysed at all (an unknown layer, no input shape).
        """
        preset = hypermodel_module.fast_path(self.hypermodel)
        if preset is not None:
            completed = preset.complete(values)
            known = {hp.name for hp in self.oracle.hyperparameters.space}
            if known.issuperset(completed):
                values.update(completed)
                _, report = self.constraint.check_layers(
                    preset.layer_dicts(values), preset.child_key(values))
                return report
        hp = self.oracle.get_space()
        hp.values = dict(values)
        try:
            with gate.placeholder_weights():
                model = self.hypermodel.build(hp)
        except Exception:  # noqa: BLE001 - the trial records the error.
            return None
        values.update(hp.values)
        self.oracle.update_space(hp)
        if (self.constraint.input_shape is None
                and not keras_reader.has_inputs(model)):
            raise keras_tuner.errors.FatalValueError(
                f"cannot find the input shape of model {model.name!r}: it "
                "has no keras.Input and the data given to search has no "
                "readable shape (e.g. a generator); pass input_shape=(...) "
                "to FNAS or add a keras.Input to the model"
            )
        try:
            _, report = self.constraint.check(model)
        except fpga.ResourceError:
            raise
        except ValueError as error:
            raise keras_tuner.errors.FatalValueError(str(error)) from error
        return report

    def _fit_trial(self, trial, *fit_args: Any, **fit_kwargs: Any):
        """Fits one child as keras-tuner does.

        A NaN loss, or weights or outputs that are not finite after the
        fit, fail the trial; a NaN in the data stops the search.
        """
        callbacks = list(fit_kwargs.get("callbacks") or [])
        callbacks.append(FailOnNaN(self.oracle.objective))
        callbacks.append(finiteness.FailOnNonFiniteChild(self._probe))
        fit_kwargs["callbacks"] = callbacks
        with finiteness.data_errors():
            if not self._is_worker():
                return super().run_trial(trial, *fit_args, **fit_kwargs)
            # keras-tuner calls the oracle only before and after a fit.
            with lease.heartbeat(self.oracle, trial.trial_id,
                                 self.trial_timeout_s):
                return super().run_trial(trial, *fit_args, **fit_kwargs)

    def _build_and_fit_model(self, trial, *fit_args: Any, **fit_kwargs: Any):
        """keras-tuner's, with the checkpoint and build config written
        atomically (see `checkpoint.build_and_fit`)."""
        return checkpoint.build_and_fit(self, trial, *fit_args, **fit_kwargs)

    def pre_create_trial(self) -> None:
        """Waits before asking again when the last ask got no trial.

        The oracle answers IDLE while no trial can start but others still
        run; keras-tuner asks again at once, so this keeps it from spinning.
        """
        if self._idle:
            time.sleep(lease.poll_interval(self.trial_timeout_s))
        self._idle = True

    def on_trial_begin(self, trial) -> None:
        self._idle = False
        super().on_trial_begin(trial)

    def _populate_initial_space(self) -> None:
        """Starts afresh, or resumes a search with no tuner0.json yet."""
        oracle_file = self.oracle._get_oracle_fname()
        # A worker's oracle is the chief's: it has nothing to resume.
        if (self._resume and not self._is_worker()
                and os.path.exists(oracle_file)):
            print(f"Reloading Oracle from {oracle_file}")
            self.reload()
            return
        super()._populate_initial_space()
        if not self._is_worker():
            # A kill before the first save left no state to resume from.
            self.oracle.discard_unsaved_rejections()

    def save(self) -> None:
        """Saves the oracle and tuner0.json, each atomically."""
        if not self._is_worker():
            self.oracle.save()
        storage.write_json(self._get_tuner_fname(), self.get_state())

    def reload(self) -> None:
        """Reloads the oracle, and tuner0.json when it was written."""
        if not self._is_worker():
            self.oracle.reload()
        if os.path.exists(self._get_tuner_fname()):
            self.set_state(storage.read_json(self._get_tuner_fname()))

    def space_report(self, **kwargs: Any):
        """The share of the search space that meets the spec, and the fastest.

        See `space.report` for the arguments.
        """
        from fnas_keras import space

        kwargs.setdefault("float_values", self.oracle.float_values)
        return space.report(
            self.hypermodel, self.oracle.get_space(), self.constraint, **kwargs
        )

    def rejected(self) -> list[dict]:
        """Every child rejected so far (values, latency, spec, reason)."""
        return self.oracle.rejected()

    def trials_table(self) -> list[dict]:
        """One row per trial: id, status, score, FPGA figures and values."""
        rows = []
        for trial in self.oracle.trials.values():
            row = {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "score": trial.score,
            }
            for name in (*_COLUMNS, "wall_time_s", FIXED_METRIC):
                row[name] = gate.metric(trial, name)
            row["values"] = dict(trial.hyperparameters.values)
            rows.append(row)
        return rows

    def results_summary(self, num_trials: int = 10) -> None:
        """Prints the best trials with their accuracy and FPGA figures."""
        print("Results summary")
        print(f"Results in {self.project_dir}")
        spec = self.latency_spec_ms
        device = self.device.name if self.device else "none"
        print(f"Device: {device}; latency spec: {spec} ms")
        print(f"Showing {num_trials} best trials")
        print(f"{self.oracle.objective}")
        header = f"{'trial':>6} {'score':>8} {'latency_ms':>11} "
        fixed = f" {'fixed':>8}" if self.fixed_point else ""
        print(header + f"{'DSP':>6} {'BRAM18':>7}{fixed}  hyperparameters")
        for trial in self.oracle.get_best_trials(num_trials):
            figures = [gate.metric(trial, n) for n in _COLUMNS]
            latency, dsp, bram = (_fmt(v) for v in figures)
            if self.fixed_point:
                fixed = f" {_fmt(gate.metric(trial, FIXED_METRIC)):>8}"
            print(
                f"{trial.trial_id:>6} {_fmt(trial.score):>8} {latency:>11} "
                f"{dsp:>6} {bram:>7}{fixed}  {trial.hyperparameters.values}"
            )

    def latency_report(self, hp: keras_tuner.HyperParameters):
        """The full per-layer FPGA latency report of the child for `hp`."""
        if self.constraint is None:
            raise ValueError("no device was given, so there is no report")
        _, report = self.constraint.check(self.hypermodel.build(hp))
        return report


class FailOnNaN(keras.callbacks.Callback):
    """Fails a trial whose loss or objective turns NaN or infinite.

    keras-tuner would score a diverged child by an accuracy computed from
    NaN outputs; failing it records why and gives the controller the
    penalty instead, without a retry.

    Args:
        objective: The oracle's objective, checked at each epoch's end.

    Example:
        >>> model.fit(x, y, callbacks=[FailOnNaN(tuner.oracle.objective)])
    """

    def __init__(self, objective: Any):
        super().__init__()
        names = getattr(objective, "name_to_direction", None)
        self._names = ["loss", *(names or [objective.name])]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name in self._names:
            value = (logs or {}).get(name)
            if value is None or math.isfinite(float(value)):
                continue
            kind = "NaN" if math.isnan(float(value)) else "infinite"
            what = name if name == "loss" else f"objective {name}"
            raise keras_tuner.errors.FailedTrialError(
                f"{what} is {kind} at epoch {epoch + 1}: the child diverged"
            )


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def _fixed_point_objective(objective: Any, fixed_point: bool, device: Any,
                           bits: int) -> Any:
    """Checks fixed_point's settings; names val_accuracy_fixed's direction."""
    if fixed_point and device is None:
        raise ValueError("fixed_point=True needs a device: its part is what "
                         "the fixed-point design targets")
    if fixed_point and bits not in (8, 16):
        raise ValueError(f"fixed_point=True needs bits 8 or 16 (the latency "
                         f"model times 32 bits as float), got {bits!r}")
    if objective == FIXED_METRIC or getattr(objective, "name", "") == \
            FIXED_METRIC:
        if not fixed_point:
            raise ValueError(f"objective {FIXED_METRIC!r} needs "
                             "fixed_point=True")
        return keras_tuner.Objective(FIXED_METRIC, "max")
    return objective


def _history_metrics(results: Any, objective: Any) -> dict:
    """keras-tuner's reading of fit histories: the best epoch's metrics
    (the last epoch's when the objective is not logged per epoch, as
    keras-tuner then checkpoints every epoch), averaged over executions."""
    per_run = []
    for history in results if isinstance(results, list) else [results]:
        if isinstance(history, dict):
            per_run.append(history)
            continue
        if not hasattr(history, "history"):  # A single objective value.
            per_run.append({objective.name: float(history)})
            continue
        epochs = [dict(zip(history.history, values))
                  for values in zip(*history.history.values())]
        best = epochs[-1]
        if objective.has_value(best):
            for logs in epochs:
                if objective.better_than(objective.get_value(logs),
                                         objective.get_value(best)):
                    best = logs
        per_run.append(best)
    return {name: float(np.mean([run[name] for run in per_run]))
            for name in per_run[0]}
