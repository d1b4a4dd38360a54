"""The snapshot pass: classify the clean and adversarial sets with each epoch's weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from advfit.replay.network import predict
from advfit.rundir import GIVEN_CORRECT

if TYPE_CHECKING:
    from advfit.replay.crafting import AdversarialSet


#: The fewest sources a snapshot must classify correctly for its conditional ASR
#: (``asr_<attack>_given_correct``) to be read: below it the rate rests on too few sources
#: (a binomial rate from 20 has a 95% interval about +-0.2 wide at 0.5) and is NaN.
MIN_CORRECT = 20


def classify(
    net: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    sets: dict[str, AdversarialSet],
    batch_size: int,
) -> dict[str, float]:
    """One snapshot's ``test_acc`` and, per attack, the paper's ``asr_<attack>`` (1 - accuracy
    on the crafted set), ``asr_<attack>_given_correct`` (among the sources whose clean image
    this snapshot classifies correctly, the fraction whose adversarial it misclassifies) and
    ``n_correct_<attack>`` (how many sources those are).

    The clean sources' predictions are read from the test set's, made once: no second pass.
    The paper's ASR counts a source the snapshot already gets wrong as a success; the
    conditional one leaves such plain errors out, so that it measures fragility alone. It is
    NaN below :data:`MIN_CORRECT` correct sources. A snapshot that predicts one class for
    every test image has no meaningful ASR (whether an adversarial "succeeds" depends only on
    its label): both ASRs are NaN, which the verdict's rho and ASR change leave out."""
    predicted = predict(net, x_test, batch_size)
    right = predicted == y_test
    row = {"test_acc": right.float().mean().item()}
    one_class = len(predicted) > 1 and bool((predicted == predicted[0]).all())
    for name, adv in sets.items():
        fooled = predict(net, adv.x_adv, batch_size) != adv.labels.to(predicted.device)
        correct = right[adv.indices.to(predicted.device)]
        n_correct = int(correct.sum())
        # As ever: 1 - accuracy (computed so, its digits stay those of earlier runs).
        row[f"asr_{name}"] = math.nan if one_class else 1.0 - (~fooled).float().mean().item()
        row[f"asr_{name}{GIVEN_CORRECT}"] = (
            math.nan
            if one_class or n_correct < MIN_CORRECT
            else fooled[correct].float().mean().item()
        )
        row[f"n_correct_{name}"] = n_correct
    return row
