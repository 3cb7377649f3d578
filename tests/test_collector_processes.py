"""No process outlives the collector, and Ctrl-C stops it without worker tracebacks.

The collector's conversion workers (and multiprocessing's resource tracker)
used to live on after a ``kill -9`` of the collector, holding their memory
(1.2 GB after three kills); a Ctrl-C in a terminal printed a
KeyboardInterrupt traceback from every worker.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from spanledger.collector import worker_lifecycle
from support.collector import start_collector

PATIENCE_S = 15
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], fields[19]


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every process below ``root``."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
            started[int(entry.name)] = stat[2]
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = started[child]
            todo.append(child)
    return out


def _alive(processes: dict[int, str]) -> list[int]:
    """The ones still running (a zombie, or a reused pid, does not count)."""
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] not in ("Z", "X"):
            alive.append(pid)
    return alive


def test_kill_9_leaves_no_process_behind(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store", workers=2)
    tree = _descendants(running.proc.pid)
    try:
        assert len(tree) >= 2  # two conversion workers (and the resource tracker)
        running.kill9()
        deadline = time.monotonic() + PATIENCE_S
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(tree) == []
    finally:
        for pid in _alive(tree):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_cleanly_without_worker_tracebacks(tmp_path: Path) -> None:
    running = start_collector(tmp_path / "store", workers=2, new_session=True)
    tree = _descendants(running.proc.pid)
    os.killpg(running.proc.pid, signal.SIGINT)  # what a terminal does: the whole group
    out, _ = running.proc.communicate(timeout=120)
    output = "".join(running.output) + out
    assert running.proc.returncode == 0, output
    assert "spanledger collector: stopped" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    deadline = time.monotonic() + PATIENCE_S
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(tree) == []


def _pid() -> int:
    return os.getpid()


def test_worker_survives_the_exit_of_the_thread_that_spawned_it() -> None:
    """PR_SET_PDEATHSIG fires when the spawning *thread* ends: that is not the parent's death."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                               **worker_lifecycle.pool_options())
    try:
        first: list[int] = []
        spawner = threading.Thread(target=lambda: first.append(pool.submit(_pid).result(60)))
        spawner.start()
        spawner.join()
        time.sleep(1)  # the parent-death signal, if any, has been delivered by now
        assert pool.submit(_pid).result(60) == first[0]
    finally:
        pool.shutdown()
