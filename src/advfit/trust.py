"""What a run directory may make advfit run: nothing but the classes and functions advfit's own
configs name.

A run directory is shared (a tarball, a W&B artifact, a cluster's scratch space), so its saved
config is input like any file: ``evaluate.py`` builds the run's data module, network, attacks
and metrics from it, and Hydra would call whatever ``_target_`` it names (``torch.load`` of a
pickle, say). Before anything is built, every ``_target_`` of the saved config, and every
attack's ``attack`` class, must be one of:

- a target some config under ``conf/`` names (advfit's data modules, models, metrics,
  attacks, callbacks, loggers);
- a torch optimizer class (``torch.optim.<Name>``, a subclass of ``torch.optim.Optimizer``);
- an attack class advertorch ships (``advertorch.attacks.<Name>``);
- a target the user trusts on the command line: ``evaluate.py trust=[mypackage.my_metric]``
  (a name, or a module prefix ending in ``.``), for their own extensions.

Anything else stops ``evaluate.py`` with one line naming the key and the target.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from advfit.config import CONF_DIR
from advfit.errors import ConfigError


@functools.cache
def project_targets() -> frozenset[str]:
    """Every ``_target_`` and attack class named by a config under ``conf/``."""
    found: set[str] = set()
    for path in CONF_DIR.rglob("*.yaml"):
        for node in _nodes(yaml.safe_load(path.read_text()) or {}):
            for key in ("_target_", "attack"):
                value = node.get(key)
                if isinstance(value, str) and "." in value and "$" not in value:
                    found.add(value)
    return frozenset(found)


def _nodes(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every ``_target_`` and attack class under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" or (
                key == "attack" and str(node.get("_target_", "")).startswith("advfit.attacks.")
            ):
                yield where, value
            else:
                yield from _walk(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _builtin(target: str) -> bool:
    """A torch optimizer or an advertorch attack class, by name (imports nothing else)."""
    module, _, name = target.rpartition(".")
    if module == "torch.optim":
        import torch

        cls = getattr(torch.optim, name, None)
        return inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)
    if module == "advertorch.attacks":
        import advertorch.attacks

        cls = getattr(advertorch.attacks, name, None)
        return inspect.isclass(cls) and issubclass(cls, advertorch.attacks.Attack)
    return False


def trusted(target: str, extra: Iterable[str] = ()) -> bool:
    if target in project_targets() or _builtin(target):
        return True
    return any(target == t or (t.endswith(".") and target.startswith(t)) for t in extra)


def check_targets(config: Any, source: str, extra: Iterable[str] = ()) -> None:
    """Refuse ``config`` (a run's saved config, as a plain dict) when it names a target
    advfit does not trust; ``source`` names the file in the message."""
    extra = [str(t) for t in extra]
    for where, value in _walk(config, ""):
        if not isinstance(value, str) or not trusted(value, extra):
            raise ConfigError(
                f"{source}: {where}={value!r} is not a target advfit builds (its own "
                "configs' targets, torch optimizers, advertorch attacks); nothing was run. "
                f"Trust your own with evaluate.py trust=[{value}]"
            )
