"""What every benchmark script shares: flag checks, errors and next steps.

`run(main)` replaces `absl.app.run(main)`: a bad flag value (a check from
`check_flags`, or absl's own) is one line on stderr and exit status 2; the
package's user errors raised while the script runs (`console.is_user_error`)
are reported the same way; any other exception keeps its traceback.
TensorFlow's start-up messages are silenced unless FNAS_VERBOSE=1.

Example:
    >>> entry.check_flags(device=entry.device, latency_spec_ms=entry.positive)
    >>> entry.run(main)  # in place of app.run(main)
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from absl import app
from absl import flags

from fnas_keras import console
from fnas_keras import fpga
from fnas_keras import validation

# A part for "the best model on another part": the first of these that
# is not the run's (board name -> its part).
_OTHER_PARTS = {"zcu102": "xczu9eg", "pynq-z1": "xc7z020"}
# Checks run once every flag has a good value; see check_after.
_LATER: list[Callable[[], None]] = []


def run(main: Callable[[list[str]], Any], tensorflow: bool = True) -> None:
    """Parses the flags and runs `main` as absl.app.run does, quietly.

    Args:
        main: The script's main(argv).
        tensorflow: Whether the script uses TensorFlow (imported quietly
            once the flags are good).
    """
    prog = os.path.basename(sys.argv[0])

    def parse(argv: list[str]) -> list[str]:
        try:
            rest = flags.FLAGS(argv)
            for check in _LATER:
                check()
        except (flags.Error, ValueError) as error:
            sys.exit(console.report(prog, error, loud=False))
        return rest

    def guarded(argv: list[str]) -> Any:
        try:
            if tensorflow:
                console.import_tensorflow()
            return main(argv)
        except Exception as error:  # noqa: BLE001 - re-raised unless ours.
            if not console.is_user_error(error):
                raise
            return console.report(prog, error)

    app.run(guarded, flags_parser=parse)


def check_flags(**checks: Callable[[Any], Any]) -> None:
    """Registers a check per flag; a ValueError it raises is a bad value.

    Args:
        **checks: flag name -> a function of the flag's value that raises
            ValueError naming what is allowed. A None value (an optional
            flag left unset) is not checked.
    """
    for name, check in checks.items():
        flags.register_validator(name, _validator(check))


def check_after(check: Callable[..., Any], *names: str) -> None:
    """Registers a check run once each flag's own checks have passed.

    For checks of several flags together, and for slow ones (a dataset
    name needs TensorFlow), so that a typo elsewhere is reported at once.

    Args:
        check: Called with the values of `names`; raises ValueError.
        *names: The flags it reads. With one name, its message is
            prefixed as absl prefixes its own (`flag --name=value: `).
    """
    def run_check() -> None:
        values = [flags.FLAGS[name].value for name in names]
        try:
            check(*values)
        except ValueError as error:
            if len(names) != 1:
                raise
            raise ValueError(f"flag --{names[0]}={values[0]}: {error}") \
                from error
    _LATER.append(run_check)


def _validator(check: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def validate(value: Any) -> bool:
        if value is None:
            return True
        try:
            check(value)
        except ValueError as error:
            raise flags.ValidationError(str(error)) from error
        return True
    return validate


def device(name: str) -> None:
    """A part or board from the catalogue."""
    fpga.device(name)


def bits(value: Any) -> None:
    """A word width the model supports."""
    if int(value) not in fpga.BITS:
        raise ValueError(f"unsupported bits {value}; allowed: "
                         f"{', '.join(map(str, fpga.BITS))}")


def positive(value: Any) -> None:
    """A finite number above zero."""
    validation.positive_number("the value", value)


def positives(values: Sequence[str]) -> None:
    """A list of finite numbers above zero."""
    for value in values:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        positive(number)


def at_least(low: int) -> Callable[[int], None]:
    """A check that an integer is `low` or more."""
    def check(value: int) -> None:
        if value < low:
            raise ValueError(f"must be at least {low}, got {value}")
    return check


def dataset(name: str) -> None:
    """A dataset the data module knows (imports TensorFlow, quietly)."""
    console.import_tensorflow()
    from fnas_keras import data

    data.info(name)


def command(script: str, argv: Sequence[str]) -> str:
    """The shell command that runs `script` with `argv` again."""
    return " ".join([shown(sys.executable), shown(script),
                     *map(shlex.quote, argv)])


def resume_argv(argv: Sequence[str],
                more: dict[str, int] | None = None) -> list[str]:
    """The flags of this run with --resume, and `more` flags replaced.

    Args:
        argv: The flags the run was given (sys.argv[1:]).
        more: Flags to set (e.g. a higher max_trials), replacing any given.
    """
    more = more or {}
    kept, skip = [], False
    for arg in argv:
        name = _flag_name(arg)
        if skip or name in ("resume", "noresume"):
            skip = False
            continue
        if name in more:
            skip = "=" not in arg  # `--max_trials 5`: drop the 5 too
            continue
        kept.append(arg)
    return kept + [f"--{k}={v}" for k, v in more.items()] + ["--resume"]


def interrupted(script: str, project_dir: str) -> str:
    """What to run after Ctrl-C: the resume command, once there is state."""
    argv = sys.argv[1:]
    if os.path.exists(os.path.join(project_dir, "oracle.json")):
        return f"\ninterrupted; resume with:\n  " \
               f"{command(script, resume_argv(argv))}"
    again = [a for a in argv if _flag_name(a) not in ("resume", "noresume")]
    return f"\ninterrupted before anything was saved; start again with:\n" \
           f"  {command(script, again)}"


def next_steps(project_dir: str, model_path: str | None, device_name: str,
               bits_value: Any, mapping: str, resume: str) -> str:
    """What to do after a search, with the run's real paths.

    Args:
        project_dir: The search's project directory.
        model_path: best_model.keras, or None when no child was trained.
        device_name: The part the search timed.
        bits_value: Its word width.
        mapping: Its mapping.
        resume: The command that resumes the search.
    """
    lines = ["Next steps:",
             "  the controller's learning curves in TensorBoard:",
             f"    {_program('tensorboard')} --logdir "
             f"{shown(os.path.join(project_dir, 'controller'))}"]
    if model_path is not None:
        part = fpga.device(device_name).name
        other = next(b for b, p in _OTHER_PARTS.items() if p != part)
        lines += ["  the best model on another part, beside this one:",
                  f"    {_program('fnas-latency')} {shown(model_path)} "
                  f"--compare --device {device_name},{other} --bits "
                  f"{bits_value} --mapping {mapping}"]
    lines += ["  more trials for this search (it resumes where it stopped):",
              f"    {resume}"]
    return "\n".join(lines)


def _flag_name(arg: str) -> str | None:
    if not arg.startswith("-"):
        return None
    return arg.lstrip("-").split("=", 1)[0]


def _program(name: str) -> str:
    """`name` beside this Python when installed there, else as on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return shown(path) if os.path.exists(path) else name


def shown(path: str) -> str:
    """A path as short as it stays unambiguous from the current directory."""
    relative = os.path.relpath(path)
    shown = path if relative.startswith("..") else relative
    return shlex.quote(shown)
