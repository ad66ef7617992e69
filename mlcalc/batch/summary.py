"""The batch's table: one row per task, ``summary.csv`` and ``summary.json``, and a bar plot of barriers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from mlcalc.files import PathLike, write_atomic, write_csv_atomic, write_json_atomic

#: Columns of ``summary.csv`` (``summary.json`` holds the same rows): energies in eV and kcal/mol, wall
#: time in s, MD means over the second half of the run (K, kJ/mol, g/mL).
COLUMNS = (
    "task",
    "kind",
    "structure",
    "final",
    "status",
    "cached",
    "converged",
    "barrier_kcal_mol",
    "barrier_eV",
    "barrier_uncertainty_kcal_mol",
    "barrier_uncertainty_eV",
    "non_hierarchicality_max",
    "energy_eV",
    "points",
    "steps",
    "temperature_K",
    "potential_energy_kJ_mol",
    "density_g_mL",
    "wall_s",
    "worker",
    "directory",
    "error",
)

SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
BARRIER_PLOT = "barriers.png"


class BatchResult:
    """The outcome of :func:`mlcalc.batch.run`: one row (a dict keyed by :data:`COLUMNS`) per task, in
    the order given. ``status`` is ``done``, ``not converged`` (ran to the end without converging) or
    ``failed`` (``error`` says why); ``cached`` marks tasks finished by an earlier run."""

    def __init__(self, rows: Sequence[dict], output: Path):
        self.rows = list(rows)
        self.output = Path(output)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __getitem__(self, key: Union[int, str]) -> dict:
        """Row by position, or by task id."""
        if isinstance(key, int):
            return self.rows[key]
        for row in self.rows:
            if row["task"] == key:
                return row
        raise KeyError(f"no task {key!r} in this batch")

    @property
    def failed(self) -> list[dict]:
        """Rows of the tasks that failed."""
        return [row for row in self.rows if row["status"] == "failed"]

    @property
    def ok(self) -> bool:
        """True when no task failed (some may not have converged: see ``status``)."""
        return not self.failed

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (pandas is not an mlcalc dependency)."""
        import pandas

        return pandas.DataFrame(self.rows, columns=list(COLUMNS))

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return f"BatchResult({len(self.rows)} tasks: {shown}; {self.output})"


def row(task_id: str, task, directory: Path, record: dict, cached: bool) -> dict:
    """A table row from a task's record (``result.json`` or a failure)."""
    summary = record.get("summary") or {}
    out: dict[str, Any] = {column: None for column in COLUMNS}
    out.update({k: v for k, v in summary.items() if k in out})
    out.update(
        task=task_id,
        kind=task.kind,
        structure=task.structure,
        final=task.final,
        status=record.get("status", "failed"),
        cached=cached,
        wall_s=record.get("wall_s"),
        worker=record.get("worker"),
        directory=str(directory),
        error=record.get("error"),
    )
    return out


def write_summary(output: Path, rows: Sequence[dict]) -> None:
    """``summary.csv`` and ``summary.json`` (atomic)."""
    write_csv_atomic(output / SUMMARY_CSV, COLUMNS, rows, digits=10)
    write_json_atomic(
        output / SUMMARY_JSON,
        {"units": {"energy": "eV and kcal/mol", "time": "s", "md": "K, kJ/mol, g/mL"}, "tasks": list(rows)},
    )


def plot_barriers(rows: Sequence[dict], path: PathLike, flag_above: Optional[float] = None) -> Optional[Path]:
    """Bar plot of each task's barrier (kcal/mol), with its uncertainty as an error bar where the potential
    gives one; not-converged tasks hatched, non-hierarchicality above ``flag_above`` marked "!".
    ``None`` (nothing written) when no task has a barrier."""
    from matplotlib.figure import Figure

    chosen = [r for r in rows if r.get("barrier_kcal_mol") is not None]
    if not chosen:
        return None
    labels = [r["task"].rsplit("-", 1)[0] for r in chosen]
    values = [r["barrier_kcal_mol"] for r in chosen]
    errors = [r.get("barrier_uncertainty_kcal_mol") for r in chosen]
    figure = Figure(figsize=(max(4.0, 0.8 * len(chosen) + 2.0), 4.0), layout="constrained")
    axes = figure.add_subplot()
    has_errors = any(e is not None for e in errors)
    bars = axes.bar(
        range(len(chosen)),
        values,
        yerr=[e if e is not None else 0.0 for e in errors] if has_errors else None,
        capsize=4,
        color="tab:blue",
    )
    for bar, r in zip(bars, chosen):
        if not r.get("converged"):
            bar.set_hatch("//")
            bar.set_facecolor("lightgray")
        ratio = r.get("non_hierarchicality_max")
        if flag_above is not None and ratio is not None and ratio > flag_above:
            axes.annotate(
                "!",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                color="red",
                fontsize=14,
                fontweight="bold",
            )
    axes.set_xticks(range(len(chosen)), labels, rotation=30, ha="right")
    axes.set_ylabel("barrier (kcal/mol)")
    top = max(v + (e or 0.0) for v, e in zip(values, errors))
    axes.set_ylim(0, top * 1.15 if top > 0 and math.isfinite(top) else 1.0)
    notes = ["hatched: not converged"] if any(not r.get("converged") for r in chosen) else []
    notes.append("error bars: the potential's uncertainty" if has_errors else "no uncertainty from this potential")
    if flag_above is not None:
        notes.append(f"!: non-hierarchicality > {flag_above:g}")
    axes.set_title("; ".join(notes), fontsize=8)
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))
