"""The space report: feasibility of a search space before any training."""

import math

import keras
import keras_tuner as kt
import pytest

from fnas_keras import constraint
from fnas_keras import hypermodel
from fnas_keras import space

SPEC_MS = 0.18


def small_space():
    model_space = hypermodel.FNASHyperModel(
        "mnist", num_layers=2, kernel_sizes=[3, 5], filters=[4, 16],
        input_shape=(16, 16, 1),
    )
    hps = kt.HyperParameters()
    model_space.build(hps)
    return model_space, hps


def test_enumerates_a_small_space_and_finds_the_fastest():
    model_space, hps = small_space()
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS)
    report = space.report(model_space, hps, gate)
    assert report.exhaustive and report.size == report.evaluated == 16
    latencies = []
    for values in _all_values():
        hp = hps.copy()
        hp.values = values
        latencies.append(gate.check(model_space.build(hp))[1].latency_ms)
    assert sorted(report.latencies_ms) == sorted(latencies)
    assert report.fastest_ms == min(latencies)
    assert report.feasible == sum(x <= SPEC_MS for x in latencies)
    assert 0 < report.fraction < 1, "pick a spec that splits the space"
    assert report.fastest_values["conv_0/filters"] == 4
    assert "Meet the 0.18 ms spec" in str(report)


def test_samples_a_large_space():
    model_space, hps = small_space()
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS)
    report = space.report(model_space, hps, gate, max_enumerate=4, samples=6)
    assert not report.exhaustive
    assert report.evaluated == 6 and report.size == 16
    assert all(math.isfinite(x) for x in report.latencies_ms)


class Built(kt.HyperModel):
    """A preset behind a user's hypermodel: the build path."""

    def __init__(self, preset):
        super().__init__()
        self.preset = preset

    def build(self, hp):
        return self.preset.build(hp)


def test_preset_children_are_reported_as_their_built_models():
    model_space, hps = small_space()
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS)
    fast = space.report(model_space, hps, gate)
    built = space.report(Built(model_space), hps,
                         constraint.LatencyConstraint("xc7z020", SPEC_MS))
    assert fast.latencies_ms == built.latencies_ms
    assert fast.fastest_values == built.fastest_values


def test_a_preset_space_is_enumerated_beyond_what_builds_allow():
    model_space = hypermodel.FNASHyperModel(
        "mnist", kernel_sizes=[3, 5], filters=[4, 8, 16],
        input_shape=(8, 8, 1))
    hps = kt.HyperParameters()
    model_space.build(hps)
    assert model_space.space.size == 6**4 > space.ENUMERATE_BUILT
    gate = constraint.LatencyConstraint("xc7z020", SPEC_MS)
    report = space.report(model_space, hps, gate)
    assert report.exhaustive and report.evaluated == 6**4
    assert gate.cache_info()["size"] == 6**4


def test_a_float_is_reported_at_the_values_the_controller_tries():
    class Model(kt.HyperModel):
        def build(self, hp):
            hp.Float("lr", 1e-4, 1e-2, sampling="log")
            return keras.Sequential([keras.Input((4,)),
                                     keras.layers.Dense(2)])

    hps = kt.HyperParameters()
    Model().build(hps)
    gate = constraint.LatencyConstraint("xc7z020", 1.0)
    report = space.report(Model(), hps, gate, float_values=4)
    assert report.size == report.evaluated == 4
    assert report.fastest_values["lr"] == pytest.approx(1e-4)


def test_an_empty_space_is_an_error():
    gate = constraint.LatencyConstraint("xc7z020", 1.0)
    with pytest.raises(ValueError, match="search space is empty"):
        space.report(kt.HyperModel(), kt.HyperParameters(), gate)


def _all_values():
    import itertools

    for k0, f0, k1, f1 in itertools.product([3, 5], [4, 16], [3, 5], [4, 16]):
        yield {"conv_0/kernel": k0, "conv_0/filters": f0,
               "conv_1/kernel": k1, "conv_1/filters": f1}
