"""Experiment loggers: W&B offline by default, online once you are logged in."""

from __future__ import annotations

import netrc
import os
import uuid
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_logged_in() -> bool:
    """True when W&B has credentials: WANDB_API_KEY or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    if mode not in WANDB_MODES:
        raise ValueError(
            f"logger.wandb.mode={mode!r} is invalid: accepted are {', '.join(WANDB_MODES)}"
        )
    if os.environ.get("WANDB_MODE") and mode == "auto":
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if wandb_logged_in() else "offline"
    return mode


def run_id(save_dir: str | Path) -> str:
    """The W&B run id of a run directory, kept in it so a resumed run continues its W&B run."""
    path = Path(save_dir) / "wandb" / "advfit-run-id"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex[:16]
    path.write_text(new + "\n")
    return new


def wandb_logger(save_dir: str, mode: str = "auto", **kwargs) -> WandbLogger:
    """Lightning's WandbLogger with the mode resolved and a stable run id."""
    mode = resolve_wandb_mode(mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        save_dir=save_dir,
        offline=mode == "offline",
        mode=mode,
        id=run_id(save_dir),
        resume="allow",
        **kwargs,
    )
