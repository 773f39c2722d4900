"""Crash-safe state files: atomic JSON writes and an append-only JSONL log.

A search can be killed at any moment; every state file is written to a
temporary file in the same directory and renamed over the old one, so a
reader sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from typing import Any
from typing import Callable


class CorruptStateError(ValueError):
    """A state file exists but cannot be read."""


def write_json(path: str, obj: Any) -> None:
    """Writes `obj` as JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=1, default=_json_default))


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (temporary file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path: str) -> Any:
    """Reads a JSON state file.

    Raises:
        CorruptStateError: If the file is not valid JSON; the message names
            the file and how to start afresh.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptStateError(
            f"corrupted state file {path}: {error}. Restore it, or start "
            "afresh with overwrite=True or a new project_name"
        ) from error


def append_jsonl(path: str, record: dict) -> None:
    """Appends one JSON record as a line, flushed to the operating system.

    The line survives a kill of the process (the kernel holds it); it is not
    forced to the disk here, which would cost milliseconds per rejected
    child. `sync` forces it, before the state that counts the line is saved.
    """
    line = json.dumps(record, default=_json_default) + "\n"
    with open(path, "a") as f:
        f.write(line)


def sync(path: str) -> None:
    """Forces a file's written data to the disk; a missing file is skipped."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def read_jsonl(path: str) -> list[dict]:
    """Reads every complete record of a JSONL log (none if it is missing).

    A torn last line, left by a kill in the middle of a write, is skipped.
    """
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            records.append(json.loads(line))
    return records


def truncate_jsonl(path: str, keep: Callable[[dict], bool]) -> list[dict]:
    """Rewrites a JSONL log with only the records `keep` accepts.

    Returns:
        The records kept.
    """
    records = read_jsonl(path)
    kept = [r for r in records if keep(r)]
    if os.path.exists(path):
        lines = [json.dumps(r, default=_json_default) + "\n" for r in kept]
        write_text(path, "".join(lines))
    return kept


def remove_stale(directory: str, pattern: str, keep: str) -> None:
    """Removes the files matching `pattern` in `directory` except `keep`."""
    for path in glob.glob(os.path.join(directory, pattern)):
        if os.path.basename(path) != keep:
            os.remove(path)


def _json_default(value: Any) -> Any:
    """Encodes numpy scalars, which hyperparameter values can be."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {value!r} of type {type(value).__name__}")
