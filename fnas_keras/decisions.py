"""Hyperparameters as the controller's categorical decisions.

Every keras-tuner hyperparameter is one decision of the controller: a finite
list of values, in the order the hyperparameters were first seen. A decision
is the index of one value in its list.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np

from fnas_keras import controller as controller_module

# Ints and Floats with a step and at most this many values are enumerated;
# larger or step-less ranges get `float_values` points on their scale.
_MAX_ENUMERATED = 64


class Decisions:
    """The values each hyperparameter's decision chooses from.

    Args:
        float_values: Values a Float or step-less range is discretised into.
        choices: Hyperparameter name -> its values, in decision order (the
            form oracle.json saves); None for none yet.

    Example:
        >>> decisions = Decisions(float_values=10)
        >>> decisions.sync(hps, controller)
        >>> values = decisions.values_for(hps, controller.sample())
    """

    def __init__(self, float_values: int = 10, choices: dict | None = None):
        self.float_values = float_values
        self.choices: dict[str, list] = {} if choices is None else choices

    def sync(
        self,
        hyperparameters: keras_tuner.HyperParameters,
        controller: controller_module.Controller,
    ) -> None:
        """Adds a decision for each hyperparameter the controller lacks."""
        for hp in hyperparameters.space:
            if hp.name not in self.choices:
                choices = decision_values(hp, self.float_values)
                self.choices[hp.name] = choices
                controller.add_decision(len(choices))

    def values_for(
        self, hyperparameters: keras_tuner.HyperParameters, decisions: list
    ) -> dict:
        """Maps decisions to the values of the active hyperparameters."""
        hps = keras_tuner.HyperParameters()
        index = {name: i for i, name in enumerate(self.choices)}
        for hp in hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                choices = self.choices[hp.name]
                hps.values[hp.name] = choices[decisions[index[hp.name]]]
        return hps.values

    def full(self, decisions: list, values: dict) -> list:
        """A child's decisions, extended to the current number of decisions.

        While a child trains, other trials (other workers, or a restart)
        can reveal hyperparameters and so add decisions. Each added one
        takes the value the child was built with (a default), or its first
        choice when the child has none.

        Args:
            decisions: The child's decisions when it was sampled.
            values: The hyperparameter values the child was built with.
        """
        added = list(self.choices)[len(decisions):]
        return [*decisions, *(
            _index(self.choices[name], values.get(name)) for name in added
        )]


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
        if hp.step is None:
            points = [cast(hp._sample_numerical_value(p)) for p in probs]
        else:  # Snapped to the step's grid; prob 1 is past its last value.
            points = [cast(hp.prob_to_value(min(p, 1 - 1e-9))) for p in probs]
        return list(dict.fromkeys(points))
    raise keras_tuner.errors.FatalValueError(
        f"hyperparameter {hp.name!r} of type {type(hp).__name__} cannot be "
        "searched; supported: Choice, Int, Float, Boolean, Fixed"
    )


def _index(choices: list, value: Any) -> int:
    return choices.index(value) if value in choices else 0
