"""`fnas-latency`: the per-layer FPGA latency report of a saved Keras model.

Usage:
    fnas-latency model.keras --device zcu102 --bits 16 [--mapping shared]
                 [--unroll TM TN] [--json]
    fnas-latency --list-devices
"""

import argparse
import json
import sys
from collections.abc import Sequence

from fnas_keras import fpga


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fnas-latency",
        description="FPGA latency of a saved Keras model (FNAS performance "
                    "model).")
    p.add_argument("model", nargs="?", help="path to a .keras model file")
    p.add_argument("--device", default="xc7z020",
                   help="part or board name (default: xc7z020)")
    p.add_argument("--bits", type=int, default=16, choices=fpga.BITS,
                   help="word width (default: 16)")
    p.add_argument("--mapping", default="pipelined", choices=fpga.MAPPINGS,
                   help="one engine per layer, or one shared engine")
    p.add_argument("--unroll", type=int, nargs=2, metavar=("TM", "TN"),
                   help="fixed (Tm, Tn) for --mapping shared")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON")
    p.add_argument("--list-devices", action="store_true",
                   help="list the device catalogue and exit")
    return p


def _list_devices() -> str:
    aliases: dict[str, list[str]] = {}
    for alias, part in fpga.aliases().items():
        aliases.setdefault(part, []).append(alias)
    lines = [f"{'part':<11}{'DSP':>7}{'BRAM18':>8}{'MHz':>6}{'GB/s':>7}  "
             f"aliases"]
    for name, d in fpga.devices().items():
        lines.append(f"{name:<11}{d.dsp:>7}{d.bram18:>8}{d.clock_mhz:>6g}"
                     f"{d.dram_gbps:>7g}  {', '.join(aliases.get(name, []))}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: arguments without the program name (default: sys.argv[1:]).

    Returns:
        0 on success, 2 on a usage or model error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        print(_list_devices())
        return 0
    if not args.model:
        parser.error("a model file is required (or --list-devices)")
    try:
        fpga.device(args.device)
        import keras  # only the command line needs Keras

        model = keras.saving.load_model(args.model, compile=False)
        unroll = tuple(args.unroll) if args.unroll else None
        report = fpga.analyze(model, args.device, bits=args.bits,
                              mapping=args.mapping, unroll=unroll)
    except (ValueError, OSError) as e:
        print(f"fnas-latency: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
