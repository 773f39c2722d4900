"""NaN and infinity: in the data before training, in a child after it."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from fnas_keras import finiteness


def images(n=40, bad=()):
    x = np.zeros((n, 4, 4, 1), np.float32)
    for index, value in bad:
        x[index] = value
    return x


def error_of(*args, **kwargs) -> str:
    with pytest.raises(finiteness.NonFiniteDataError) as error:
        finiteness.checked_fit_data(args, kwargs)
    return str(error.value)


def test_error_names_the_array_the_count_and_the_first_index():
    x = images(bad=[((30, 2, 1, 0), np.nan), ((7, 0, 3, 0), np.inf),
                    ((30, 3, 3, 0), -np.inf)])
    text = error_of(x, np.zeros(40))
    assert text.startswith("x has 3 non-finite values (NaN or infinity) "
                           "out of 640, the first at index [7, 0, 3, 0]")


def test_chunks_count_and_locate_like_one_pass(monkeypatch):
    monkeypatch.setattr(finiteness, "_CHUNK", 16)
    x = images(bad=[((35, 1, 1, 0), np.nan), ((12, 0, 0, 0), np.nan)])
    assert "2 non-finite values" in error_of(x)
    assert "index [12, 0, 0, 0]" in error_of(x)


@pytest.mark.parametrize("where, name", [
    ("y", "y has 1"),
    ("sample_weight", "sample_weight has 1"),
    ("validation x", "validation x has 1"),
    ("validation y", "validation y has 1"),
    ("dict", "x['image'] has 1"),
])
def test_every_array_given_to_fit_is_checked(where, name):
    x, y, w = images(), np.zeros(40, np.float32), np.ones(40)
    xv, yv = images(), np.zeros(40, np.float32)
    target = {"y": y, "sample_weight": w, "validation x": xv,
              "validation y": yv}.get(where, x)
    target.reshape(-1)[5] = np.nan
    if where == "dict":
        x = {"image": x}
    text = error_of(x, y, sample_weight=w, validation_data=(xv, yv))
    assert text.startswith(name)


def test_integer_and_finite_data_pass_unchanged():
    x, y = images(), np.arange(40)
    args, kwargs, probe = finiteness.checked_fit_data(
        (x, y), {"epochs": 2, "validation_data": (x, y)}
    )
    assert args[0] is x and args[1] is y and kwargs["epochs"] == 2
    assert kwargs["validation_data"][0] is x
    assert probe.shape == (finiteness.PROBE_SIZE, 4, 4, 1)


def batches(x, batch_size=8):
    return tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(
        batch_size
    )


def test_first_batches_of_a_dataset_are_checked_before_training():
    ds = batches(images(bad=[((10, 1, 2, 0), np.nan)]))
    assert error_of(ds).startswith(
        "x in batch 1 has 1 non-finite value (NaN or infinity) out of 128, "
        "the first at index [2, 1, 2, 0]"
    )
    assert error_of(images(), validation_data=ds).startswith(
        "validation x in batch 1 has 1"
    )


def test_later_batches_check_themselves_with_the_same_message():
    x = images(bad=[((35, 1, 2, 0), np.nan)])
    args, _, probe = finiteness.checked_fit_data((batches(x),), {})
    assert probe.shape == (8, 4, 4, 1)
    with pytest.raises(finiteness.NonFiniteDataError) as error:
        with finiteness.data_errors():
            for _ in args[0]:
                pass
    with pytest.raises(finiteness.NonFiniteDataError) as direct:
        finiteness.check_array("x in batch 4", x[32:40])
    assert str(error.value) == str(direct.value)


def test_a_guarded_dataset_yields_the_same_batches():
    x = np.random.default_rng(0).random((20, 4, 4, 1)).astype(np.float32)
    args, kwargs, _ = finiteness.checked_fit_data(
        (), {"x": batches(x), "validation_data": batches(x)}
    )
    assert args == ()
    for name in ("x", "validation_data"):
        pairs = list(zip(batches(x), kwargs[name]))
        assert len(pairs) == 3
        for before, after in pairs:
            np.testing.assert_array_equal(before[0], after[0])
            np.testing.assert_array_equal(before[1], after[1])


def test_generators_are_left_alone():
    def gen():
        yield images(8), np.zeros(8)

    g = gen()
    args, _, probe = finiteness.checked_fit_data((g,), {})
    assert args[0] is g and probe is None


class NanGradient(keras.layers.Layer):
    """Passes its input through; its weight gets a NaN gradient.

    The classic `where` bug: the branch not taken is log(0), whose gradient
    (0 * inf) is NaN. The loss stays finite while the weight turns NaN.
    """

    def build(self, shape):
        self.w = self.add_weight(shape=(), initializer="ones", name="w")

    def call(self, x):
        return keras.ops.where(x > -1e30, x, keras.ops.log(self.w - self.w))


class NanAtInference(keras.layers.Layer):
    """Trains normally; outputs NaN when not training."""

    def call(self, x, training=None):
        return x if training else x * np.nan


def fit(layer, x):
    model = keras.Sequential([
        keras.Input((4, 4, 1)), layer, keras.layers.Flatten(),
        keras.layers.Dense(2, activation="softmax"),
    ], name="sequential")
    model.compile("adam", "sparse_categorical_crossentropy")
    check = finiteness.FailOnNonFiniteChild(x[:8])
    history = model.fit(x, np.zeros(len(x)), epochs=1, verbose=0,
                        callbacks=[check])
    return history


def test_nan_weights_with_a_finite_loss_fail_the_child():
    x = images() + 1.0
    with pytest.raises(kt.errors.FailedTrialError) as error:
        fit(NanGradient(name="nan_gradient"), x)
    text = str(error.value)
    assert "weight sequential/nan_gradient/w has 1 non-finite value " in text
    assert "whatever its loss says" in text


def test_nan_outputs_with_finite_weights_fail_the_child():
    with pytest.raises(kt.errors.FailedTrialError, match="output 0"):
        fit(NanAtInference(), images() + 1.0)


def test_a_finite_child_passes():
    history = fit(keras.layers.Identity(), images() + 1.0)
    assert np.isfinite(history.history["loss"][0])


def test_a_dataset_of_dicts_names_the_feature():
    x = np.zeros((40, 3, 2), np.float32)
    x[33, 1, 1] = np.inf
    ds = tf.data.Dataset.from_tensor_slices(({"image": x}, np.zeros(40)))
    args, _, _ = finiteness.checked_fit_data((ds.batch(8),), {})
    with pytest.raises(finiteness.NonFiniteDataError) as error:
        with finiteness.data_errors():
            for _ in args[0]:
                pass
    assert str(error.value).startswith(
        "x['image'] in batch 4 has 1 non-finite value (NaN or infinity) out "
        "of 48, the first at index [1, 1, 1]"
    )


def test_arguments_of_a_custom_fit_are_kept_and_data_still_checked():
    x = images(bad=[((3, 0, 0, 0), np.nan)])
    assert error_of(x, augment=True).startswith("x has 1")
    args, kwargs, _ = finiteness.checked_fit_data((images(),), {"augment": 1})
    assert kwargs == {"augment": 1} and len(args) == 1
