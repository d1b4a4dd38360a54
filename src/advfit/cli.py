"""What the entry points share: resolvers, argument spellings, and user errors reported
without a traceback."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from advfit.config import CONF_DIR, check_name, register_resolvers
from advfit.errors import ConfigError, refuse, user_error
from advfit.locks import LockHeld, file_lock

log = logging.getLogger("advfit")


class _NoAdverts(logging.Filter):
    """Lightning advertises a cloud logger in every job ("Tip: ... try installing
    litlogger"): twenty times in a sweep's output. Its other messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())

#: Lightning 2.6 still builds torch's deprecated ``LeafSpec`` in its own code: torch warns once
#: per job about code neither advfit nor its user can change.
LEAFSPEC_NOTICE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
warnings.filterwarnings("ignore", message=LEAFSPEC_NOTICE, category=FutureWarning)
#: Lightning, on a machine with SLURM installed, advises starting each job with srun: advfit's
#: jobs are one process each (the SLURM launcher starts them), so the advice does not apply.
warnings.filterwarnings("ignore", message="The `srun` command is available")

# Spellings the command line accepts for a config group that Hydra itself would refuse:
# ``metrics=null`` (no metrics) is the group option ``metrics=none``.
_GROUP_NULLS = {"metrics=null": "metrics=none"}


def _quoted(argument: str) -> str:
    """``run_dir=<path>`` with the path quoted, so Hydra reads run directory names that hold
    ``=``, ``[`` or ``,`` (every run with an overriding key) as one plain string."""
    key, _, value = argument.partition("=")
    if value[:1] in ("'", '"'):
        return argument
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def normalize_argv(argv: list[str]) -> list[str]:
    """The command line with the spellings above rewritten for Hydra."""
    out = [argv[0]]
    for argument in argv[1:]:
        argument = _GROUP_NULLS.get(argument, argument)
        out.append(_quoted(argument) if argument.startswith("run_dir=") else argument)
    return out


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: stop now (what resuming needs is already on disk)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stops_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Interrupted` wherever the job is, so it ends with
    status 128 + signal and no ``DONE``, never as a success. (Lightning only notes SIGTERM
    and exits 0.) In a thread other than the main one, signals keep their handlers."""
    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _interrupt)
    except ValueError:
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reports_user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Exit with status 2 and the error's message when ``task`` fails on a user's mistake,
    and with 128 + the signal's number when SIGTERM or SIGINT stops it."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            with stops_on_signals():
                return task(*args, **kwargs)
        except Interrupted as stop:
            log.error(
                "stopped by %s; no DONE written. Run the same command again to resume "
                "after the last completed epoch.",
                stop,
            )
            sys.exit(128 + stop.signum)
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            log.error("%s", cause)
            remove_untouched(launch_dir())
            sys.exit(2)

    return wrapper


def launch_dir() -> Path | None:
    """The run directory Hydra made for this launch; None outside Hydra, and where it is the
    working directory (evaluate.py writes nothing of Hydra's own)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        folder = Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # not set (outside Hydra, or a config composed by hand): no launch dir
        return None
    return None if folder.resolve() == Path.cwd().resolve() else folder


#: What a launch writes into its run directory before its task starts: Hydra's record of the
#: launch (``.hydra/launch/``, conf/hydra), its log, and the run's lock.
_LAUNCH_FILES = (".hydra/launch/", ".lock")


def remove_untouched(folder: Path | None) -> None:
    """Remove ``folder``, a run directory of a refused launch, when it holds nothing but what
    launches write before their task starts (:data:`_LAUNCH_FILES`, ``*.log``), so that a
    refusal leaves nothing that looks like a run; and its sweep directory when that is then
    empty. A folder whose lock another launch holds is left alone."""
    if folder is None or not folder.is_dir():
        return
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()]
    if any(not (f.startswith(_LAUNCH_FILES) or f.endswith(".log")) for f in files):
        return
    try:
        with file_lock(folder / ".lock"):
            shutil.rmtree(folder)
    except LockHeld:
        return
    except OSError as err:
        log.warning("could not remove %s, which the refused launch created: %s", folder, err)
        return
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when empty


def _composition_refused(err: Exception) -> str:
    """Hydra's reason for refusing the command line, in one line: the unknown choice with the
    group's options, or the key it could not set with the cause (``Key 'x' is not in struct``),
    without Hydra's search path and its advice to add keys with ``+``."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    missing, options = getattr(err, "missing_cfg_file", None), getattr(err, "options", None)
    if missing:
        group, _, choice = str(missing).rpartition("/")
        # An element of a list (attack=[fgsm,foo]) comes without Hydra's options: read them.
        options = options or sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        if options:
            return f"{group}={choice} is not an option; {group} is one of: {', '.join(options)}"
    # Hydra's hint for a key the config lacks ("To append to your config use +key=value")
    # stays; its search path does not.
    keep = [line.rstrip(".") for line in lines if not line.startswith("Config search")]
    hints = [line for line in keep if line.startswith("To append")]
    text = " ".join(line for line in keep if line not in hints)
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        text += f": {str(cause).strip().splitlines()[0]}"
    return "; ".join([text, *hints])


def refuses_bad_compositions(run_and_report: Callable[..., Any]) -> Callable[..., Any]:
    """Hydra's run_and_report with a command line Hydra cannot compose (an unknown config
    choice or key, a key the chosen launcher does not have, a malformed override) reported in
    its own words and exit status 2, as advfit's own refusals are; Hydra exits 1, the status
    of a run that failed."""
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    refused = (ConfigCompositionException, MissingConfigException, OverrideParseException)

    @functools.wraps(run_and_report)
    def wrapper(func: Callable[[], Any]) -> Any:
        def composed() -> Any:
            try:
                return func()
            except refused as err:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                refuse(_composition_refused(err))

        return run_and_report(composed)

    return wrapper


def run_entry(main: Callable[[], Any]) -> None:
    """Run an entry point's Hydra ``main``: the command line's spellings rewritten
    (:func:`normalize_argv`), and Hydra's composition errors exiting 2."""
    import hydra._internal.utils as hydra_utils

    sys.argv = normalize_argv(sys.argv)
    # Names that would put a run outside its sweep directory are refused before Hydra
    # writes its own files (train.log, .hydra/) there.
    for argument in sys.argv[1:]:
        key, _, value = argument.partition("=")
        if key.lstrip("+~") in ("task_name", "run_name") and value:
            try:
                check_name(key.lstrip("+~"), value.strip("'\""))
            except ConfigError as err:
                refuse(err)
    hydra_utils.run_and_report = refuses_bad_compositions(hydra_utils.run_and_report)
    main()


register_resolvers()
