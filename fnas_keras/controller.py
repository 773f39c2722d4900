"""The RL controller: an LSTM policy over categorical decisions (REINFORCE).

Pure numpy, forward pass and backprop through time by hand: a child rejected
by the latency gate costs one `sample()` and one `update()`, so both must stay
far below a millisecond. The controller knows nothing of keras-tuner.
"""

import json
import math
import numbers
import os
import tempfile
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Sequence

import numpy as np

_FORMAT = 2
_KEYS = ("format", "theta", "m", "v", "scalars", "config", "rng")
_REPLAY_KEYS = ("replay_decisions", "replay_rewards")
_OPTIMIZERS = ("adam", "rmsprop", "sgd")
_INIT = 0.1  # uniform(-0.1, 0.1), as in Zoph & Le's controller
# Options for learning accuracy among feasible children only (the oracle's
# "constrained" rule), chosen on the constrained bandit of controller_test
# (updates until the best feasible arm is first trained, seeds 0-5, at most
# 600): rate 0.007, one step: 40-65 in every seed; 0.005: 47-74; 0.003 and
# 0.01 miss it in 2 and 3 seeds, collapsing onto a worse arm; 0.01 with 2
# steps per reward, or 0.02-0.05 with 2-4 steps over the last 4-8 children,
# collapse within 40 updates; the paper's rule finds it in 2 seeds of 6.
CONSTRAINED = {
    "normalize": True, "learning_rate": 0.007, "steps_per_update": 1,
    "replay": 1,
}


class UpdateStats(NamedTuple):
    """What one `Controller.update` did (floats are Python floats)."""

    loss: float
    reward: float
    advantage: float
    baseline: float
    entropy: float
    learning_rate: float
    step: int


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _num(v: object, lo: float, hi: float) -> bool:
    """True for a real number in the closed interval [lo, hi]."""
    return (isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v) and lo <= v <= hi)


_POSITIVE = ("a finite number > 0", lambda v: _num(v, 0, math.inf) and v > 0)
_NONNEG = ("a finite number >= 0", lambda v: _num(v, 0, math.inf))
_COUNT = ("an int >= 1", lambda v: _int(v) and v >= 1)
_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "units": _COUNT, "embedding_dim": _COUNT, "lr_decay_steps": _COUNT,
    "learning_rate": _POSITIVE, "entropy_weight": _NONNEG, "l2": _NONNEG,
    "optimizer": (f"one of {_OPTIMIZERS}", lambda v: v in _OPTIMIZERS),
    "lr_decay_rate": ("a number in (0, 1]", lambda v: _num(v, 0, 1) and v > 0),
    "lr_staircase": ("a bool", lambda v: isinstance(v, bool)),
    "baseline_decay": ("a number in [0, 1)", lambda v: _num(v, 0, 1) and v < 1),
    "clip_norm": ("a finite number > 0, or None",
                  lambda v: v is None or _POSITIVE[1](v)),
    "epsilon": ("a number in [0, 1]", lambda v: _num(v, 0, 1)),
    "uniform_start": ("a bool", lambda v: isinstance(v, bool)),
    "normalize": ("a bool", lambda v: isinstance(v, bool)),
    "steps_per_update": _COUNT, "replay": _COUNT,
    "clip_ratio": ("a number in (0, 1], or None",
                   lambda v: v is None or (_num(v, 0, 1) and v > 0)),
    "seed": ("an int or None", lambda v: v is None or _int(v)),
}


def _validated(config: dict[str, Any]) -> dict[str, Any]:
    """Checks constructor arguments; returns them as plain Python values."""
    for name, value in config.items():
        allowed, ok = _RULES[name]
        _check(ok(value), f"{name} must be {allowed}, got {value!r}")
    return {k: v if v is None or isinstance(v, (bool, str))
            else (int(v) if _int(v) else float(v))
            for k, v in config.items()}


def _softmax(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = z - z.max()
    e = np.exp(z)
    s = e.sum()
    return e / s, z - math.log(s)


class Controller:
    """LSTM policy over a sequence of categorical decisions.

    Step 0 reads a learned start vector; step t > 0 reads the embedding of
    decision t-1's action (each decision has its own embedding table and its
    own softmax head). Actions are sampled from the softmax; with probability
    `epsilon` the whole architecture is uniformly random instead.

    Training is REINFORCE: loss = -(reward - baseline) * log p(decisions)
    - entropy_weight * entropy + l2 / 2 * |weights|^2, gradient clipped to
    global norm `clip_norm`. The baseline is an exponential moving average of
    rewards, initialised to the first reward (so the first update carries no
    policy gradient and rewards need not be centred). The default optimizer
    is Adam, lr 0.01: unlike the reference RMSProp at lr 0.1, its step size
    does not depend on the reward scale (FNAS rewards lie in [-0.1, 0.1]),
    and it learns our bandit tests reliably across seeds. The learning rate
    decays by `lr_decay_rate` every `lr_decay_steps` updates (reference
    0.95 every 500), stepwise or smoothly (`lr_staircase`).

    With `normalize`, the advantage is (reward - mean) / std, both running
    averages over rewards with factor `baseline_decay` (so the baseline is
    the mean reward of recent samples and the step does not depend on the
    reward's scale), and each update takes `steps_per_update` gradient
    steps on a PPO-style clipped objective over the last `replay` samples:
    a sample's weight is its advantage times p_now / p_before (p_before:
    the policy when this update began), and it stops pulling once that
    ratio leaves [1 - clip_ratio, 1 + clip_ratio] in the direction its
    advantage favours, so one update moves no sample's probability by more
    than the clip. With `uniform_start` the softmax heads
    start at zero, so the first policy is exactly uniform.

    Example:
        >>> c = Controller([3, 3, 4, 2], seed=0)
        >>> arch = c.sample()
        >>> stats = c.update(arch, reward=0.05)
        >>> c.save("/tmp/controller.npz")
        >>> Controller.load("/tmp/controller.npz").sample() == c.sample()
        True
    """

    def __init__(
        self, sizes: Sequence[int] = (), units: int = 32,
        embedding_dim: int = 20, learning_rate: float = 0.01,
        optimizer: str = "adam", lr_decay_rate: float = 0.95,
        lr_decay_steps: int = 500, lr_staircase: bool = True,
        baseline_decay: float = 0.95, entropy_weight: float = 0.0,
        l2: float = 1e-3, clip_norm: float | None = 5.0,
        epsilon: float = 0.0, uniform_start: bool = True,
        normalize: bool = False, steps_per_update: int = 1, replay: int = 1,
        clip_ratio: float | None = 0.2, seed: int | None = None,
    ) -> None:
        """Builds the policy and initialises its weights from `seed`.

        Args:
            sizes: number of choices of each decision (ints >= 1).
            units: LSTM units.
            embedding_dim: size of each decision's action embedding.
            learning_rate: initial learning rate (> 0).
            optimizer: one of "adam", "rmsprop", "sgd".
            lr_decay_rate: factor per `lr_decay_steps` updates, in (0, 1].
            lr_decay_steps: updates per decay period (>= 1).
            lr_staircase: decay stepwise (True) or continuously.
            baseline_decay: EMA factor of the reward baseline, in [0, 1).
            entropy_weight: weight of the entropy bonus (>= 0).
            l2: L2 penalty on all weights (>= 0).
            clip_norm: global gradient-norm limit (> 0), or None.
            epsilon: probability of a uniformly random sample, in [0, 1].
            uniform_start: start every softmax head at zero (uniform).
            normalize: divide the advantage by a running std (see above).
            steps_per_update: gradient steps per `update` (>= 1).
            replay: recent samples each normalized update revisits (>= 1).
            clip_ratio: PPO clip of the probability ratio, in (0, 1], or
                None for no clip.
            seed: seed of the controller's own random generator.

        Raises:
            ValueError: if any argument is out of its range.
        """
        args = {k: v for k, v in locals().items() if k in _RULES}
        self._cfg = _validated(args)
        self._rng = np.random.default_rng(seed)
        self._sizes: list[int] = []
        self._shapes: list[tuple[int, ...]] = [
            (embedding_dim,), (embedding_dim + units, 4 * units), (4 * units,)]
        self._theta = np.concatenate([self._rng.uniform(
            -_INIT, _INIT, embedding_dim + (embedding_dim + units) * 4 * units),
            np.zeros(4 * units)])
        self._m, self._v = np.zeros((2, self._theta.size))
        self._t = self._step = 0  # optimizer steps; updates
        self._baseline, self._has_baseline = 0.0, False
        self._moments = [0.0, 0.0, 0.0]  # decayed count, sum, sum of squares
        self._replay: list[tuple[list[int], float]] = []
        self._bind()
        for size in sizes:
            self.add_decision(size)

    def add_decision(self, size: int) -> int:
        """Appends a decision; existing weights and behaviour are untouched.

        Args:
            size: number of choices (int >= 1).

        Returns:
            The new decision's index.

        Raises:
            ValueError: if `size` is not an int >= 1.
        """
        _check(_int(size) and size >= 1,
               f"size must be an int >= 1, got {size!r}")
        size = int(size)
        e, h = self._cfg["embedding_dim"], self._cfg["units"]
        new = np.concatenate([self._rng.uniform(-_INIT, _INIT, size * (e + h)),
                              np.zeros(size)])
        if self._cfg["uniform_start"]:
            new[size * e:] = 0.0  # head kernel and bias
        self._replay = []  # their log-probabilities lack the new decision
        self._theta = np.concatenate([self._theta, new])
        self._m = np.concatenate([self._m, np.zeros_like(new)])
        self._v = np.concatenate([self._v, np.zeros_like(new)])
        self._shapes += [(size, e), (h, size), (size,)]
        self._sizes.append(size)
        self._bind()
        return len(self._sizes) - 1

    def _bind(self) -> None:
        """Makes the parameter (and gradient) views into the flat vectors.

        Layout: start, LSTM kernel, LSTM bias, then per decision its
        embedding, head kernel and head bias (views 3i+3, 3i+4, 3i+5).
        """
        self._grad = np.zeros_like(self._theta)
        views, grads, at = [], [], 0
        for shape in self._shapes:
            n = math.prod(shape)
            views.append(self._theta[at:at + n].reshape(shape))
            grads.append(self._grad[at:at + n].reshape(shape))
            at += n
        self._start, self._kernel, self._bias = views[:3]
        self._emb, self._hw, self._hb = views[3::3], views[4::3], views[5::3]
        self._gviews = grads

    def _forward(self, choose: Callable[[int, np.ndarray], int]) -> list:
        """Runs the LSTM, choosing each action with `choose(t, p)`."""
        n = self._cfg["units"]
        h, c, x = np.zeros(n), np.zeros(n), self._start
        tape = []
        for t in range(len(self._sizes)):
            xh = np.concatenate([x, h])
            z = xh @ self._kernel + self._bias
            s = 1.0 / (1.0 + np.exp(-z[:3 * n]))  # gates i, f, o
            g = np.tanh(z[3 * n:])
            c_prev, c = c, s[n:2 * n] * c + s[:n] * g
            tc = np.tanh(c)
            h = s[2 * n:] * tc
            p, logp = _softmax(h @ self._hw[t] + self._hb[t])
            a = choose(t, p)
            tape.append((xh, s, g, c_prev, tc, h, p, logp, a))
            x = self._emb[t][a]
        return tape

    def sample(self) -> list[int]:
        """Samples one architecture from the policy (or uniformly).

        Returns:
            One action index per decision.
        """
        rng = self._rng
        if rng.random() < self._cfg["epsilon"]:
            return self.uniform()

        def choose(t: int, p: np.ndarray) -> int:
            a = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(),
                                    side="right"))
            return min(a, len(p) - 1)

        return [step[-1] for step in self._forward(choose)]

    def uniform(self) -> list[int]:
        """A uniformly random architecture, from the controller's generator."""
        return [int(self._rng.integers(n)) for n in self._sizes]

    def shuffled(self, n: int) -> np.ndarray:
        """A random order of range(n), from the controller's generator."""
        return self._rng.permutation(n)

    def greedy(self) -> list[int]:
        """Returns the most likely action at each step (argmax decoding)."""
        tape = self._forward(lambda t, p: int(np.argmax(p)))
        return [step[-1] for step in tape]

    def _teacher(self, decisions: Sequence[int]) -> list:
        decisions = self._validate(decisions)
        return self._forward(lambda t, p: decisions[t])

    def probabilities(self, decisions: Sequence[int]) -> list[np.ndarray]:
        """Per-step distributions, feeding `decisions` back (teacher forcing).

        Args:
            decisions: one action per decision.

        Returns:
            A probability vector per decision.

        Raises:
            ValueError: if `decisions` do not fit the decisions' sizes.
        """
        return [step[6].copy() for step in self._teacher(decisions)]

    def log_prob(self, decisions: Sequence[int]) -> float:
        """Log-probability of `decisions` under the policy (no epsilon)."""
        return float(sum(st[7][st[8]] for st in self._teacher(decisions)))

    def loss_and_gradient(
        self, decisions: Sequence[int], advantage: float
    ) -> tuple[float, np.ndarray, float]:
        """REINFORCE loss, its gradient and the entropy, at a fixed advantage.

        Args:
            decisions: one action per decision.
            advantage: reward minus baseline.

        Returns:
            (loss, flat gradient w.r.t. `get_weights()`, summed entropy).

        Raises:
            ValueError: if `decisions` do not fit the decisions' sizes.
        """
        tape = self._teacher(decisions)
        beta, l2 = self._cfg["entropy_weight"], self._cfg["l2"]
        self._grad[:] = l2 * self._theta
        ent_sum = logp_sum = 0.0
        dh = dc = np.zeros(self._cfg["units"])
        for t in range(len(tape) - 1, -1, -1):
            p, logp, a = tape[t][6:]
            ent = -float(p @ logp)
            ent_sum, logp_sum = ent_sum + ent, logp_sum + float(logp[a])
            # d(-adv * log p_a - beta * H) / d logits
            dlog = advantage * p + beta * p * (logp + ent)
            dlog[a] -= advantage
            dh, dc = self._backward_step(tape, t, dlog, dh, dc)
        loss = (-advantage * logp_sum - beta * ent_sum
                + 0.5 * l2 * float(self._theta @ self._theta))
        return loss, self._grad.copy(), ent_sum

    def _backward_step(
        self, tape: list, t: int, dlog: np.ndarray, dh: np.ndarray,
        dc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Accumulates step t's gradients; returns d h_{t-1}, d c_{t-1}."""
        xh, s, g, c_prev, tc, h = tape[t][:6]
        gv, n = self._gviews, self._cfg["units"]
        gv[4 + 3 * t] += np.outer(h, dlog)  # head kernel t
        gv[5 + 3 * t] += dlog  # head bias t
        dh = self._hw[t] @ dlog + dh
        dc = dc + dh * s[2 * n:] * (1.0 - tc * tc)
        ds = np.concatenate([dc * g, dc * c_prev, dh * tc]) * s * (1 - s)
        dz = np.concatenate([ds, dc * s[:n] * (1.0 - g * g)])
        gv[1] += np.outer(xh, dz)
        gv[2] += dz
        dxh = self._kernel @ dz
        if t == 0:
            gv[0] += dxh[:-n]  # start input
        else:  # embedding row of the previous step's action
            gv[3 * t][tape[t - 1][-1]] += dxh[:-n]
        return dxh[-n:], dc * s[n:2 * n]

    def update(self, decisions: Sequence[int], reward: float) -> UpdateStats:
        """One REINFORCE step on a sampled architecture and its reward.

        Args:
            decisions: the architecture, one action per decision.
            reward: its (finite) reward.

        Returns:
            The step's UpdateStats; `baseline` is the value after the update.

        Raises:
            ValueError: if `decisions` do not fit or `reward` is not finite.
        """
        _check(_num(reward, -math.inf, math.inf),
               f"reward must be a finite number, got {reward!r}")
        reward = float(reward)
        if self._cfg["normalize"]:
            return self._update_normalized(self._validate(decisions), reward)
        baseline = self._baseline if self._has_baseline else reward
        advantage = reward - baseline
        loss, _, entropy = self.loss_and_gradient(decisions, advantage)
        self._clip_and_apply()
        decay = self._cfg["baseline_decay"]
        self._baseline = baseline + (1.0 - decay) * advantage
        self._has_baseline = True
        self._step += 1
        return UpdateStats(loss, reward, advantage, self._baseline, entropy,
                           self.learning_rate_at(self._step - 1), self._step)

    def _update_normalized(self, decisions: list[int],
                           reward: float) -> UpdateStats:
        """Normalised advantages, several clipped steps over recent samples."""
        cfg = self._cfg
        decay = cfg["baseline_decay"]
        m = self._moments
        self._moments = m = [decay * m[0] + 1.0, decay * m[1] + reward,
                             decay * m[2] + reward * reward]
        mean = m[1] / m[0]
        std = math.sqrt(max(m[2] / m[0] - mean * mean, 0.0))
        self._replay = [*self._replay, (decisions, reward)]
        self._replay = self._replay[-cfg["replay"]:]
        tiny = 1e-8 * (1.0 + abs(mean))
        advantages = [(r - mean) / std if std > tiny else 0.0
                      for _, r in self._replay]
        before = [self.log_prob(d) for d, _ in self._replay]
        lr = self.learning_rate
        first = None
        for _ in range(cfg["steps_per_update"]):
            stats = self._surrogate_gradient(advantages, before)
            first = first or stats
            self._clip_and_apply(lr)
        self._baseline, self._has_baseline = mean, True
        self._step += 1
        return UpdateStats(first[0], reward, advantages[-1], mean, first[1],
                           lr, self._step)

    def _surrogate_gradient(
        self, advantages: list[float], before: list[float]
    ) -> tuple:
        """Mean clipped-surrogate gradient over the replay, into _grad.

        Returns:
            (loss, mean entropy) at the current weights.
        """
        clip = self._cfg["clip_ratio"]
        total = np.zeros_like(self._theta)
        loss = entropy = 0.0
        for (decisions, _), adv, logp_before in zip(
                self._replay, advantages, before):
            ratio = math.exp(self.log_prob(decisions) - logp_before)
            held = clip is not None and (
                (adv > 0 and ratio > 1 + clip)
                or (adv < 0 and ratio < 1 - clip))
            # d(-adv * ratio) = -adv * ratio * d log p: a REINFORCE step
            # with advantage adv * ratio (0 once the clip holds it).
            weight = 0.0 if held else adv * ratio
            part_loss, grad, part_entropy = self.loss_and_gradient(
                decisions, weight)
            total += grad
            loss += part_loss
            entropy += part_entropy
        n = len(self._replay)
        self._grad[:] = total / n
        return loss / n, entropy / n

    def _clip_and_apply(self, lr: float | None = None) -> None:
        clip = self._cfg["clip_norm"]
        norm = math.sqrt(float(self._grad @ self._grad))
        if clip is not None and norm > clip:
            self._grad *= clip / norm
        self._apply(self.learning_rate if lr is None else lr)

    def _apply(self, lr: float) -> None:
        g, opt = self._grad, self._cfg["optimizer"]
        if opt == "sgd":
            self._theta -= lr * g
        elif opt == "rmsprop":
            self._v += 0.1 * (g * g - self._v)
            self._theta -= lr * g / (np.sqrt(self._v) + 1e-7)
        else:
            self._t += 1
            self._m += 0.1 * (g - self._m)
            self._v += 0.001 * (g * g - self._v)
            lr_t = lr * math.sqrt(1 - 0.999 ** self._t) / (1 - 0.9 ** self._t)
            self._theta -= lr_t * self._m / (np.sqrt(self._v) + 1e-8)

    def _validate(self, decisions: Sequence[int]) -> list[int]:
        _check(isinstance(decisions, (Sequence, np.ndarray)),
               f"decisions must be a sequence of ints, got {decisions!r}")
        _check(len(decisions) == len(self._sizes),
               f"expected {len(self._sizes)} decisions, got "
               f"{len(decisions)}: {list(decisions)!r}")
        out = []
        for t, (a, n) in enumerate(zip(decisions, self._sizes)):
            _check(_int(a) and 0 <= a < n, f"decision {t} is {a!r}; allowed: "
                   f"an int in [0, {n - 1}]")
            out.append(int(a))
        return out

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of choices of each decision."""
        return tuple(self._sizes)

    @property
    def num_decisions(self) -> int:
        """Number of decisions."""
        return len(self._sizes)

    @property
    def baseline(self) -> float:
        """Reward baseline (0.0 until the first update sets it)."""
        return self._baseline

    @property
    def step(self) -> int:
        """Number of updates done."""
        return self._step

    @property
    def learning_rate(self) -> float:
        """Learning rate the next update will use."""
        return self.learning_rate_at(self._step)

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of the update after `step` updates."""
        c = self._cfg
        periods = step / c["lr_decay_steps"]
        periods = math.floor(periods) if c["lr_staircase"] else periods
        return c["learning_rate"] * c["lr_decay_rate"] ** periods

    def get_config(self) -> dict:
        """Constructor arguments (with the current `sizes`), JSON-safe."""
        return dict(self._cfg, sizes=list(self._sizes))

    def get_weights(self) -> np.ndarray:
        """A copy of all weights as one flat float64 vector."""
        return self._theta.copy()

    def set_weights(self, weights: np.ndarray) -> None:
        """Sets the flat weights; ValueError if not shaped as get_weights()."""
        weights = np.asarray(weights, dtype=np.float64)
        _check(weights.shape == self._theta.shape, f"weights must have shape "
               f"{self._theta.shape}, got {weights.shape}")
        self._theta[:] = weights

    def save(self, path: str | os.PathLike) -> None:
        """Writes the whole state to one .npz file, atomically.

        Args:
            path: destination file; written via a temporary file and
                `os.replace`, so readers never see a partial file.
        """
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(os.path.abspath(path)), suffix=".npz.tmp")
        scalars = [self._t, self._step, self._baseline, self._has_baseline,
                   *self._moments]
        replay = self._replay
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, format=np.array(_FORMAT), theta=self._theta,
                         m=self._m, v=self._v, scalars=np.array(scalars, float),
                         config=np.array(json.dumps(self.get_config())),
                         rng=np.array(json.dumps(
                             self._rng.bit_generator.state)),
                         replay_decisions=np.array(
                             [d for d, _ in replay], np.int64).reshape(
                                 len(replay), len(self._sizes)),
                         replay_rewards=np.array([r for _, r in replay]))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Controller":
        """Restores a controller saved by `save`; it continues exactly.

        Args:
            path: a file written by `save`.

        Returns:
            The controller.

        Raises:
            FileNotFoundError: if `path` does not exist.
            ValueError: if the file is corrupt, truncated or incomplete.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no controller file at {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except Exception as e:  # zipfile, zlib, EOF, format errors
            raise ValueError(f"cannot read controller file {path}: "
                             f"{type(e).__name__}: {e}") from e
        missing = [k for k in _KEYS if k not in state]
        _check(not missing, f"controller file {path} lacks keys {missing}")
        version = state["format"].tolist()
        missing = [k for k in _REPLAY_KEYS if k not in state]
        _check(version == 1 or not missing,
               f"controller file {path} lacks keys {missing}")
        try:
            _check(version in (1, _FORMAT), f"format {state['format']} is "
                   f"not a supported one (1, {_FORMAT})")
            c = cls(**json.loads(str(state["config"])))
            c._rng.bit_generator.state = json.loads(str(state["rng"]))
            for name in ("theta", "m", "v"):
                _check(state[name].shape == c._theta.shape, f"{name} has "
                       f"shape {state[name].shape}, not {c._theta.shape}")
                getattr(c, "_" + name)[:] = state[name]
            scalars = state["scalars"].tolist()
            t, step, baseline, has = scalars[:4]
            c._moments = [float(x) for x in scalars[4:]] or [0.0] * 3
            _check(len(c._moments) == 3, f"scalars has {len(scalars)} values")
            if version == _FORMAT:
                c._replay = [
                    ([int(a) for a in d], float(r))
                    for d, r in zip(state["replay_decisions"],
                                    state["replay_rewards"], strict=True)]
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"controller file {path} is invalid: {e}") from e
        c._t, c._step = int(t), int(step)
        c._baseline, c._has_baseline = float(baseline), bool(has)
        return c
