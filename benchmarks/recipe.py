"""The one training recipe of the benchmarks (search.py, paper.py).

Children of the paper's MNIST space have no normalisation layer and a
global-pooling head; on the offline digits data (images in [0, 1], mostly
background) they learn slowly at Adam's 1e-3 and diverge above it. The
recipe, measured on small, medium and large children (README):

* inputs standardised with the training set's mean and standard deviation;
* Adam with a linear warm-up over the first epoch to the peak learning
  rate, then a cosine decay to zero at the last epoch;
* gradients clipped to norm 1, which keeps the peak rate stable;
* batches of 32.

The search space is untouched: only how each child is trained.
"""

from __future__ import annotations

import dataclasses
import math

import keras


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How every child is trained.

    Attributes:
        learning_rate: Adam's peak learning rate.
        batch_size: Examples per batch.
        warmup_epochs: Epochs of linear warm-up before the cosine decay.
        clipnorm: Gradient norm clip; None for none.
        standardize: Standardise the inputs with the training statistics.
    """

    learning_rate: float = 1e-2
    batch_size: int = 32
    warmup_epochs: float = 1.0
    clipnorm: float | None = 1.0
    standardize: bool = True


RECIPE = Recipe()


class WarmupCosine(keras.callbacks.Callback):
    """Linear warm-up, then cosine decay to zero, set before every batch.

    Args:
        peak: The learning rate at the end of the warm-up.
        warmup_epochs: Length of the warm-up in epochs (fractions allowed).
        clipnorm: Gradient norm clip set on the optimizer; None for none.

    Example:
        >>> model.fit(x, y, epochs=6, callbacks=[WarmupCosine(1e-2, 1.0)])
    """

    def __init__(self, peak: float, warmup_epochs: float,
                 clipnorm: float | None = None):
        super().__init__()
        self.peak = peak
        self.warmup_epochs = warmup_epochs
        self.clipnorm = clipnorm
        self._step = 0

    def on_train_begin(self, logs=None) -> None:
        self._step = 0
        if self.clipnorm:
            self.model.optimizer.clipnorm = self.clipnorm

    def on_train_batch_begin(self, batch, logs=None) -> None:
        per_epoch = self.params.get("steps") or 1
        total = per_epoch * self.params.get("epochs", 1)
        self.model.optimizer.learning_rate = learning_rate(
            self._step, total, max(1, round(self.warmup_epochs * per_epoch)),
            self.peak,
        )
        self._step += 1


def learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    """The schedule at `step` (0-based) of `total`, `warmup` steps rising."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress)))


def hypermodel(preset: str, dataset: str, recipe: Recipe = RECIPE):
    """The preset's hypermodel for `dataset`, compiled at the peak rate."""
    from fnas_keras import data
    from fnas_keras import hypermodel as hypermodel_module

    spec = data.info(dataset)
    return hypermodel_module.FNASHyperModel(
        preset, input_shape=spec.input_shape, num_classes=spec.num_classes,
        learning_rate=recipe.learning_rate,
    )


def callbacks(recipe: Recipe = RECIPE) -> list:
    """Fresh callbacks of the recipe for one `fit` (or one search)."""
    return [WarmupCosine(recipe.learning_rate, recipe.warmup_epochs,
                         recipe.clipnorm)]


def fit_data(
    dataset: str,
    *,
    recipe: Recipe = RECIPE,
    batch_size: int | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    validation_limit: int | None = None,
) -> tuple[tuple, dict]:
    """`(args, kwargs)` for `search`/`fit`: the data and the recipe.

    The offline digits arrays are standardised with the training set's
    statistics (TFDS pipelines are left as `data.fit_data` makes them).
    `kwargs` holds the recipe's callbacks; keras-tuner copies them for
    every trial. `validation_limit` keeps the first N validation examples
    of the digits (for smoke tests).
    """
    from fnas_keras import data

    args, kwargs = data.fit_data(
        dataset, batch_size=batch_size or recipe.batch_size, limit=limit,
        data_dir=data_dir,
    )
    if validation_limit is not None and dataset == "digits":
        xv, yv = kwargs["validation_data"]
        kwargs["validation_data"] = (xv[:validation_limit],
                                     yv[:validation_limit])
    if recipe.standardize and dataset == "digits":
        (x, y), (xv, yv) = args, kwargs["validation_data"]
        mean, std = float(x.mean()), float(x.std())
        args = ((x - mean) / std, y)
        kwargs["validation_data"] = ((xv - mean) / std, yv)
    kwargs["callbacks"] = callbacks(recipe)
    return args, kwargs
