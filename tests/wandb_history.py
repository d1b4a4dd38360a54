"""Read the history an offline W&B run logged, straight from its ``run-*.wandb`` file.

The file is a LevelDB-style log (a 7-byte header, then 32 KiB blocks of records with a
7-byte header each: CRC32, length, type) of protobuf ``Record`` messages; no public Python
reader ships with wandb any more, so the tests carry this small one.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _parse(data: bytes):
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):  # a record still being written
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = pb.Record()
        record.ParseFromString(pending)
        yield record


def records(path: Path, settle: float = 10.0) -> list:
    """The records of one run file. W&B's service may still be writing a run that has just
    finished: wait up to ``settle`` seconds for its closing ``exit`` record (a killed run's
    file never gets one, and is read as it stands)."""
    deadline = time.monotonic() + settle
    while True:
        found = list(_parse(Path(path).read_bytes()))
        closed = found and found[-1].WhichOneof("record_type") == "exit"
        if closed or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def offline_runs(run_dir: Path) -> list[Path]:
    """The ``run-*.wandb`` file of every offline run under ``run_dir/wandb``, oldest first."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))


def history(run_dir: Path, path: Path | None = None) -> list[dict]:
    """Every history row logged by the offline run(s) under ``run_dir/wandb``, or by the
    one run file ``path``."""
    rows = []
    for run_file in [path] if path else offline_runs(run_dir):
        for record in records(run_file):
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


def logged_value(row: dict, key: str) -> dict | None:
    """A media value (image list, table) as logged under ``key``: W&B's history flattens it
    into ``key/<field>`` entries."""
    fields = {k[len(key) + 1 :]: v for k, v in row.items() if k.startswith(key + "/")}
    return fields or None


def artifacts(path: Path) -> list[dict]:
    """The artifacts one run file records: logged (its outputs) or, with ``used``, declared as
    inputs (W&B's "use once committed")."""
    out = []
    for record in records(path):
        if record.WhichOneof("record_type") == "artifact":
            a = record.artifact
            out.append(
                {
                    "name": a.name,
                    "type": a.type,
                    "digest": a.digest,
                    "used": a.use_after_commit,
                    "metadata": json.loads(a.metadata or "{}"),
                    "files": {e.path: e.ref or "file" for e in a.manifest.contents},
                }
            )
    return out
