"""Summaries of one benchmark x metric: process level (the unit of analysis) and sample level.

Pure: arrays in, frozen dataclasses out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perfd.model import Metric, ProcessResult, Summary


def _cv(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    mean = float(values.mean())
    return float(values.std(ddof=1) / abs(mean)) if mean else 0.0


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def summarize(benchmark: str, metric: Metric, per_process: Sequence[Sequence[float]]) -> Summary:
    """Summary of per-process sample lists; each process is first reduced to its median.

    Raises ValueError when there is no process or a process has no samples.
    """
    if not per_process or any(len(p) == 0 for p in per_process):
        raise ValueError(f"summarize({benchmark}, {metric.name}): every process needs samples")
    process_medians = np.array([np.median(np.asarray(p, dtype=float)) for p in per_process])
    all_samples = np.concatenate([np.asarray(p, dtype=float) for p in per_process])
    return Summary(
        benchmark=benchmark,
        metric=metric.name,
        unit=metric.unit,
        direction=metric.direction,
        n_processes=int(process_medians.size),
        n_samples=int(all_samples.size),
        median=float(np.median(process_medians)),
        mean=float(process_medians.mean()),
        stddev=float(process_medians.std(ddof=1)) if process_medians.size > 1 else 0.0,
        cv=_cv(process_medians),
        min=float(process_medians.min()),
        max=float(process_medians.max()),
        p95=float(np.percentile(all_samples, 95)),
        p99=float(np.percentile(all_samples, 99)),
        sample_cv=_cv(all_samples),
        mad=_mad(process_medians),
        sample_median=float(np.median(all_samples)),
        sample_mean=float(all_samples.mean()),
        sample_mad=_mad(all_samples),
    )


def summarize_processes(
    benchmark: str, metrics: Sequence[Metric], processes: Sequence[ProcessResult]
) -> list[Summary]:
    """One Summary per metric that every process of this benchmark measured."""
    out = []
    for metric in metrics:
        values = [p.samples.metric_values(metric.name) for p in processes]
        present = [v for v in values if v is not None]
        if present and len(present) == len(values):
            out.append(summarize(benchmark, metric, present))
    return out
