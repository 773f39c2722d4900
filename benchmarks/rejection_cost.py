"""Cost of one rejected child: sample, build (no fit), analyse, update, log.

Drives the FNAS oracle on the paper's MNIST space with a spec no child can
meet, so every sample is rejected, and prints the median wall time of one
rejection cycle, taken from consecutive rejected.jsonl timestamps, for
children seen for the first time (a Keras build and the latency model) and
for repeats (answered from the oracle's cache).

Run:
    .venv/bin/python benchmarks/rejection_cost.py
    .venv/bin/python benchmarks/rejection_cost.py --children=500
"""

from __future__ import annotations

import tempfile

import entry
import numpy as np
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("children", 300, "Rejections to time.")
flags.DEFINE_string("device", "xc7z020", "FPGA part or board name.")
flags.DEFINE_float("latency_spec_ms", 0.5,
                   "A spec below the space's fastest child (0.88 ms).")

entry.check_flags(children=entry.at_least(2), device=entry.device,
                  latency_spec_ms=entry.positive)


def main(argv):
    del argv
    import keras_tuner

    import fnas_keras
    from fnas_keras import hypermodel

    with tempfile.TemporaryDirectory() as directory:
        tuner = fnas_keras.FNAS(
            hypermodel.FNASHyperModel("mnist"),
            objective="val_accuracy",
            device=FLAGS.device,
            latency_spec_ms=FLAGS.latency_spec_ms,
            max_rejections=FLAGS.children,
            directory=directory,
            seed=0,
        )
        tuner.oracle.verbose = 0
        tuner.oracle.gate = tuner._gate
        try:
            tuner.oracle.populate_space("0")
        except keras_tuner.errors.FatalValueError as error:
            print(f"stopped as expected: {str(error)[:90]}...")
        records = tuner.rejected()
    times = np.array([r["time"] for r in records])
    cycles_ms = np.diff(times) * 1000
    fresh = np.array([r["gate_s"] > 0 for r in records[1:]])
    print(f"rejected children: {len(records)}")
    print(f"rejection_ms_median: {np.median(cycles_ms):.2f}")
    if fresh.any():
        print(f"rejection_ms_median_new_child: "
              f"{np.median(cycles_ms[fresh]):.2f} ({fresh.sum()} children)")
    if (~fresh).any():
        print(f"rejection_ms_median_repeat: "
              f"{np.median(cycles_ms[~fresh]):.2f} ({(~fresh).sum()} repeats)")


if __name__ == "__main__":
    entry.run(main)
