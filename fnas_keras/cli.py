"""`fnas-latency`: the FPGA latency of a saved Keras model (.keras or .h5).

Usage:
    fnas-latency model.keras --device zcu102 --bits 16 [--mapping shared]
                 [--unroll TM TN] [--json]
    fnas-latency model.h5 --compare --device xc7z020,zcu102 --bits 8,16 \\
                 --mapping shared,pipelined
    fnas-latency --list-devices

A mistake (an unknown part, a missing or unreadable file) is one line on
stderr and exit status 2; --verbose (or FNAS_VERBOSE=1) also shows
TensorFlow's start-up messages and the traceback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import zipfile
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

from fnas_keras import console
from fnas_keras import fpga
from fnas_keras import keras_reader

PROG = "fnas-latency"
# File extension -> what Keras reads it as.
FORMATS = {".keras": "Keras v3 archive", ".h5": "legacy HDF5",
           ".hdf5": "legacy HDF5"}
# What keras.saving.load_model raises on a file it cannot read.
_LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError,
                zipfile.BadZipFile)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)",
              file=sys.stderr)
        sys.exit(console.USAGE_STATUS)


def _listed(check: Callable[[str], Any]) -> Callable[[str], list]:
    """An argparse type: comma-separated values, each passed to `check`."""
    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",")]
        try:
            return [check(item) for item in items]
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    return parse


def _bits(text: str) -> int:
    if text not in {str(b) for b in fpga.BITS}:
        raise ValueError(f"unsupported bits {text!r}; allowed: "
                         f"{', '.join(map(str, fpga.BITS))}")
    return int(text)


def _mapping(text: str) -> str:
    if text not in fpga.MAPPINGS:
        raise ValueError(f"unknown mapping {text!r}; allowed: "
                         f"{', '.join(fpga.MAPPINGS)}")
    return text


def _device(text: str) -> str:
    fpga.device(text)
    return text


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="FPGA latency of a saved Keras model (FNAS performance "
                    "model).")
    p.add_argument("model", nargs="?",
                   help="a saved Keras model: .keras or .h5 file")
    p.add_argument("--device", default="xc7z020", type=_listed(_device),
                   help="part or board name (default: xc7z020); with "
                        "--compare, several, comma-separated")
    p.add_argument("--bits", default="16", type=_listed(_bits),
                   help="word width: 8, 16 or 32 (default: 16); with "
                        "--compare, several")
    p.add_argument("--mapping", default="pipelined", type=_listed(_mapping),
                   help=f"{', '.join(fpga.MAPPINGS)} (default: pipelined); "
                        f"with --compare, several")
    p.add_argument("--compare", action="store_true",
                   help="one table row per device x bits x mapping")
    p.add_argument("--unroll", type=int, nargs=2, metavar=("TM", "TN"),
                   help="fixed (Tm, Tn) for --mapping shared")
    p.add_argument("--json", action="store_true",
                   help="print the report (or the rows) as JSON")
    p.add_argument("--list-devices", action="store_true",
                   help="list the device catalogue and exit")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up messages and the "
                        "traceback of an error (as FNAS_VERBOSE=1)")
    return p


def _check_combination(parser: argparse.ArgumentParser,
                       args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot check on its own."""
    if not args.model:
        parser.error("a model file is required (or --list-devices)")
    if not args.compare:
        for name in ("device", "bits", "mapping"):
            values = getattr(args, name)
            if len(values) > 1:
                parser.error(f"--{name} takes one value without --compare, "
                             f"got {','.join(map(str, values))}")
    if args.unroll and set(args.mapping) != {"shared"}:
        parser.error(f"--unroll applies to --mapping shared only, got "
                     f"{','.join(args.mapping)}")


def _list_devices() -> str:
    aliases: dict[str, list[str]] = {}
    for alias, part in fpga.aliases().items():
        aliases.setdefault(part, []).append(alias)
    lines = [f"{'part':<11}{'DSP':>7}{'BRAM18':>8}{'LUTRAM':>8}{'URAM':>6}"
             f"{'MHz':>6}{'GB/s':>7}  aliases"]
    for name, d in fpga.devices().items():
        lines.append(f"{name:<11}{d.dsp:>7}{d.bram18:>8}{d.lutram:>8}"
                     f"{d.uram:>6}{d.clock_mhz:>6g}{d.dram_gbps:>7g}  "
                     f"{', '.join(aliases.get(name, []))}")
    return "\n".join(lines)


def load_model(path: str, loud: bool = False) -> tuple[Any, str]:
    """Reads a saved Keras model; returns it and the format read.

    Only the file's reading is guarded: what keras.saving.load_model raises
    on a file it cannot read becomes a UsageError naming the file.

    Args:
        path: A .keras or .h5 (.hdf5) file.
        loud: Keep TensorFlow's start-up messages.

    Returns:
        `(model, format)`, format as in `FORMATS`.

    Raises:
        console.UsageError: No such file, another kind of file, or one
            Keras cannot read.
    """
    kind = FORMATS.get(os.path.splitext(path)[1].lower())
    if os.path.isdir(path):
        raise console.UsageError(
            f"{path!r} is a directory; {PROG} reads .keras and .h5 files "
            "(load a SavedModel and save it with model.save('m.keras'))")
    if not os.path.exists(path):
        raise console.UsageError(f"no model file {path!r}")
    if kind is None:
        raise console.UsageError(
            f"cannot read {path!r}: expected a .keras or .h5 model file")
    console.import_tensorflow(loud)
    import keras  # only the model's reading needs Keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except _LOAD_ERRORS as error:
        raise console.UsageError(
            f"cannot read {path!r} as a {kind} file: "
            f"{type(error).__name__}: {error}") from error
    return model, kind


def _analyze(model: Any, path: str, device: str, bits: int, mapping: str,
             unroll: tuple[int, int] | None) -> fpga.LatencyReport:
    """keras_reader.analyze with the settings already checked.

    What is left of its ValueErrors is about the model's layers (an
    unsupported class, a shape it cannot read), so it names the file.
    """
    try:
        return keras_reader.analyze(model, device, bits=bits,
                                    mapping=mapping, unroll=unroll)
    except fpga.ResourceError:
        raise
    except ValueError as error:
        raise console.UsageError(f"cannot analyse {path!r}: {error}") \
            from error


def compare_rows(model: Any, path: str, devices: Sequence[str],
                 bits: Sequence[int], mappings: Sequence[str],
                 unroll: tuple[int, int] | None = None) -> list[dict]:
    """One row per device x bits x mapping: latency and resources.

    A setting the network does not fit gets a row with `fits` False and
    the reason instead of figures.
    """
    rows = []
    for name, width, mapping in itertools.product(devices, bits, mappings):
        row: dict[str, Any] = {"device": fpga.device(name).name,
                               "bits": width, "mapping": mapping}
        try:
            r = _analyze(model, path, name, width, mapping, unroll)
        except fpga.ResourceError as error:
            rows.append({**row, "fits": False, "reason": str(error)})
            continue
        rows.append({**row, "fits": True, "latency_ms": r.latency_ms,
                     "throughput_fps": r.throughput_fps,
                     "dsp_used": r.dsp_used, "dsp": r.device.dsp,
                     "bram18_used": r.bram18_used,
                     "bram18": r.device.bram18})
    return rows


def compare_table(rows: Sequence[dict]) -> str:
    """The rows of `compare_rows` as a text table."""
    head = (f"{'device':<11}{'bits':>5}  {'mapping':<10}{'latency_ms':>11}"
            f"{'fps':>10}{'DSP':>13}{'BRAM18':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        left = f"{r['device']:<11}{r['bits']:>5}  {r['mapping']:<10}"
        if not r["fits"]:
            lines.append(f"{left}  does not fit: {r['reason']}")
            continue
        dsp = f"{r['dsp_used']}/{r['dsp']}"
        bram = f"{r['bram18_used']}/{r['bram18']}"
        lines.append(f"{left}{r['latency_ms']:>11.4f}"
                     f"{r['throughput_fps']:>10.1f}{dsp:>13}{bram:>13}")
    return "\n".join(lines)


def _run(args: argparse.Namespace, loud: bool) -> None:
    model, kind = load_model(args.model, loud)
    source = {"path": args.model, "format": kind}
    unroll = tuple(args.unroll) if args.unroll else None
    if args.compare:
        rows = compare_rows(model, args.model, args.device, args.bits,
                            args.mapping, unroll)
        if args.json:
            print(json.dumps({"model": source, "rows": rows}, indent=2))
        else:
            print(f"read {args.model} ({kind})")
            print(compare_table(rows))
        return
    report = _analyze(model, args.model, args.device[0], args.bits[0],
                      args.mapping[0], unroll)
    if args.json:
        print(json.dumps({"model": source, **report.to_dict()}, indent=2))
    else:
        print(f"read {args.model} ({kind})")
        print(report)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: arguments without the program name (default: sys.argv[1:]).

    Returns:
        0 on success, 2 on a usage or model error (one line on stderr).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        print(_list_devices())
        return 0
    _check_combination(parser, args)
    loud = args.verbose or console.verbose()
    try:
        _run(args, loud)
    except Exception as error:  # noqa: BLE001 - re-raised unless the user's.
        if not console.is_user_error(error):
            raise
        return console.report(PROG, error, loud)
    return 0


if __name__ == "__main__":
    sys.exit(main())
