"""The paper's distance tables (Pedraza, Deniz & Bueno 2021, Tables 2-5), to set beside a
sweep's own: mean ± std of L0, L2 and L-inf over each attack's adversarial set, on grayscale
inputs (the paper's CIFAR-10 L0 reaches 1024 = 32 x 32 pixels, STL-10's 9216 = 96 x 96)."""

from __future__ import annotations

from typing import Any

#: (data set, regime) -> attack -> (L0, L2, Linf), each (mean, std), as printed in the paper.
DISTANCES: dict[tuple[str, str], dict[str, tuple[tuple[float, float], ...]]] = {
    # Table 2: without overfitting, CIFAR-10.
    ("cifar10", "normal"): {
        "cw": ((1024.00, 0.00), (0.43, 0.48), (0.07, 0.06)),
        "fgsm": ((1017.92, 25.30), (8.93, 0.48), (0.30, 0.00)),
        "pgd": ((1018.99, 20.87), (8.10, 0.57), (0.30, 0.00)),
    },
    # Table 3: without overfitting, STL-10.
    ("stl10", "normal"): {
        "cw": ((9216.00, 0.00), (0.97, 1.42), (0.06, 0.06)),
        "fgsm": ((8969.59, 387.89), (26.41, 1.39), (0.30, 0.00)),
        "pgd": ((9049.55, 262.61), (23.37, 1.17), (0.30, 0.00)),
    },
    # Table 4: with overfitting, CIFAR-10.
    ("cifar10", "overfit"): {
        "cw": ((1024.00, 0.00), (0.49, 1.15), (0.06, 0.08)),
        "fgsm": ((1017.19, 27.86), (8.64, 0.52), (0.30, 0.00)),
        "pgd": ((1019.08, 20.05), (7.62, 0.45), (0.30, 0.00)),
    },
    # Table 5: with overfitting, STL-10.
    ("stl10", "overfit"): {
        "cw": ((9216.00, 0.00), (0.82, 2.37), (0.06, 0.07)),
        "fgsm": ((8951.35, 408.80), (26.04, 1.47), (0.30, 0.00)),
        "pgd": ((9021.16, 289.93), (23.32, 1.29), (0.30, 0.00)),
    },
}


def paper_distances(dataset: str, regime: str, attack: str, config: dict[str, Any]) -> dict | None:
    """The paper's L0, L2 and L-inf (mean, std) for this group and attack, or None where the
    paper has none or the runs are not comparable: another data set or attack, or RGB inputs
    (``data.grayscale`` not true; the paper's numbers are those of grayscale images)."""
    if not (config.get("data") or {}).get("grayscale"):
        return None
    table = DISTANCES.get((str(dataset), str(regime)), {})
    if attack not in table:
        return None
    l0, l2, linf = table[attack]
    return {"l0": l0, "l2": l2, "linf": linf}
