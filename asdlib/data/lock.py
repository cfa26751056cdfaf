"""One fetch at a time into a data root: an exclusive lock on ``<root>/.asdlib-fetch.lock``.

Both downloaders (whole archives and the subset) clean up temporary files of killed runs when
they start (``.part`` files, extraction folders, ``.<clip>.wav.*.tmp``); two of them filling one
root at once (two terminals, a notebook and the command line) would delete each other's files.
The lock is ``flock`` on the file, so the system releases it when its process ends, however it
ends (a kill leaves no stale lock). The file records who holds it (process id, host, command,
since when), which the refusal names. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from ..core.errors import DownloadError

LOCK_FILE = ".asdlib-fetch.lock"


def lock_path(root: str | os.PathLike) -> Path:
    return Path(root) / LOCK_FILE


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {info['pid']} on {info['host']} ({info['what']}), running since {info['since_utc']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def root_lock(root: str | os.PathLike, what: str, wait_s: float = 0.0, poll_s: float = 0.5,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[Path]:
    """Hold the root's lock for the ``with`` block; wait up to ``wait_s`` seconds for another holder, then
    :class:`DownloadError` naming the lock file and the process that holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield lock_path(root)
        return
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = lock_path(root)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited >= wait_s:
                    raise DownloadError(
                        f"{root} is being filled by {_holder(path)}, which holds the lock {path}. Two fetches into "
                        "one root would delete each other's temporary files: wait for that one to finish (or stop "
                        "it) and run again, or choose another --root") from None
                sleep(poll_s)
                waited += poll_s
        record = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "command": " ".join(sys.argv[:3]), "since_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # the file stays: removing it could race with a process waiting on it
    finally:
        os.close(fd)  # releases the lock
