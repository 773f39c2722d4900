"""The one training recipe of the benchmarks (search.py, paper.py).

Children of the paper's MNIST space have no normalisation layer and a
global-pooling head. On the offline digits data (images in [0, 1], mostly
background) with Adam at 1e-3 and batches of 16, the large ones stay at
chance (0.10) for their first epochs and the small ones learn slowly.
Measured on small, medium and large children (see the README), what
helps is:

* inputs standardised with the training set's mean and standard deviation
  (centred inputs: the first layer's ReLUs no longer all start on the same
  side);
* batches of 8 at Adam's 1e-3: twice the updates per epoch. A higher peak
  rate (3e-3, 1e-2, with warm-up and clipping) or a cosine decay learned
  less in the same epochs.

The search space is untouched: only how each child is trained.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How every child is trained.

    Attributes:
        learning_rate: Adam's learning rate.
        batch_size: Examples per batch.
        standardize: Standardise the inputs with the training statistics.
    """

    learning_rate: float = 1e-3
    batch_size: int = 8
    standardize: bool = True


RECIPE = Recipe()


def hypermodel(preset: str, dataset: str, recipe: Recipe = RECIPE):
    """The preset's hypermodel for `dataset`, compiled at the recipe's rate."""
    from fnas_keras import data
    from fnas_keras import hypermodel as hypermodel_module

    spec = data.info(dataset)
    return hypermodel_module.FNASHyperModel(
        preset, input_shape=spec.input_shape, num_classes=spec.num_classes,
        learning_rate=recipe.learning_rate,
    )


def fit_data(
    dataset: str,
    *,
    recipe: Recipe = RECIPE,
    batch_size: int | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    validation_limit: int | None = None,
) -> tuple[tuple, dict]:
    """`(args, kwargs)` for `search` or `fit`: the data, as the recipe says.

    The offline digits arrays are standardised with the training set's
    statistics (TFDS pipelines are left as `data.fit_data` makes them).
    `validation_limit` keeps the first N validation examples of the digits
    (for smoke tests).
    """
    from fnas_keras import data

    args, kwargs = data.fit_data(
        dataset, batch_size=batch_size or recipe.batch_size, limit=limit,
        data_dir=data_dir,
    )
    if dataset != "digits":
        return args, kwargs
    (x, y), (xv, yv) = args, kwargs["validation_data"]
    xv, yv = xv[:validation_limit], yv[:validation_limit]
    if recipe.standardize:
        mean, std = float(x.mean()), float(x.std())
        x, xv = (x - mean) / std, (xv - mean) / std
    kwargs["validation_data"] = (xv, yv)
    return (x, y), kwargs
