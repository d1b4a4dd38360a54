"""The environment advfit declares and locks: every package src/ imports is declared, the lock
satisfies pyproject.toml and the torch pins, holds no release with a known vulnerability
advfit has met, and is what `make install` installed."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"

# Releases below these carry a published vulnerability (fixed in the version given). The lock
# must be at or above each; `make audit` checks it against PyPI's full records where pypi.org's
# JSON API can be reached (docs/usage.md, "The environment").
FIXED_IN = {
    "requests": ("2.32.4", "CVE-2023-32681, CVE-2024-35195, CVE-2024-47081"),
    "urllib3": ("2.6.3", "CVE-2025-50181, CVE-2025-66418, CVE-2025-66471, CVE-2026-21441"),
    "jinja2": ("3.1.6", "CVE-2024-56201, CVE-2025-27516"),
    "tqdm": ("4.66.3", "CVE-2024-34062"),
    "aiohttp": ("3.12.14", "CVE-2025-53643"),
    "pillow": ("10.3.0", "CVE-2024-28219"),
    "idna": ("3.7", "CVE-2024-3651"),
    "certifi": ("2024.7.4", "CVE-2024-39689"),
    "protobuf": ("4.25.8", "CVE-2025-4565"),
}


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_every_package_src_imports_is_declared():
    """An import of a package pyproject.toml does not name works only where something else
    happened to pull it in (scipy, numpy and PyYAML once did)."""
    names = {canonicalize_name(r.name) for r in declared()}
    provided = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "advfit":
                    continue
                dists = {canonicalize_name(d) for d in provided.get(top, [top])}
                # A module some declared package installs (lightning_fabric by pytorch-lightning,
                # autoattack by pyautoattack, yaml by PyYAML, sklearn by scikit-learn).
                if not dists & (names | transitive(names)):
                    undeclared.setdefault(top, path.relative_to(ROOT))
    assert not undeclared, f"imported by src/ but not declared in pyproject.toml: {undeclared}"


def transitive(names: set[str]) -> set[str]:
    """Only the distributions a declared one installs itself under another module name:
    pytorch-lightning ships lightning_fabric and lightning_utilities as dependencies."""
    shipped = {"lightning-fabric", "lightning-utilities"}
    extra = set()
    for name in names & {"pytorch-lightning"}:
        for r in importlib.metadata.requires(name) or []:
            extra.add(canonicalize_name(Requirement(r).name))
    return extra & shipped


def test_the_lock_pins_every_declared_package_within_its_bounds():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )
    for line in (ROOT / "requirements" / "pins.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            assert pin.specifier.contains(pins[canonicalize_name(pin.name)]), line
    assert "torchattacks" not in pins  # it pinned requests 2.25.1
    # The machine's pip takes torch from disk up to 2.14.1 (its cap); the lock must agree.
    assert pins["torch"] <= Version("2.14.1") and pins["torchvision"] <= Version("0.29.1")


@pytest.mark.parametrize("package", sorted(FIXED_IN))
def test_the_lock_holds_no_release_with_a_known_vulnerability(package):
    pins = locked()
    fixed, cves = FIXED_IN[package]
    if package in pins:
        assert pins[package] >= Version(fixed), (
            f"requirements.lock pins {package}=={pins[package]}: {cves} fixed in {fixed}"
        )


def test_make_install_installed_the_lock():
    """`make install` (LOCK=1, the default) leaves .installed-locked in the venv; there every
    locked package is installed at its locked version."""
    if not (Path(sys.prefix) / ".installed-locked").exists():
        pytest.skip(
            "this environment was not installed from requirements.lock (make install LOCK=0)"
        )
    wrong = {}
    for name, version in locked().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            wrong[name] = (str(version), None)
            continue
        if installed.public != version.public:
            wrong[name] = (str(version), str(installed))
    assert not wrong, f"locked vs installed: {wrong}"
