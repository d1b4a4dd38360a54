"""One contract for every attack: ``attack(model, x, y) -> x_adv``, pixels in [0, 1]."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from advfit.attacks import advertorch_compat  # noqa: F401  (makes advertorch importable)
from advfit.data.batches import EVAL_BATCH_SIZE, near_equal_parts
from advfit.errors import ConfigError
from advfit.models.frozen import frozen
from advfit.progress import Progress

#: Parameters with a range every attack shares: sizes in pixel units (pixels are in [0, 1]),
#: counts of steps, and non-negative or positive reals.
PIXEL_SIZES = ("eps", "eps_iter")
COUNTS = ("nb_iter", "max_iterations", "binary_search_steps", "n_restarts")
NON_NEGATIVE = ("confidence",)
POSITIVE = ("learning_rate", "initial_const")


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked_parameters(prefix: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters above, checked and typed (an integer eps becomes a float); ``prefix``
    is where they stand in the config (``attack.pgd``, ``metrics.robust_accuracy``, ...)."""
    out = {}
    for key, value in params.items():
        where = f"{prefix}.{key}={value!r} is invalid"
        if key in PIXEL_SIZES:
            if not (_real(value) and 0 < value <= 1):
                raise ConfigError(f"{where}: accepted are numbers in (0, 1] (pixels lie in [0, 1])")
            out[key] = float(value)
        elif key in COUNTS:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{where}: an integer >= 1 is required")
        elif key in NON_NEGATIVE:
            if not (_real(value) and value >= 0):
                raise ConfigError(f"{where}: a number >= 0 is required")
            out[key] = float(value)
        elif key in POSITIVE:
            if not (_real(value) and value > 0):
                raise ConfigError(f"{where}: a number > 0 is required")
            out[key] = float(value)
    return out


class InPasses(nn.Module):
    """``model`` applied on the CPU to at most ``images`` images per pass (near-equal
    passes), the outputs concatenated; elsewhere to the whole batch.

    Each image's outputs, and its gradients through them, are the same bit for bit in any
    batch of at least 16 images (LeNet on the two CPUs measured; smaller batches, 1-11
    images on one and 1-15 on the other, take another matrix-multiply path and differ in
    the last bit): an attack whose loss spans a large batch (Carlini-Wagner's early abort
    watches the sum over its 500 sources) crafts the same examples while its network passes
    stay small enough for the cache. The passes are near-equal so that none is a small
    remainder (:func:`advfit.data.batches.near_equal_parts`). On a GPU a Carlini-Wagner
    iteration costs about the same for 500 images as for 100 (BENCHMARKS.md, "On a GPU"):
    one pass there.
    """

    def __init__(self, model: nn.Module, images: int) -> None:
        super().__init__()
        self.model, self.images = model, int(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) <= self.images or x.device.type != "cpu":
            return self.model(x)
        return torch.cat([self.model(part) for (part,) in near_equal_parts(self.images, x)])


class Attack:
    """An untargeted attack built from an advertorch attack class (or a compatible one).

    Args:
        name: the attack's name in results (``asr_<name>``, ``adversarial/<name>.pt``).
        attack: dotted path of the class, e.g. ``advertorch.attacks.GradientSignAttack``; it
            is constructed as ``cls(model, **params)`` and crafts with ``perturb(x, y)``.
        batch_size: images crafted per call to ``perturb``.
        images_per_pass: at most this many images per pass through the network (null: the
            whole batch); the examples do not depend on it (:class:`InPasses`).
        params: the class's keyword arguments (``eps``, ``nb_iter``, ...). ``num_classes``
            is filled from the model when the class takes it and the config does not say.

    A class with a static ``check(prefix, params)`` has it called here (``prefix``:
    ``attack.<name>``), before training, to refuse settings of its own
    (:mod:`advfit.attacks.autoattack`).
    """

    def __init__(
        self,
        name: str,
        attack: str,
        batch_size: int = EVAL_BATCH_SIZE,
        images_per_pass: int | None = None,
        **params: Any,
    ) -> None:
        self.name = name
        try:
            self.cls = get_class(attack)
        except Exception as err:
            raise ConfigError(
                f"attack.{name}.attack={attack!r} is not an importable class: {err}"
            ) from err
        if int(batch_size) < 1:
            raise ConfigError(f"attack.{name}.batch_size={batch_size} is invalid: it must be >= 1")
        params = {**params, **checked_parameters(f"attack.{name}", params)}
        accepted = inspect.signature(self.cls.__init__).parameters
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(
                f"attack.{name}: {', '.join(unknown)} not accepted by {attack}; "
                f"accepted: {', '.join(k for k in accepted if k not in ('self', 'predict'))}"
            )
        if images_per_pass is not None and int(images_per_pass) < 1:
            raise ConfigError(
                f"attack.{name}.images_per_pass={images_per_pass} is invalid: null (the whole "
                "batch) or an integer >= 1"
            )
        if callable(check := getattr(self.cls, "check", None)):
            check(f"attack.{name}", params)  # the class's own ranges, before training
        self.batch_size = int(batch_size)
        self.images_per_pass = None if images_per_pass is None else int(images_per_pass)
        self.params = dict(params)
        self._takes_classes = "num_classes" in accepted

    def describe(self) -> dict[str, Any]:
        """What identifies a crafted set: the class and its parameters."""
        return {"attack": f"{self.cls.__module__}.{self.cls.__qualname__}", **self.params}

    def build(self, model: nn.Module):
        params = dict(self.params)
        if self._takes_classes and params.get("num_classes") is None:
            params["num_classes"] = model.num_classes
        passes = model
        if self.images_per_pass is not None and self.images_per_pass < self.batch_size:
            passes = InPasses(model, self.images_per_pass)
        return self.cls(passes, **params)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: bool = False
    ) -> torch.Tensor:
        """Adversarial examples for ``x`` (pixels in [0, 1]) with true labels ``y``."""
        out = torch.empty_like(x)
        starts = range(0, len(x), self.batch_size)
        with frozen(model), Progress(f"crafting {self.name}", len(starts), "batch", progress) as p:
            adversary = self.build(model)
            # Each pass through the network counts: a batch of CW is minutes of passes.
            passes = model.register_forward_hook(lambda *_: p.beat())
            try:
                for start in starts:
                    batch = slice(start, start + self.batch_size)
                    out[batch] = adversary.perturb(x[batch], y[batch]).detach()
                    p.step()
            finally:
                passes.remove()
        return out
