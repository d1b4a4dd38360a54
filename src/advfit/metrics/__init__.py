"""Metrics: perturbation distances, and the robustness scores computed per snapshot."""

from advfit.metrics.clever import Clever, CleverMetric
from advfit.metrics.distances import perturbation_norms, summarize_norms
from advfit.metrics.robustness import (
    EmpiricalRobustness,
    LossSensitivity,
    RobustAccuracy,
    empirical_robustness,
    loss_sensitivity,
)
from advfit.metrics.schedule import Score, SnapshotMetrics, SnapshotScores, no_metrics

__all__ = [
    "Clever",
    "CleverMetric",
    "EmpiricalRobustness",
    "LossSensitivity",
    "RobustAccuracy",
    "Score",
    "SnapshotMetrics",
    "SnapshotScores",
    "empirical_robustness",
    "loss_sensitivity",
    "no_metrics",
    "perturbation_norms",
    "summarize_norms",
]
