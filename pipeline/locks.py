"""Exclusive locks on runs and export sets (`fcntl.flock` on a lock file).

The kernel releases a flock when its process dies, however it dies, so a
killed run never leaves its lock held.
"""

import contextlib
import fcntl
import os
from pathlib import Path


class LockedError(OSError):
    """Another process holds the lock."""


@contextlib.contextmanager
def hold(path, *, what, hint, wait=False):
    """Holds an exclusive lock on the file `path` for the `with` block.

    Args:
        path: the lock file (created if missing; never deleted, so that two
            processes always lock the same inode).
        what: what the lock protects, for the error message.
        hint: what to do instead, for the error message.
        wait: block until the lock is free instead of raising.

    Raises:
        LockedError: another process holds it (and `wait` is False).
    """
    path = Path(path)
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            raise LockedError(
                f"Expected no other process to use {what}. Received: {holder} holds "
                f"the lock {path}; {hint}"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"process {os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def is_running(pid):
    """Whether a process with id `pid` exists (a temporary file's owner, say)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
