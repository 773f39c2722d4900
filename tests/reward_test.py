"""Reward rules against hand-computed numbers (FNAS_NOTES §4)."""

import math

import pytest

from fnas_keras import reward


def test_fnas_rejection_is_always_minus_a_tenth():
    for latency in (10.01, 20.0, 1e6, math.inf):
        assert reward.rejected("fnas", latency, 10.0) == pytest.approx(-0.1)


def test_fnas_trained_reward_and_baseline():
    # First child: b starts at its accuracy; reward = L / (10 T).
    first = reward.trained("fnas", 0.9, 5.0, 10.0, None)
    assert first.value == pytest.approx(0.05)
    assert first.baseline == pytest.approx(0.9)
    # acc - b + L/10T = 0.92 - 0.9 + 0.08 = 0.1; b = 0.8*0.9 + 0.2*0.92.
    second = reward.trained("fnas", 0.92, 8.0, 10.0, first.baseline)
    assert second.value == pytest.approx(0.1)
    assert second.baseline == pytest.approx(0.904)
    # Clipped at -0.1 when accuracy drops far below the baseline.
    low = reward.trained("fnas", 0.5, 1.0, 10.0, 0.9)
    assert low.value == pytest.approx(-0.1)


def test_fnas_reward_without_spec_is_accuracy_alone():
    result = reward.trained("fnas", 0.93, None, None, 0.9)
    assert result.value == pytest.approx(0.03)


def test_accuracy_rule_ignores_latency():
    result = reward.trained("accuracy", 0.93, 50.0, 10.0, 0.9)
    assert result.value == pytest.approx(0.03)
    assert reward.rejected("accuracy", 50.0, 10.0) == 0.0


def test_mnas_soft_and_hard():
    soft = reward.trained("mnas_soft", 0.8, 20.0, 10.0, None)
    assert soft.value == pytest.approx(0.8 * 2.0**-0.07)
    hard_in = reward.trained("mnas_hard", 0.8, 5.0, 10.0, None)
    assert hard_in.value == pytest.approx(0.8)
    hard_out = reward.trained("mnas_hard", 0.8, 20.0, 10.0, None)
    assert hard_out.value == pytest.approx(0.4)
    assert reward.rejected("mnas_soft", 20.0, 10.0) == 0.0


def test_nan_accuracy_counts_as_zero():
    result = reward.trained("mnas_hard", math.nan, 5.0, 10.0, None)
    assert result.value == 0.0


def test_unknown_rule_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown reward rule 'mnas'.*fnas"):
        reward.trained("mnas", 0.9, 1.0, 1.0, None)


def test_constrained_rule_is_the_default_and_rewards_accuracy_alone():
    assert reward.DEFAULT == "constrained"
    assert reward.rejected("constrained", 50.0, 10.0) is None
    result = reward.trained("constrained", 0.93, 9.9, 10.0, None)
    assert result.value == pytest.approx(0.93)  # No latency term.
    assert reward.trained("constrained", 0.93, 1.0, 10.0, None) == result
    assert reward.trained("constrained", math.nan, 1.0, 10.0, None).value == 0


def test_failed_child_ranks_below_every_trained_one():
    assert reward.failed("constrained") == pytest.approx(-0.1)
    assert reward.failed("fnas") == reward.rejected("fnas", math.inf, 1.0)
    assert reward.failed("mnas_hard") == 0.0
