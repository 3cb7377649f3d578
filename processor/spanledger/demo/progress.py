"""The demo's live counts on stderr: calls made, spans exported, rows written.

A newcomer waiting a minute wants to see the pipeline move end to end, so the
line shows each stage's count. On a terminal it redraws in place; in a log
(CI, a test's captured stderr) it prints a plain line every few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Counts", "ProgressLine"]


@dataclass(frozen=True, slots=True)
class Counts:
    calls: int
    calls_planned: int
    spans_exported: int
    rows_written: int


class ProgressLine:
    def __init__(self, stream: TextIO, log_every_s: float = 5.0) -> None:
        self._stream = stream
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._log_every = log_every_s
        self._started = time.monotonic()
        self._last_log = self._started
        self._drawn = False
        #: when the first and the last planned call were seen done (None: not yet)
        self._first_call: float | None = None
        self._last_call: float | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def text(self, c: Counts) -> str:
        elapsed = self.elapsed()
        rate = c.calls / elapsed if elapsed > 0 else 0.0
        width = 24
        done = min(c.calls / c.calls_planned, 1.0) if c.calls_planned else 1.0
        bar = "#" * int(done * width) + "-" * (width - int(done * width))
        return (f"[{bar}] calls {c.calls:,}/{c.calls_planned:,} | spans exported "
                f"{c.spans_exported:,} | rows written {c.rows_written:,} | {rate:,.0f} calls/s "
                f"| {elapsed:4.1f}s")

    def call_seconds(self) -> float | None:
        """Seconds from the first call seen done to the last: no start-up, no drain."""
        if self._first_call is None or self._last_call is None:
            return None
        return self._last_call - self._first_call

    def _note(self, c: Counts) -> None:
        now = time.monotonic()
        if c.calls and self._first_call is None:
            self._first_call = now
        if c.calls >= c.calls_planned and self._last_call is None:
            self._last_call = now

    def update(self, c: Counts) -> None:
        self._note(c)
        if self._tty:
            self._stream.write("\r" + self.text(c) + "\x1b[K")
            self._stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last_log >= self._log_every:
            self._last_log = time.monotonic()
            self._stream.write(self.text(c) + "\n")
            self._stream.flush()

    def finish(self, c: Counts) -> None:
        """The final counts, always on a line of their own."""
        self._note(c)
        self._stream.write(("\r" if self._drawn else "") + self.text(c) + "\x1b[K\n"
                           if self._tty else self.text(c) + "\n")
        self._stream.flush()
