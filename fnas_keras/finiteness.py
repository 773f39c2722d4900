"""Finite data in, finite children out: NaN and infinity checks around fits.

One NaN pixel in the training data turns every child's weights to NaN,
while Keras may still report a finite loss (its cross-entropy clips the
probabilities) and chance accuracy: the search would then learn from
garbage. So:

* `checked_fit_data`, before the first child, checks numpy arrays in full
  and a `tf.data` pipeline's first batches, and makes every later batch of
  the pipeline check itself in the graph (cheap: one `is_finite` and one
  reduction per batch). `data_errors` turns such a failure during a fit
  into the same error, which stops the search.
* `FailOnNonFiniteChild`, a callback, fails a trial whose weights, or
  outputs on a few training examples, are not finite after its fit,
  whatever the loss says.

Errors name the array, the count of bad values and the first bad index
(from 0). Generators and `keras.utils.PyDataset` inputs are not checked.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any
from typing import Iterator

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

FIRST_BATCHES = 2
PROBE_SIZE = 32
_CHUNK = 1 << 22  # values per np.isfinite call: bounds the temporary mask
_ROLES = ("x", "y", "sample_weight")
_HINT = ("; a child trained on it gets NaN weights: clean or drop "
         "those examples before the search")
_START = "<fnas-non-finite>"
_END = "</fnas-non-finite>"
# What Assert prints: [START name in batch] [b] [count] [i j k] [size] [END]
_ASSERTED = re.compile(
    rf"{_START}(.*?) in batch\] \[(\d+)\] \[(\d+)\] \[([\d ]*)\] "
    rf"\[(\d+)\] \[{_END}"
)


class NonFiniteDataError(keras_tuner.errors.FatalValueError):
    """The training or validation data hold NaN or infinity."""


def message(name: str, count: int, total: int, index: str) -> str:
    """The error text for `count` bad values of `total`, first at `index`."""
    plural = "" if count == 1 else "s"
    return (f"{name} has {count} non-finite value{plural} (NaN or infinity) "
            f"out of {total}, the first at index [{index}]{_HINT}")


def check_array(name: str, array: Any) -> None:
    """Raises if a numeric array holds NaN or infinity.

    Integer and boolean arrays cannot, and are not scanned. Large arrays are
    scanned in chunks, so the check needs little memory.

    Raises:
        NonFiniteDataError: Naming `name`, the count and the first index.
    """
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.inexact) or a.size == 0:
        return
    a = np.atleast_1d(a)
    rows = max(1, _CHUNK // max(1, a.size // len(a)))
    count, first = 0, None
    for start in range(0, len(a), rows):
        bad = ~np.isfinite(a[start:start + rows])
        found = int(np.count_nonzero(bad))
        if found and first is None:
            first = np.argwhere(bad)[0]
            first[0] += start
        count += found
    if count:
        index = ", ".join(str(int(i)) for i in first)
        raise NonFiniteDataError(message(name, count, a.size, index))


def checked_fit_data(
    fit_args: tuple, fit_kwargs: dict
) -> tuple[tuple, dict, Any]:
    """Checks what `search` will pass to `fit`, and guards its pipelines.

    Numpy (and tensor) arrays in `x`, `y`, `sample_weight` and
    `validation_data` are checked in full; a `tf.data.Dataset` in `x` or
    `validation_data` on its first `FIRST_BATCHES` batches, then replaced
    by one whose every batch checks itself during the fit.

    Args:
        fit_args: The positional arguments given to `search`.
        fit_kwargs: Its keyword arguments.

    Returns:
        `(fit_args, fit_kwargs, probe)`: the arguments to train with, and up
        to `PROBE_SIZE` training inputs to check a child's outputs on (None
        when they cannot be read, e.g. from a generator).

    Raises:
        NonFiniteDataError: On the first array holding NaN or infinity.
    """
    # Read as Model.fit reads them; a HyperModel.fit of the user's own may
    # take more, which are left alone.
    names = list(inspect.signature(keras.Model.fit).parameters)[1:]
    args, kwargs = list(fit_args), dict(fit_kwargs)
    given = {**dict(zip(names, args)), **kwargs}
    for name in ("x", "y", "sample_weight", "validation_data"):
        _check_input(given.get(name), name)
    for name, prefix in (("x", ""), ("validation_data", "validation ")):
        if not isinstance(given.get(name), tf.data.Dataset):
            continue
        guarded = _guarded(given[name], prefix)
        if names.index(name) < len(args):
            args[names.index(name)] = guarded
        else:
            kwargs[name] = guarded
    return tuple(args), kwargs, _probe(given.get("x"))


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Turns a guarded pipeline's failure during a fit into its error.

    Raises:
        NonFiniteDataError: When a guarded batch held NaN or infinity.
    """
    try:
        yield
    except tf.errors.OpError as error:
        found = _ASSERTED.search(str(error))
        if found is None:
            raise
        name, batch, count, index, total = found.groups()
        name = name.replace("\\'", "'")  # Assert escapes quotes.
        index = ", ".join(index.split())
        raise NonFiniteDataError(
            message(f"{name} in batch {batch}", int(count), int(total), index)
        ) from None


class FailOnNonFiniteChild(keras.callbacks.Callback):
    """Fails a trial whose weights or outputs are not finite after its fit.

    A child can diverge to NaN weights while its loss stays finite (a loss
    that clips its input, a NaN gradient in an unused branch); keras-tuner
    would score it by chance accuracy. Failing it records why and gives the
    controller the penalty, without a retry.

    Args:
        probe: A few training inputs to run the trained child on, or None
            to check its weights only.

    Example:
        >>> model.fit(x, y, callbacks=[FailOnNonFiniteChild(x[:32])])
    """

    def __init__(self, probe: Any = None):
        super().__init__()
        self._probe = probe

    def on_train_end(self, logs: dict | None = None) -> None:
        for weight in self.model.weights:
            _fail_if_non_finite(f"weight {weight.path}", weight)
        if self._probe is None:
            return
        try:
            outputs = self.model(self._probe, training=False)
        except Exception:  # noqa: BLE001 - the user's fit reshapes inputs.
            return
        for i, output in enumerate(keras.tree.flatten(outputs)):
            _fail_if_non_finite(f"output {i} on the first training inputs",
                                output)


def _fail_if_non_finite(what: str, value: Any) -> None:
    a = np.asarray(keras.ops.convert_to_numpy(value))
    if not np.issubdtype(a.dtype, np.inexact):
        return
    count = int(a.size - np.count_nonzero(np.isfinite(a)))
    if count:
        plural = "" if count == 1 else "s"
        raise keras_tuner.errors.FailedTrialError(
            f"{what} has {count} non-finite value{plural} out of {a.size} "
            "after the fit: the child diverged, whatever its loss says"
        )


def _check_input(value: Any, name: str) -> None:
    """Checks one argument of `fit`: arrays, or a dataset's first batches."""
    prefix = "validation " if name == "validation_data" else ""
    if isinstance(value, tf.data.Dataset):
        for batch, element in enumerate(value.take(FIRST_BATCHES)):
            for leaf, tensor in _roles(element, prefix):
                check_array(f"{leaf} in batch {batch}", tensor)
        return
    named = _roles(value, prefix) if prefix else _leaves(name, value)
    for leaf, array in named:
        if isinstance(array, (np.ndarray, tf.Tensor)):
            check_array(leaf, array)


def _roles(element: Any, prefix: str) -> list[tuple[str, Any]]:
    """The leaves of a dataset element or of `validation_data`, named.

    A tuple of up to three is (x, y, sample_weight), as Keras reads them.
    """
    if isinstance(element, tuple) and 1 <= len(element) <= 3:
        parts = [(f"{prefix}{_ROLES[i]}", e) for i, e in enumerate(element)]
    else:
        parts = [(f"{prefix}x", element)]
    return [leaf for part, value in parts for leaf in _leaves(part, value)]


def _leaves(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key, v in value.items()
                for leaf in _leaves(f"{name}[{key!r}]", v)]
    if isinstance(value, (list, tuple)):
        return [leaf for i, v in enumerate(value)
                for leaf in _leaves(f"{name}[{i}]", v)]
    return [(name, value)]


def _guarded(dataset: tf.data.Dataset, prefix: str) -> tf.data.Dataset:
    """The dataset, each of whose batches fails on NaN or infinity."""

    def check(batch, element):
        checks = [
            _graph_check(leaf, tensor, batch)
            for leaf, tensor in _roles(element, prefix)
            if isinstance(tensor, tf.Tensor) and tensor.dtype.is_floating
        ]
        with tf.control_dependencies(checks):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.enumerate().map(check)


def _graph_check(name: str, tensor: tf.Tensor, batch: tf.Tensor):
    """An op that fails on a non-finite value; `data_errors` reads it.

    Its data are strings and int32 only, so no `tf.cond` guards the assert
    (the cheapest form in a pipeline): the count, first index and size
    are computed on every batch, each one pass over a boolean mask.
    """
    bad = tf.reshape(tf.logical_not(tf.math.is_finite(tensor)), [-1])
    count = tf.reduce_sum(tf.cast(bad, tf.int32))
    first = tf.cast(tf.argmax(bad, output_type=tf.int32), tf.int32)
    shape = tf.shape(tensor, out_type=tf.int32)
    index = tf.cast(tf.unravel_index(first, shape), tf.int32)
    return tf.debugging.Assert(
        tf.equal(count, 0),
        [f"{_START}{name} in batch", tf.cast(batch, tf.int32), count, index,
         tf.size(tensor, out_type=tf.int32), _END],
        summarize=64,
    )


def _probe(x: Any) -> Any:
    """Up to PROBE_SIZE training inputs, as numpy, or None."""
    if isinstance(x, tf.data.Dataset):
        for element in x.take(1):
            x = element[0] if isinstance(element, tuple) else element
    leaves = keras.tree.flatten(x) if x is not None else [None]
    if not all(isinstance(a, (np.ndarray, tf.Tensor)) for a in leaves):
        return None  # A generator or PyDataset: reading it would consume it.
    return keras.tree.map_structure(lambda a: np.asarray(a)[:PROBE_SIZE], x)
