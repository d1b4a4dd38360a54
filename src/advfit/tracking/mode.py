"""W&B's mode and credentials: ``auto`` logs online when logged in and the server answers,
offline otherwise, with no set-up."""

from __future__ import annotations

import logging
import netrc
import os
import socket
from urllib.parse import urlparse

from advfit.errors import ConfigError

WANDB_MODES = ("auto", "online", "offline", "disabled")
#: W&B's own server, unless ``WANDB_BASE_URL`` names another (a self-hosted one).
WANDB_SERVER = "https://api.wandb.ai"

log = logging.getLogger(__name__)


def wandb_server() -> str:
    return os.environ.get("WANDB_BASE_URL") or WANDB_SERVER


def wandb_logged_in() -> bool:
    """True when W&B has credentials: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc
    for the W&B host in use (``WANDB_BASE_URL``, a self-hosted server included)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(wandb_server()).hostname
    try:
        return netrc.netrc().authenticators(host or "api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_reachable(timeout: float = 5.0) -> bool:
    """True when this machine opens a connection to the W&B server in ``timeout`` seconds
    (a cluster's compute nodes often have no route out)."""
    url = urlparse(wandb_server())
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve_wandb_mode(mode: str) -> str:
    """The mode a run logs in: ``auto`` becomes ``WANDB_MODE`` when set, else online when
    logged in and reachable, else offline; a mode not in ``WANDB_MODES`` is a ConfigError."""
    if mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode!r} is invalid: accepted are {', '.join(WANDB_MODES)}"
        )
    if os.environ.get("WANDB_MODE") and mode == "auto":
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        if not wandb_logged_in():
            return "offline"
        if not wandb_reachable():
            log.warning(
                "W&B: logged in, but the server cannot be reached from %s: logging offline; "
                "upload later with make sync",
                socket.gethostname(),
            )
            return "offline"
        return "online"
    return mode
