"""One writer per run dir: ``train``, ``cv`` and ``search`` hold ``RUN/.emovox.lock`` while they write.

The lock file is created with ``O_CREAT | O_EXCL`` (atomic on local and NFS v3+ file systems)
and says who holds it (pid, host, start time). A second command on the same folder refuses in
one line naming that holder; a lock whose holder is gone (same host, no such process) is stale
and taken over. Checkpoint checks and the disk-full translation live beside it because they
guard the same thing: a run dir that is never left half-written or silently shared.
"""
from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import time
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..errors import BadRunDir, EmovoxError

LOCK_NAME = ".emovox.lock"
T = TypeVar("T")
log = logging.getLogger("emovox")


class RunLocked(BadRunDir):
    """Another live process holds the run dir's lock."""

    kind = "run dir locked"


class OutOfSpace(EmovoxError):
    """A write failed because the disk (or a file-size limit) ran out."""

    kind = "out of space"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _holder(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(h: dict) -> str:
    return f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {h.get('started', '?')}"


def _stale(h: dict, path: Path) -> bool:
    """Held by a dead process on this host, or unreadable and older than a minute (a crash
    between create and write)."""
    if not h:
        try:
            return time.time() - path.stat().st_mtime > 60
        except OSError:
            return True
    return h.get("host") == socket.gethostname() and isinstance(h.get("pid"), int) and not _alive(h["pid"])


def holds_run_lock(command: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a library function taking ``out=``: it runs holding ``out``'s lock, and a full
    disk or a file-size limit while it writes becomes one :class:`OutOfSpace` line."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            out = Path(kwargs["out"])
            with run_lock(out, command=command):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
                    err = space_error(exc, out)
                    if err is None:
                        raise
                    raise err from None

        return wrapper

    return decorate


@contextmanager
def run_lock(folder: str | Path, *, command: str = "train") -> Iterator[Path]:
    """Hold ``folder``'s lock for the duration of the block. In a distributed run (``RANK`` set)
    only rank 0 takes it: the other ranks write into the same run dir by design.

    Raises:
        RunLocked: a live process holds it (the line names pid, host and start time).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if os.environ.get("RANK", "0") != "0":
        yield path
        return
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            h = _holder(path)
            if not _stale(h, path):
                raise RunLocked(f"{folder}: in use by another `emovox {h.get('command', 'train')}` "
                                f"({_describe(h)}); wait for it, or choose another --out") from None
            log.info("%s: taking over a stale lock (%s is gone)", folder, _describe(h))
            moved = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
            try:  # only one of several racing takers wins this rename
                os.replace(path, moved)
            except FileNotFoundError:
                continue
            if _holder(moved) != h:  # a racing taker's fresh lock was moved: put it back
                try:
                    os.link(moved, path)
                except FileExistsError:
                    pass
            moved.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise RunLocked(f"{folder}: could not take the lock {path} (it keeps changing hands)")
    try:
        yield path
    finally:
        if _holder(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


def checkpoint_problem(folder: Path) -> str:
    """Why a ``checkpoint-N`` folder cannot be resumed from ("" when it can): a file cut short by
    a kill or a full disk, detected from the formats' own structure (safetensors' header, the
    zip directory and CRCs of torch's ``.pt``/``.pth`` files, JSON that parses)."""
    if not (folder / "trainer_state.json").is_file():
        return "no trainer_state.json (cut off mid-save)"
    for f in sorted(folder.iterdir()):
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".safetensors":
                _check_safetensors(f)
            elif f.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                if bad:
                    return f"{f.name}: member {bad} is corrupt"
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            return f"{f.name}: truncated or corrupt ({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})"
    return ""


def _check_safetensors(path: Path) -> None:
    """Raises ValueError when the file is shorter than its header says."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("no header")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ValueError("header cut short")
        meta = json.loads(f.read(n))
    end = max((v["data_offsets"][1] for k, v in meta.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ValueError(f"data cut short ({size} of {8 + n + end} bytes)")


def resumable_checkpoints(root: Path) -> list[Path]:
    """``checkpoint-N`` folders that can be resumed from, oldest first; each one skipped is said."""
    found = sorted((p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    good = []
    for p in found:
        problem = checkpoint_problem(p)
        if problem:
            log.warning("skipping %s: %s", p, problem)
        else:
            good.append(p)
    return good


SPACE_ERRNOS = {errno.ENOSPC: "disk full", errno.EFBIG: "file too large (a file-size limit)",
                errno.EDQUOT: "disk quota exceeded"}


def space_error(exc: BaseException, where: Path) -> OutOfSpace | None:
    """An :class:`OutOfSpace` naming what ran out and where, when ``exc`` is a full disk or a
    file-size limit (an ``OSError``, or torch's and safetensors' wrappers of one); else None."""
    text = str(exc)
    kind = SPACE_ERRNOS.get(getattr(exc, "errno", None) or 0)
    if kind is None:
        lowered = text.lower()
        if "no space left" in lowered:
            kind = SPACE_ERRNOS[errno.ENOSPC]
        elif "file too large" in lowered:
            kind = SPACE_ERRNOS[errno.EFBIG]
        elif "quota" in lowered:
            kind = SPACE_ERRNOS[errno.EDQUOT]
        elif isinstance(exc, RuntimeError) and "write" in lowered and ("fail" in lowered or "error" in lowered):
            kind = "a write failed (disk full or a file-size limit)"
    if kind is None:
        return None
    path = getattr(exc, "filename", None) or _newest_file(where) or where
    return OutOfSpace(f"{kind} while writing {path}; free space and rerun with --resume "
                      "(the last complete checkpoint is kept)")


def _newest_file(root: Path) -> Path | None:
    try:
        files = [p for p in root.rglob("*") if p.is_file()]
        return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None
    except OSError:
        return None
