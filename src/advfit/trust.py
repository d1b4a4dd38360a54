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

Interpolations are code too: ``${oc.create:{_target_: ...}}`` builds a node that Hydra would
instantiate, ``${oc.env:...}`` reads the environment. A saved config is the run's *resolved*
config, so it holds no resolver calls at all; before anything else, every resolver call in it
other than advfit's own (``${advfit.*:...}``) is refused, and the targets are checked on the
config as it resolves.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from advfit.config import CONF_DIR
from advfit.errors import ConfigError, RunError, first_line
from advfit.rundir import RunDir

#: The resolvers a saved config may call: advfit's own (advfit.config.register_resolvers).
OWN_RESOLVERS = "advfit."
#: A resolver call, ``${name:...}``, wherever it stands in a string (nested ones included).
_RESOLVER_CALL = re.compile(r"\$\{\s*([^\s:{}$]+)\s*:")


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


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, text) of every key and string value under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key)
            yield from _strings(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def check_resolvers(config: Any, source: str) -> None:
    """Refuse ``config`` (a saved config, unresolved, as plain containers) when it calls a
    resolver other than advfit's own: ``oc.create`` builds targets, ``oc.env`` reads the
    environment, ``oc.decode`` parses text into nodes. Plain references (``${data.name}``)
    pass; the targets they resolve to are checked after resolving."""
    for where, text in _strings(config, ""):
        for name in _RESOLVER_CALL.findall(text):
            if not name.startswith(OWN_RESOLVERS):
                raise ConfigError(
                    f"{source}: {where} calls the resolver {name} (${{{name}:...}}), which a "
                    "saved config never holds (it is the run's resolved config); nothing was "
                    "run. Only advfit's own resolvers (advfit.*) and plain ${key} references "
                    "are read from a run directory"
                )


def open_run_to_evaluate(cfg: DictConfig) -> tuple[RunDir, DictConfig]:
    """The run directory ``evaluate.py`` was given (``cfg.run_dir``) and its saved config,
    checked before anything is built: it is a run directory; a finished run's config and
    results are the ones ``DONE`` vouched for; the config calls no resolver but advfit's own;
    and every target it names, once resolved, is advfit's own or in ``cfg.trust``. Needs no
    Lightning, so that evaluate.py refuses a bad directory at once."""
    if OmegaConf.is_missing(cfg, "run_dir") or not str(cfg.run_dir).strip():
        raise RunError(
            "evaluate.py needs run_dir=<a run directory>, e.g. python evaluate.py "
            "run_dir=multirun/demo/fashion_mnist-normal-fold0-seed0"
        )
    run = RunDir(cfg.run_dir)
    if not run.config.is_file():
        raise RunError(f"run_dir={cfg.run_dir} is not a run directory: {run.config} is missing")
    if run.is_done():
        run.check_digests(results_only=True)
    try:
        saved = run.read_config()
    except Exception as err:
        raise RunError(f"{run.config} is not a readable config: {err}") from err
    check_resolvers(saved, str(run.config))
    try:
        run_cfg = OmegaConf.create(saved)
        resolved = OmegaConf.to_container(run_cfg, resolve=True)
    except Exception as err:
        raise RunError(f"{run.config} does not resolve: {first_line(err)}") from err
    # Nothing the run directory names is built before it is known to be advfit's own.
    check_targets(resolved, str(run.config), cfg.get("trust") or ())
    return run, run_cfg
