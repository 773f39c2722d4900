"""What a finished search leaves in its project directory.

`write(tuner)` produces results.csv (every trial and every rejected child),
pareto.png (accuracy against latency, with the spec), best_model.keras, the
best model's per-layer latency report (best_latency.txt and .json) and
summary.txt (the final table).
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot  # noqa: E402

from fnas_keras import storage  # noqa: E402

COLUMNS = (
    "kind", "id", "status", "score", "val_accuracy_fixed", "latency_ms",
    "dsp_used",
    "bram18_used", "meets_spec", "wall_time_s", "values",
)


def rows(tuner) -> list[dict]:
    """One row per trained child and one per rejected child, in order."""
    spec = tuner.latency_spec_ms
    table = []
    for row in tuner.trials_table():
        latency = row["latency_ms"]
        table.append({
            "kind": "trained",
            "id": row["trial_id"],
            "status": row["status"],
            "score": row["score"],
            "val_accuracy_fixed": row.get("val_accuracy_fixed"),
            "latency_ms": latency,
            "dsp_used": row["dsp_used"],
            "bram18_used": row["bram18_used"],
            "meets_spec": _meets(latency, spec),
            "wall_time_s": row["wall_time_s"],
            "values": row["values"],
        })
    for i, record in enumerate(tuner.rejected()):
        table.append({
            "kind": "rejected",
            "id": f"r{i}",
            "status": "REJECTED",
            "score": None,
            "val_accuracy_fixed": None,
            "latency_ms": record["latency_ms"],
            "dsp_used": record.get("dsp_used"),
            "bram18_used": record.get("bram18_used"),
            "meets_spec": False,
            "wall_time_s": record.get("gate_s"),
            "values": record["values"],
        })
    return table


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, score) points no other point dominates.

    A point dominates another when it is no slower and no less accurate,
    and strictly better in one of the two. The result is sorted by latency.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0],
                                                      -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def write_csv(table: list[dict], path: str) -> None:
    """Writes the rows as CSV, the values as a JSON column."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in table:
            writer.writerow({**row, "values": json.dumps(row["values"])})


def plot_pareto(table: list[dict], spec_ms: float | None, path: str,
                title: str = "FNAS search") -> None:
    """Accuracy against latency: trained children, the front, rejections."""
    trained = [r for r in table if r["kind"] == "trained"
               and r["score"] is not None and r["latency_ms"] is not None]
    rejected = [r["latency_ms"] for r in table
                if r["kind"] == "rejected" and r["latency_ms"] is not None]
    fig, ax = pyplot.subplots(figsize=(7, 4.5))
    if rejected:
        ax.scatter(rejected, [0.0] * len(rejected), marker="|", s=120,
                   color="tab:red", alpha=0.5,
                   label=f"rejected, not trained ({len(rejected)})")
    points = [(r["latency_ms"], r["score"]) for r in trained]
    if points:
        ax.scatter(*zip(*points), color="tab:blue",
                   label=f"trained ({len(points)})")
        front = [points[i] for i in pareto_front(points)]
        ax.step(*zip(*front), where="post", color="tab:green",
                label="Pareto front")
    fixed = [(r["latency_ms"], r["val_accuracy_fixed"]) for r in trained
             if r.get("val_accuracy_fixed") is not None]
    if fixed:
        ax.scatter(*zip(*fixed), facecolors="none", edgecolors="tab:purple",
                   label=f"fixed point, C simulation ({len(fixed)})")
    if spec_ms is not None:
        ax.axvline(spec_ms, color="black", linestyle="--",
                   label=f"spec {spec_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("FPGA latency (ms, log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot.close(fig)


def summary(tuner, table: list[dict], top: int = 5) -> str:
    """The final table: the best architectures and the search's counts."""
    trained = [r for r in table if r["kind"] == "trained"]
    ranked = sorted(
        (r for r in trained if r["score"] is not None and r["meets_spec"]),
        key=lambda r: -r["score"],
    )
    device = tuner.device.name if tuner.device else "none"
    # The fixed-point column: accuracy in the C simulation at `bits`.
    fixed = any(r.get("val_accuracy_fixed") is not None for r in trained)
    lines = [
        f"device {device}, latency spec {tuner.latency_spec_ms} ms",
        f"children trained: {len(trained)}, rejected without training: "
        f"{len(table) - len(trained)}",
        "",
        f"{'rank':>4} {'trial':>6} {'accuracy':>9} "
        + (f"{'fixed':>7} " if fixed else "")
        + f"{'latency_ms':>11} {'DSP':>6} {'BRAM18':>7}  architecture",
    ]
    for rank, r in enumerate(ranked[:top], 1):
        value = _num(r.get("val_accuracy_fixed"))
        lines.append(
            f"{rank:>4} {r['id']:>6} {r['score']:>9.4f} "
            + (f"{value:>7} " if fixed else "")
            + f"{_num(r['latency_ms']):>11} {_num(r['dsp_used']):>6} "
            f"{_num(r['bram18_used']):>7}  {_short(r['values'])}"
        )
    if not ranked:
        lines.append("   (no completed child meets the spec)")
    return "\n".join(lines)


def write(tuner, directory: str | None = None) -> dict[str, str]:
    """Writes every result file of a finished search.

    Args:
        tuner: A finished `FNAS` tuner (on the chief).
        directory: Where to write; the tuner's project directory by default.

    Returns:
        A map from each file's role to its path.
    """
    directory = directory or tuner.project_dir
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, file) for name, file in (
        ("csv", "results.csv"), ("pareto", "pareto.png"),
        ("summary", "summary.txt"), ("model", "best_model.keras"),
        ("report_txt", "best_latency.txt"),
        ("report_json", "best_latency.json"),
    )}
    table = rows(tuner)
    write_csv(table, paths["csv"])
    plot_pareto(table, tuner.latency_spec_ms, paths["pareto"])
    storage.write_text(paths["summary"], summary(tuner, table) + "\n")
    best = tuner.oracle.get_best_trials(1)
    if not best:
        for name in ("model", "report_txt", "report_json"):
            paths.pop(name)
        return paths
    tuner.get_best_models(1)[0].save(paths["model"])
    if tuner.constraint is not None:
        report = tuner.latency_report(best[0].hyperparameters)
        storage.write_text(paths["report_txt"], str(report) + "\n")
        storage.write_json(paths["report_json"], report.to_dict())
    else:
        paths.pop("report_txt")
        paths.pop("report_json")
    return paths


def _meets(latency: float | None, spec: float | None) -> bool | None:
    if latency is None or spec is None:
        return None
    return latency <= spec


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _short(values: dict) -> str:
    """Compact values: "k5 f9 | k7 f18" for conv_0/kernel=5, ..."""
    groups: dict[str, list[str]] = {}
    for key, value in values.items():
        prefix, _, name = key.rpartition("/")
        text = f"{name[0]}{value}" if prefix else f"{key}={value}"
        groups.setdefault(prefix, []).append(text)
    return " | ".join(" ".join(parts) for parts in groups.values())
