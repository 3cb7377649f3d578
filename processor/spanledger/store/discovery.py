"""How a report finds the collector that holds an embedded store.

chdb lets one process own a store directory. While ``spanledger collector``
runs, a report cannot open the files, so the collector advertises its
read-only SQL HTTP front in ``<store dir>/collector.json``
(``{"sql_http": "http://127.0.0.1:PORT", "pid": PID}``) and reports go there.
The file format lives only here: the collector calls :func:`advertise` and
:func:`withdraw`, :func:`open_store` calls :func:`find_endpoint`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "collector.json"
#: the collector's bearer token; the same variable lets a local report present it
#: to the SQL front (the token itself is never written into collector.json)
TOKEN_ENV = "SPANLEDGER_COLLECTOR_TOKEN"


def advertise(store_path: str | Path, sql_http_url: str, pid: int | None = None) -> Path:
    """Record that this process serves ``store_path`` read-only at ``sql_http_url``."""
    path = Path(store_path) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    payload = {"sql_http": sql_http_url, "pid": os.getpid() if pid is None else pid}
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def withdraw(store_path: str | Path, pid: int | None = None) -> None:
    """Remove the advertisement if it is ours (a newer collector's file stays)."""
    path = Path(store_path) / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if data.get("pid") == (os.getpid() if pid is None else pid):
        path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def find_endpoint(store_path: str | Path) -> str | None:
    """The SQL HTTP URL of the live collector holding ``store_path``, if it advertised one."""
    path = Path(store_path) / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = data.get("sql_http") if isinstance(data, dict) else None
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url or not isinstance(pid, int) or not pid_alive(pid):
        return None
    return url
