"""Conversion workers end with the collector: no orphans after ``kill -9``, no Ctrl-C noise.

A ``ProcessPoolExecutor`` worker blocks reading its call queue; when the
collector dies without shutting the pool down (``kill -9``, OOM killer) the
worker never learns it and lives on, with its pricing catalog and buffers
(and multiprocessing's resource tracker lives on as long as any worker holds
its pipe). The pool is built with :func:`pool_options` (:func:`initializer`
and :func:`initargs`), so each worker:

- on Linux, asks the kernel for :data:`PARENT_DEATH_SIGNAL` when its parent
  goes (``prctl(PR_SET_PDEATHSIG)``). The kernel sends it when the *thread*
  that spawned the worker exits, not only the process, so the handler checks
  that the parent process is really gone before it exits;
- everywhere, also watches its parent's pid from a daemon thread
  (:data:`WATCH_INTERVAL_S`): the fallback where prctl does not exist, and a
  second line if the signal is lost;
- ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and
  the collector itself stops the pool in order; a worker that died of its
  own KeyboardInterrupt would print a traceback and lose its job.

The resource tracker (a separate process multiprocessing starts for the
pool's semaphores) exits by itself once every holder of its pipe is gone, so
ending the workers ends it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

#: seconds between two looks at the parent's pid in the watch thread
WATCH_INTERVAL_S = 0.5
#: signal the kernel sends a worker when its parent thread exits (Linux)
PARENT_DEATH_SIGNAL = signal.SIGUSR1
#: prctl option number, from <linux/prctl.h>
_PR_SET_PDEATHSIG = 1


def pool_options() -> dict[str, Any]:
    """``ProcessPoolExecutor`` keyword arguments that tie the workers to this process."""
    return {"initializer": initializer, "initargs": initargs()}


def initargs() -> tuple[int]:
    """Arguments for :func:`initializer`, computed in the collector when the pool is built."""
    return (os.getpid(),)


def initializer(parent_pid: int) -> None:
    """Run first in every worker: tie its life to ``parent_pid`` (see module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        _arm_parent_death_signal(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the watch began
        _exit_orphaned()


def _arm_parent_death_signal(parent_pid: int) -> None:
    def on_parent_death(_signum: int, _frame: FrameType | None) -> None:
        if os.getppid() != parent_pid:
            _exit_orphaned()
        # else: only the spawning thread ended; the collector is alive

    signal.signal(PARENT_DEATH_SIGNAL, on_parent_death)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)


def _watch_parent(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCH_INTERVAL_S):
        if os.getppid() != parent_pid:
            _exit_orphaned()


def _exit_orphaned() -> None:
    """Leave at once: nobody will read a result, and the spool is replayed at restart."""
    os._exit(1)
