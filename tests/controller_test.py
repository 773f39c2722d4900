"""Tests for fnas_keras.controller: gradients, learning, seeding, state."""

import numpy as np
import pytest

from fnas_keras import controller as controller_lib
from fnas_keras import reward

Controller = controller_lib.Controller
BANDIT_SIZES = (3, 3, 4, 2)
BEST = (2, 0, 3, 1)


def _bandit_reward(decisions):
    return float(np.mean(np.asarray(decisions) == np.asarray(BEST)))


def _numeric_gradient(c, decisions, advantage, eps=1e-6):
    w = c.get_weights()
    grad = np.zeros_like(w)
    for k in range(w.size):
        for sign in (1, -1):
            w2 = w.copy()
            w2[k] += sign * eps
            c.set_weights(w2)
            grad[k] += sign * c.loss_and_gradient(decisions, advantage)[0]
    c.set_weights(w)
    return grad / (2 * eps)


@pytest.mark.parametrize("entropy_weight", [0.0, 0.3])
def test_gradient_matches_finite_differences(entropy_weight):
    c = Controller([3, 1, 4, 2], units=4, embedding_dim=3, l2=0.01,
                   entropy_weight=entropy_weight, seed=1)
    c.set_weights(np.random.default_rng(0).normal(0, 0.5, c.get_weights()
                                                  .size))
    decisions = [2, 0, 1, 1]
    loss, grad, _ = c.loss_and_gradient(decisions, advantage=0.7)
    numeric = _numeric_gradient(c, decisions, 0.7)
    assert np.isfinite(loss)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_log_prob_and_entropy_match_probabilities():
    c = Controller([3, 4, 2], seed=0)
    d = [1, 3, 0]
    probs = c.probabilities(d)
    assert [p.size for p in probs] == [3, 4, 2]
    for p in probs:
        assert p.sum() == pytest.approx(1.0)
    assert c.log_prob(d) == pytest.approx(
        sum(np.log(p[a]) for p, a in zip(probs, d)))
    entropy = -sum(float(p @ np.log(p)) for p in probs)
    assert c.loss_and_gradient(d, 0.0)[2] == pytest.approx(entropy)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_learns_bandit_best_arm(seed):
    c = Controller(BANDIT_SIZES, seed=seed)
    first_hit = None
    for step in range(1, 501):
        d = c.sample()
        c.update(d, _bandit_reward(d))
        if first_hit is None and tuple(c.greedy()) == BEST:
            first_hit = step
    assert first_hit is not None and first_hit <= 500
    assert tuple(c.greedy()) == BEST
    assert c.log_prob(list(BEST)) > np.log(0.5)


def test_learns_with_small_fnas_scale_rewards():
    c = Controller(BANDIT_SIZES, seed=7)
    for _ in range(500):
        d = c.sample()
        c.update(d, 0.2 * _bandit_reward(d) - 0.1)
    assert tuple(c.greedy()) == BEST


def test_update_stats_and_baseline():
    c = Controller([2, 2], baseline_decay=0.5, seed=0)
    assert c.baseline == 0.0 and c.step == 0
    first = c.update([0, 1], 1.0)
    assert first.advantage == 0.0 and first.baseline == 1.0
    second = c.update([1, 1], 3.0)
    assert second.advantage == pytest.approx(2.0)
    assert second.baseline == pytest.approx(2.0)
    assert second.step == 2 == c.step
    assert second.reward == 3.0 and second.entropy > 0
    assert all(type(v) is float for v in second[:6])
    assert second.learning_rate == pytest.approx(0.01)


def test_learning_rate_decays():
    c = Controller([2], learning_rate=0.1, lr_decay_rate=0.5,
                   lr_decay_steps=2, seed=0)
    rates = [c.update([0], 0.0).learning_rate for _ in range(5)]
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    smooth = Controller([2], learning_rate=0.1, lr_decay_rate=0.5,
                        lr_decay_steps=2, lr_staircase=False, seed=0)
    smooth.update([0], 0.0)
    assert smooth.learning_rate == pytest.approx(0.1 * 0.5 ** 0.5)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
def test_optimizers_raise_probability_of_rewarded_arm(optimizer):
    c = Controller([4, 4], optimizer=optimizer, learning_rate=0.05, seed=0)
    before = c.log_prob([3, 3])
    for _ in range(30):
        c.update([0, 0], 0.0)
        c.update([3, 3], 1.0)
    assert c.log_prob([3, 3]) > before


def test_same_seed_same_samples_and_weights():
    runs = []
    for _ in range(2):
        c = Controller(BANDIT_SIZES, seed=42)
        samples = []
        for _ in range(20):
            samples.append(c.sample())
            c.update(samples[-1], _bandit_reward(samples[-1]))
        runs.append((samples, c.get_weights()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_different_seeds_differ():
    a = Controller([5] * 8, seed=0)
    b = Controller([5] * 8, seed=1)
    assert [a.sample() for _ in range(5)] != [b.sample() for _ in range(5)]


def test_save_load_continues_identically(tmp_path):
    c = Controller(BANDIT_SIZES, epsilon=0.2, entropy_weight=0.01, seed=3)
    for _ in range(10):
        d = c.sample()
        c.update(d, _bandit_reward(d))
    path = tmp_path / "ctl.npz"
    c.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ctl.npz"]
    r = Controller.load(path)
    assert r.get_config() == c.get_config()
    assert (r.step, r.baseline) == (c.step, c.baseline)
    for _ in range(15):
        d, e = c.sample(), r.sample()
        assert d == e
        assert c.update(d, _bandit_reward(d)) == r.update(e, _bandit_reward(e))
    np.testing.assert_array_equal(c.get_weights(), r.get_weights())


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "ctl.npz"
    Controller([2], seed=0).save(path)
    Controller([3, 3], seed=0).save(path)
    assert Controller.load(path).sizes == (3, 3)
    assert len(list(tmp_path.iterdir())) == 1


def test_load_corrupt_file_raises_value_error(tmp_path):
    path = tmp_path / "ctl.npz"
    Controller([3, 3], seed=0).save(path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match=str(bad.name)):
            Controller.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        Controller.load(tmp_path / "missing.npz")


def test_load_missing_key_raises_value_error(tmp_path):
    path = tmp_path / "ctl.npz"
    Controller([3, 3], seed=0).save(path)
    with np.load(path) as data:
        state = {k: data[k] for k in data.files if k != "rng"}
    np.savez(path, **state)
    with pytest.raises(ValueError, match=r"ctl\.npz.*rng"):
        Controller.load(path)
    state["theta"] = state["theta"][:-1]
    state["rng"] = np.array("{}")
    np.savez(path, **state)
    with pytest.raises(ValueError, match="ctl.npz"):
        Controller.load(path)


def test_add_decision_keeps_old_behaviour():
    c = Controller([3, 2], seed=0)
    for _ in range(50):
        d = c.sample()
        c.update(d, float(d[0] == 1))
    old = c.get_weights()
    old_probs = c.probabilities([1, 0])
    assert c.add_decision(4) == 2
    assert c.sizes == (3, 2, 4) and c.num_decisions == 3
    np.testing.assert_array_equal(c.get_weights()[: old.size], old)
    new_probs = c.probabilities([1, 0, 3])
    for p, q in zip(old_probs, new_probs):
        np.testing.assert_allclose(p, q)
    assert len(c.sample()) == 3
    c.update([1, 0, 3], 1.0)


def test_epsilon_one_is_uniform():
    c = Controller([4, 3], epsilon=1.0, seed=0)
    for _ in range(20):  # a peaked policy must not matter
        c.update([0, 0], 1.0)
        c.update([3, 2], 0.0)
    counts = np.zeros((4, 3))
    n = 6000
    for _ in range(n):
        a, b = c.sample()
        counts[a, b] += 1
    np.testing.assert_allclose(counts / n, 1 / 12, atol=0.02)


def test_samples_follow_softmax():
    c = Controller([3], seed=0)
    p = c.probabilities([0])[0]
    n = 6000
    counts = np.bincount([c.sample()[0] for _ in range(n)], minlength=3)
    np.testing.assert_allclose(counts / n, p, atol=0.03)


def test_size_one_decisions_work():
    c = Controller([1, 3, 1], seed=0)
    d = c.sample()
    assert d[0] == 0 and d[2] == 0
    assert c.probabilities(d)[0] == pytest.approx([1.0])
    c.update(d, 1.0)
    empty = Controller(seed=0)
    assert empty.sample() == [] and empty.num_decisions == 0
    empty.update([], 0.5)


@pytest.mark.parametrize("decisions, match", [
    ([0, 0], "expected 3 decisions"),
    ([0, 5, 0], "decision 1 is 5.*0, 1"),
    ([0, -1, 0], "decision 1 is -1"),
    ([0, 1.5, 0], "decision 1 is 1.5"),
])
def test_invalid_decisions_raise(decisions, match):
    c = Controller([2, 2, 2], seed=0)
    weights = c.get_weights()
    with pytest.raises(ValueError, match=match):
        c.update(decisions, 1.0)
    assert (c.step, c.baseline) == (0, 0.0)
    np.testing.assert_array_equal(c.get_weights(), weights)
    assert c.update([0, 0, 0], 2.0).advantage == 0.0
    with pytest.raises(ValueError, match=match):
        c.log_prob(decisions)


@pytest.mark.parametrize("reward", [float("nan"), float("inf"), "1.0"])
def test_invalid_reward_raises(reward):
    c = Controller([2], seed=0)
    with pytest.raises(ValueError, match="reward"):
        c.update([0], reward)
    assert c.step == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[3, 0]), "size must be an int >= 1, got 0"),
    (dict(sizes=[2.5]), "got 2.5"),
    (dict(units=0), "units.*got 0"),
    (dict(embedding_dim=-2), "embedding_dim.*got -2"),
    (dict(epsilon=1.5), "epsilon.*1.5"),
    (dict(epsilon=-0.1), "epsilon.*-0.1"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(baseline_decay=1.0), "baseline_decay"),
    (dict(optimizer="adagrad"), "one of.*adam.*got .adagrad."),
    (dict(clip_norm=0.0), "clip_norm.*0.0"),
    (dict(l2=float("nan")), "l2"),
    (dict(seed="x"), "seed"),
])
def test_invalid_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Controller(**kwargs)


def test_get_config_round_trips():
    c = Controller([3, 2], units=8, epsilon=0.1, seed=5)
    c.add_decision(6)
    config = c.get_config()
    assert config["sizes"] == [3, 2, 6]
    again = Controller(**config)
    np.testing.assert_array_equal(again.get_weights(), c.get_weights())


# A constrained bandit: 6 decisions of 3 choices (729 arms); choice k costs
# k, and an arm is feasible when its cost is at most 4 (168 arms). Accuracy
# grows with every choice, so the unconstrained best (all 2s) is over the
# spec; the best feasible arm spends the budget on the two heaviest weights.
C_SIZES = (3,) * 6
C_WEIGHTS = np.array([0.08, 0.06, 0.03, 0.02, 0.015, 0.01])
C_SPEC = 4
C_BEST = (2, 2, 0, 0, 0, 0)


def _c_accuracy(decisions):
    return 0.5 + float(C_WEIGHTS @ np.asarray(decisions))


C_FEASIBLE = [a for a in np.ndindex(*C_SIZES) if sum(a) <= C_SPEC]


def _updates_to_find_best(rule, seed, max_updates=600):
    """Controller updates until the best feasible arm is first trained.

    "fnas" is the paper's loop: a rejection is a -0.1 update, a trained
    child gets clip(acc - b + L / 10T). "constrained" draws until a child
    is feasible (no update for a rejection), then rewards accuracy alone.
    """
    options = controller_lib.CONSTRAINED if rule == "constrained" else {}
    c = Controller(C_SIZES, seed=seed, **options)
    baseline = None
    while c.step < max_updates:
        d = c.sample()
        cost = sum(d)
        if cost > C_SPEC:
            if rule == "fnas":
                c.update(d, reward.rejected(rule, cost, C_SPEC))
            continue
        result = reward.trained(rule, _c_accuracy(d), cost, C_SPEC, baseline)
        baseline = result.baseline
        c.update(d, result.value)
        if tuple(d) == C_BEST:
            return c.step
    return max_updates + 1


@pytest.mark.slow
def test_constrained_rule_finds_best_feasible_arm_in_fewer_updates():
    assert max(C_FEASIBLE, key=_c_accuracy) == C_BEST
    seeds = range(6)
    new = [_updates_to_find_best("constrained", s) for s in seeds]
    paper = [_updates_to_find_best("fnas", s) for s in seeds]
    # Uniform draws among the 168 feasible arms need 168 on average.
    assert max(new) <= 120, new
    assert sum(new) < sum(paper), (new, paper)


def test_normalized_update_uses_scale_free_advantages():
    a = Controller([3, 3], normalize=True, seed=0)
    b = Controller([3, 3], normalize=True, seed=0)
    for d, r in (([0, 0], 0.2), ([1, 2], 0.6), ([2, 1], 0.4)):
        sa, sb = a.update(d, r), b.update(d, 100 * r)
    assert sa.advantage == pytest.approx(sb.advantage)
    np.testing.assert_allclose(a.get_weights(), b.get_weights())
    assert sa.baseline == pytest.approx(sb.baseline / 100)


def test_uniform_start_is_exactly_uniform():
    c = Controller([3, 5], seed=4)
    for p in c.probabilities([1, 1]):
        np.testing.assert_allclose(p, 1 / p.size)


def test_replay_state_survives_save_and_load(tmp_path):
    c = Controller(BANDIT_SIZES, seed=3, **controller_lib.CONSTRAINED)
    for _ in range(12):
        d = c.sample()
        c.update(d, _bandit_reward(d))
    c.save(tmp_path / "ctl.npz")
    r = Controller.load(tmp_path / "ctl.npz")
    for _ in range(5):
        d, e = c.sample(), r.sample()
        assert d == e
        assert c.update(d, _bandit_reward(d)) == r.update(e, _bandit_reward(e))
    np.testing.assert_array_equal(c.get_weights(), r.get_weights())
