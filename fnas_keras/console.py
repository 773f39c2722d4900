"""What a command-line entry point shows its user at start and on failure.

TensorFlow's start-up messages (oneDNN, CUDA, the C++ absl "before
InitializeLog" lines, TFDS's absl warnings) are silenced unless
FNAS_VERBOSE=1 is set. The package's user errors (a bad value, a missing
file, a search that cannot run as configured) become one line on stderr and
exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

VERBOSE_ENV = "FNAS_VERBOSE"
USAGE_STATUS = 2
# Harmless warnings silenced with the start-up messages: keras-tuner
# reloads a trial's weights into a freshly compiled model, whose optimizer
# has not built its slots yet.
_HARMLESS = (r"Skipping variable loading for optimizer",)


class UsageError(ValueError):
    """A user's mistake an entry point reports as one line and status 2.

    Example:
        >>> raise UsageError("cannot read model file 'm.txt': expected "
        ...                  ".keras or .h5")  # doctest: +SKIP
    """


def verbose() -> bool:
    """Whether FNAS_VERBOSE asks for TensorFlow's messages and tracebacks."""
    value = os.environ.get(VERBOSE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def import_tensorflow(loud: bool | None = None) -> None:
    """Imports TensorFlow, silencing its start-up messages unless `loud`.

    Call it before anything else imports TensorFlow: the C++ log level is
    read when the library loads, and the messages printed while it loads
    and looks for accelerators are captured (and shown only if the import
    fails). Later C++ errors still show; TensorFlow's and TFDS's absl
    warnings are lowered to errors, and keras's warning about an
    optimizer's unbuilt slots on reloading a model is dropped.

    Args:
        loud: Keep every message; default: `verbose()`.
    """
    if loud is None:
        loud = verbose()
    if loud or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices()
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    for message in _HARMLESS:
        warnings.filterwarnings("ignore", message=message)


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is one of the package's user errors.

    The set is narrow on purpose: `UsageError`, a network that does not fit
    the device (`fpga.ResourceError`), the ImageNet archives missing
    (`data.ImageNetFilesMissingError`) and keras-tuner's `FatalValueError`
    (a search that cannot run as configured). A plain ValueError is not in
    it: flags are validated before anything runs, so one raised later is
    a bug and keeps its traceback.
    """
    types: list[type] = [UsageError]
    for module, name in (("fnas_keras.fpga", "ResourceError"),
                         ("fnas_keras.data", "ImageNetFilesMissingError"),
                         ("keras_tuner.errors", "FatalValueError")):
        # A module never imported cannot have raised its error.
        loaded = sys.modules.get(module)
        if loaded is not None:
            types.append(getattr(loaded, name))
    return isinstance(error, tuple(types))


def one_line(error: BaseException) -> str:
    """The error's message on a single line."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def report(prog: str, error: BaseException,
           loud: bool | None = None) -> int:
    """Prints `prog: error: message` on stderr; returns status 2.

    Args:
        prog: The program's name, first on the line.
        error: The user error.
        loud: Print the traceback first; default: `verbose()`.
    """
    if verbose() if loud is None else loud:
        import traceback

        traceback.print_exception(error)
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
    return USAGE_STATUS


@contextlib.contextmanager
def _stderr_captured() -> Iterator[None]:
    """Sends file descriptor 2 to a temporary file; replays it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        _restore(saved)


def _restore(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
