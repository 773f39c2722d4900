"""Crash-safe state files."""

import json
import os

import pytest

from fnas_keras import storage


def test_write_json_replaces_atomically(tmp_path):
    path = str(tmp_path / "state.json")
    storage.write_json(path, {"a": 1})
    storage.write_json(path, {"a": 2})
    assert storage.read_json(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_corrupt_json_names_the_file(tmp_path):
    path = tmp_path / "oracle.json"
    path.write_text('{"a": ')
    with pytest.raises(storage.CorruptStateError, match="oracle.json"):
        storage.read_json(str(path))


def test_jsonl_skips_a_torn_last_line(tmp_path):
    path = str(tmp_path / "log.jsonl")
    storage.append_jsonl(path, {"step": 1})
    storage.append_jsonl(path, {"step": 2})
    with open(path, "a") as f:
        f.write('{"step": 3, "val')
    assert storage.read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_truncate_keeps_what_is_asked(tmp_path):
    path = str(tmp_path / "log.jsonl")
    for step in range(5):
        storage.append_jsonl(path, {"step": step})
    kept = storage.truncate_jsonl(path, keep=lambda r: r["step"] < 3)
    assert [r["step"] for r in kept] == [0, 1, 2]
    with open(path) as f:
        assert [json.loads(x)["step"] for x in f] == [0, 1, 2]


def test_missing_log_reads_empty(tmp_path):
    assert storage.read_jsonl(str(tmp_path / "none.jsonl")) == []


def test_numpy_values_are_stored(tmp_path):
    import numpy as np

    path = str(tmp_path / "s.json")
    storage.write_json(path, {"x": np.int64(3), "y": np.float32(0.5)})
    assert storage.read_json(path) == {"x": 3, "y": 0.5}


def test_remove_stale_keeps_the_current_file(tmp_path):
    for name in ("controller-1.npz", "controller-2.npz", "other.txt"):
        (tmp_path / name).write_text("x")
    storage.remove_stale(str(tmp_path), "controller-*.npz", "controller-2.npz")
    assert sorted(os.listdir(tmp_path)) == ["controller-2.npz", "other.txt"]


def test_sync_forces_a_log_to_disk_and_skips_a_missing_file(tmp_path):
    path = str(tmp_path / "log.jsonl")
    storage.sync(path)  # nothing written yet: no file, no error
    storage.append_jsonl(path, {"step": 1})
    storage.sync(path)
    assert storage.read_jsonl(path) == [{"step": 1}]
