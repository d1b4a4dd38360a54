"""Import advertorch 0.2.3 on current PyTorch.

advertorch 0.2.3 (its last release) imports ``zero_gradients`` from
``torch.autograd.gradcheck``, which PyTorch removed in 1.9; the import of
``advertorch.attacks`` then fails. This module puts back the function advertorch expects
(PyTorch's own former definition) before advertorch is imported. Import advertorch's
attacks through here, never directly.
"""

from __future__ import annotations

import importlib

import torch

# The module, not the function of the same name that torch.autograd re-exports.
_gradcheck = importlib.import_module("torch.autograd.gradcheck")


def zero_gradients(x) -> None:
    """Zero the ``.grad`` of a tensor, or of every tensor in an iterable (PyTorch < 1.9)."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    elif hasattr(x, "__iter__"):
        for elem in x:
            zero_gradients(elem)


if not hasattr(_gradcheck, "zero_gradients"):
    _gradcheck.zero_gradients = zero_gradients

import advertorch.attacks as attacks  # noqa: E402  (must follow the patch above)

__all__ = ["attacks", "zero_gradients"]
