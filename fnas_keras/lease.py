"""Leases on running trials, so that a dead worker's trial is run again.

keras-tuner 1.4.8 keeps a trial in `Oracle.ongoing_trials` until its worker
ends it. A worker killed mid-trial never does: its trial is never run again,
and the chief, which exits only once `ongoing_trials` and `tuner_ids` are
both empty, waits forever.

Here every tuner holds a lease that each of its calls to the oracle renews
(create_trial, update_trial, get_trial, end_trial). keras-tuner makes none
of these during a fit, so a worker's tuner renews its lease from a
heartbeat thread while it trains. The oracle takes back the trial of a
tuner silent for longer than the timeout, and forgets that tuner.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Iterator

DEFAULT_TIMEOUT_S = 3600.0


class Leases:
    """When each tuner was last heard from.

    Args:
        timeout_s: Seconds of silence after which a tuner counts as dead.
        clock: Monotonic time in seconds; tests pass a fake one.

    Example:
        >>> leases = Leases(60.0)
        >>> leases.renew("tuner0")
        >>> leases.expired(["tuner0"])
        []
    """

    def __init__(
        self, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ):
        self.timeout_s = checked_timeout(timeout_s)
        self._clock = clock
        # A tuner never heard from by this process (e.g. one the oracle
        # knew before a restart) gets a full timeout from now.
        self._start = clock()
        self._seen: dict[str, float] = {}

    def renew(self, tuner_id: str) -> None:
        """Records that `tuner_id` is alive now."""
        self._seen[tuner_id] = self._clock()

    def forget(self, tuner_id: str) -> None:
        self._seen.pop(tuner_id, None)

    def expired(self, tuner_ids: Iterable[str]) -> list[str]:
        """The tuners among `tuner_ids` silent for longer than the timeout."""
        now = self._clock()
        return sorted(
            t for t in set(tuner_ids)
            if now - self._seen.get(t, self._start) > self.timeout_s
        )


def heartbeat_interval(timeout_s: float) -> float:
    """Seconds between heartbeats: four chances per timeout."""
    return timeout_s / 4


def poll_interval(timeout_s: float) -> float:
    """Seconds an idle worker waits before asking for a trial again."""
    return min(5.0, timeout_s / 8)


@contextlib.contextmanager
def heartbeat(oracle: Any, trial_id: str, timeout_s: float) -> Iterator[None]:
    """Renews the lease on `trial_id` from a thread while the body runs.

    Args:
        oracle: The worker's oracle (keras-tuner's gRPC OracleClient); its
            `get_trial` reaches the chief, which renews the lease.
        trial_id: The trial being run.
        timeout_s: The oracle's trial timeout.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_interval(timeout_s)):
            try:
                oracle.get_trial(trial_id)
            except Exception:  # noqa: BLE001
                # A missed beat risks only a rerun; a chief that is gone
                # is reported by the tuner's own next call.
                pass

    # A daemon, and never joined: a beat may wait on an unreachable chief.
    threading.Thread(
        target=beat, name=f"fnas-heartbeat-{trial_id}", daemon=True
    ).start()
    try:
        yield
    finally:
        stop.set()


def start_reaper(oracle: Any) -> threading.Event:
    """Expires leases on the chief every poll interval, until set.

    create_trial expires leases too, but a worker that dies between trials
    holds none, and once the others have stopped nobody calls it.

    Returns:
        The event that stops the thread.
    """
    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(poll_interval(oracle.trial_timeout_s)):
            oracle.expire_leases()

    threading.Thread(target=reap, name="fnas-lease-reaper", daemon=True).start()
    return stop


def checked_timeout(timeout_s: Any) -> float:
    """Returns a trial timeout as a float.

    Raises:
        ValueError: If it is not a finite number > 0.
    """
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise ValueError(f"trial_timeout_s must be a number, got {timeout_s!r}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(
            f"trial_timeout_s must be a finite number > 0, got {timeout_s!r}"
        )
    return float(timeout_s)
