"""Metrics: perturbation distances (and, later, per-snapshot robustness scores)."""

from advfit.metrics.distances import perturbation_norms, summarize_norms

__all__ = ["perturbation_norms", "summarize_norms"]
