"""Tests for fnas_keras.progress: the progress line under each trial."""

import types

from fnas_keras import progress


def test_progress_line_counts_and_time_left():
    line = progress.progress_line(done=2, max_trials=8, judged=10,
                                  rejected=8, fit_seconds=[20.0, 40.0])
    # 6 trials left at a mean of 30 s each.
    assert line == ("2/8 trials done, 10 children judged, 8 rejected "
                    "(80%), about 3m00s left")


def test_time_left_is_shared_among_running_trials():
    line = progress.progress_line(done=2, max_trials=8, judged=5,
                                  rejected=0, fit_seconds=[60.0],
                                  running=2)
    # 6 trials left (2 of them running) on 3 processes: 2 minutes.
    assert line.endswith("0 rejected (0%), about 2m00s left")


def test_episode_budget_caps_the_trials_left():
    line = progress.progress_line(done=1, max_trials=100, judged=9,
                                  rejected=8, fit_seconds=[10.0],
                                  episodes_left=3)
    assert line.endswith("about 30s left")


def test_one_child_is_not_children():
    line = progress.progress_line(done=1, max_trials=2, judged=1,
                                  rejected=0, fit_seconds=[9.0])
    assert line == ("1/2 trials done, 1 child judged, 0 rejected (0%), "
                    "about 9s left")


def test_no_estimate_before_a_fit_or_after_the_last_trial():
    first = progress.progress_line(done=0, max_trials=4, judged=3,
                                   rejected=2, fit_seconds=[])
    assert first == "0/4 trials done, 3 children judged, 2 rejected (67%)"
    last = progress.progress_line(done=4, max_trials=4, judged=4,
                                  rejected=0, fit_seconds=[5.0])
    assert "left" not in last and last.startswith("4/4 trials done")


def test_long_searches_show_hours():
    line = progress.progress_line(done=1, max_trials=3, judged=1,
                                  rejected=0, fit_seconds=[3725.0])
    assert line.endswith("about 2h04m left")


def test_search_progress_reads_the_oracle():
    def trial(status):
        return types.SimpleNamespace(status=status)

    oracle = types.SimpleNamespace(
        trials={"0": trial("COMPLETED"), "1": trial("FAILED"),
                "2": trial("RUNNING")},
        max_trials=5, num_rejected=7,
        trial_times={"0": [0.0, 10.0], "1": [10.0, 30.0], "2": [30.0, None]},
        episodes_left=lambda: None,
    )
    # 2 done, 3 left at 15 s on 2 processes (this one and the running one).
    assert progress.search_progress(oracle) == (
        "2/5 trials done, 10 children judged, 7 rejected (70%), "
        "about 22s left")


def test_a_gated_oracle_without_fit_times_gets_counts_only():
    oracle = types.SimpleNamespace(
        trials={"0": types.SimpleNamespace(status="COMPLETED")},
        max_trials=3, num_rejected=1,
    )
    assert progress.search_progress(oracle) == (
        "1/3 trials done, 2 children judged, 1 rejected (50%)")


def test_no_max_trials_gives_no_total_and_no_estimate():
    # Hyperband's oracle has max_trials=None: its budget is epochs.
    assert progress.progress_line(
        done=2, max_trials=None, judged=3, rejected=1,
        fit_seconds=[10.0, 20.0]) == (
        "2 trials done, 3 children judged, 1 rejected (33%)")
