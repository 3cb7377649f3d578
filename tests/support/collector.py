"""Run ``spanledger collector`` as a subprocess on a temporary embedded store.

chdb allows one store per process and one process per store, so tests run
the collector exactly as users do (``python -m spanledger collector``), talk
to it over 127.0.0.1 on ports it picked itself, stop it, and only then open
the store to check rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

START_TIMEOUT_S = 120


@dataclass
class RunningCollector:
    proc: subprocess.Popen[str]
    store_dir: Path
    endpoints: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    @property
    def grpc_target(self) -> str:
        return self.endpoints["otlp_grpc"]

    @property
    def http_url(self) -> str:
        return self.endpoints["otlp_http"]

    def stub(self) -> trace_service_pb2_grpc.TraceServiceStub:
        channel = grpc.insecure_channel(self.grpc_target)
        return trace_service_pb2_grpc.TraceServiceStub(channel)

    def get(self, name: str) -> tuple[int, str]:
        """(status, body) of GET /healthz or /metrics."""
        try:
            with urllib.request.urlopen(self.endpoints[name], timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float:
        _, text = self.get("metrics")
        for line in text.splitlines():
            if line.startswith(f"spanledger_collector_{name} "):
                return float(line.split()[1])
        raise KeyError(name)

    def wait_metric(self, name: str, at_least: float, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        value = self.metric(name)
        while value < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name)
        return value

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output.append(out or "")
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def start_collector(store_dir: Path, *extra: str, env: dict[str, str] | None = None,
                    config: Path | None = None, workers: int = 1,
                    new_session: bool = False) -> RunningCollector:
    """The collector, ready; ``new_session``: in its own process group (for a Ctrl-C)."""
    cmd: list[str] = [sys.executable, "-m", "spanledger", "collector",
                      "--url", f"chdb://{store_dir}", "--grpc-port", "0", "--http-port", "0",
                      "--sql-http-port", "0", "--workers", str(workers)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(extra)
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env, start_new_session=new_session)
    running = RunningCollector(proc, store_dir)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in proc.stdout:
        running.output.append(line)
        if line.startswith("spanledger collector: "):
            parts = line.split()
            if parts[2] == "ready":
                break
            if len(parts) >= 4:
                running.endpoints[parts[2]] = parts[3]
        if time.monotonic() > deadline:
            break
    if "otlp_grpc" not in running.endpoints:
        proc.kill()
        raise RuntimeError("collector did not start:\n" + "".join(running.output))
    return running


def read_store(store_dir: Path, sql: str, params: dict[str, Any] | None = None
               ) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the stopped collector's store (opened and closed here)."""
    from spanledger.store import open_store

    store = open_store(f"chdb://{store_dir}")
    try:
        return store.query(sql, params)
    finally:
        store.close()


def read_store_many(store_dir: Path, queries: Sequence[str]) -> list[list[tuple[Any, ...]]]:
    from spanledger.store import open_store

    store = open_store(f"chdb://{store_dir}")
    try:
        return [store.query(q) for q in queries]
    finally:
        store.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 90) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
