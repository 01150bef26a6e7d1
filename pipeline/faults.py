"""Fault-injection points, so that tests can kill a run at a chosen moment.

The code calls `point("name")` at the moments a kill would hurt most (a
backup half-written, an export set half-swapped). When the environment
variable SPARSE_AE_ZOO_FAULT is "name:SIGNAL" (e.g. "export-swapping:SIGKILL"),
the process sends itself that signal there; otherwise `point` does nothing.
"""

import os
import signal

FAULT_ENV_VAR = "SPARSE_AE_ZOO_FAULT"


def point(name):
    """Sends this process the signal that $SPARSE_AE_ZOO_FAULT names for `name`."""
    spec = os.environ.get(FAULT_ENV_VAR, "")
    where, _, signal_name = spec.partition(":")
    if where == name:
        os.kill(os.getpid(), getattr(signal, signal_name or "SIGKILL"))
