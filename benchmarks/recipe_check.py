"""The training recipe against the old one, on children across the space.

Trains a small, a medium and a large child of the paper's MNIST space on
the offline digits data, once as the benchmarks used to (Adam 1e-3,
batches of 16, inputs in [0, 1]) and once with `recipe.RECIPE`, and prints
the validation accuracy after every epoch.

Run:
    .venv/bin/python benchmarks/recipe_check.py
    .venv/bin/python benchmarks/recipe_check.py --children=large --epochs=2
"""

from __future__ import annotations

import time

import recipe
from absl import app
from absl import flags

CHILDREN = {  # (kernel, filters) of each of the four layers
    "small": [(5, 9)] * 4,
    "medium": [(7, 18)] * 4,
    "large": [(7, 36)] * 4,
}
OLD = recipe.Recipe(learning_rate=1e-3, batch_size=16, standardize=False)

FLAGS = flags.FLAGS
flags.DEFINE_list("children", list(CHILDREN), "Children to train.")
flags.DEFINE_integer("epochs", 6, "Epochs per child.")
flags.DEFINE_integer("seed", 1, "Seed of the weights and the batches.")


def accuracies(child: str, how: recipe.Recipe, epochs: int,
               seed: int) -> list[float]:
    """Validation accuracy after each epoch of one child trained `how`."""
    import keras
    import keras_tuner

    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    for i, (kernel, filters) in enumerate(CHILDREN[child]):
        hp.values[f"conv_{i}/kernel"] = kernel
        hp.values[f"conv_{i}/filters"] = filters
    model = recipe.hypermodel("mnist", "digits", how).build(hp)
    args, kwargs = recipe.fit_data("digits", recipe=how)
    history = model.fit(*args, epochs=epochs, verbose=0, **kwargs)
    return history.history["val_accuracy"]


def main(argv):
    del argv
    unknown = set(FLAGS.children) - set(CHILDREN)
    if unknown:
        raise app.UsageError(f"unknown --children {sorted(unknown)}; "
                             f"known: {', '.join(CHILDREN)}")
    print(f"old: {OLD}\nnew: {recipe.RECIPE}")
    for child in FLAGS.children:
        for name, how in (("old", OLD), ("new", recipe.RECIPE)):
            started = time.time()
            acc = accuracies(child, how, FLAGS.epochs, FLAGS.seed)
            shown = " ".join(f"{a:.3f}" for a in acc)
            print(f"{child:>6} {name}: val_accuracy by epoch {shown} "
                  f"({time.time() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    app.run(main)
