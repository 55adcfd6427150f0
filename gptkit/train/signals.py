"""SIGINT/SIGTERM during training: a flag the loop checks between steps, so a stop saves first."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class Abandoned(BaseException):
    """A signal arrived while the current step could still be thrown away."""


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps (or, inside `abandonable`, into
    `Abandoned`); the loop saves, then `pass_on` delivers the signal to whatever handled it before
    (KeyboardInterrupt for SIGINT, by default)."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}
        self._abandonable = False

    @contextlib.contextmanager
    def abandonable(self, allowed: bool) -> Iterator[None]:
        self._abandonable = allowed
        try:
            yield
        finally:
            self._abandonable = False

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        if self._abandonable:
            self._abandonable = False
            raise Abandoned

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def pass_on(self) -> None:
        if self.received is not None:
            signal.raise_signal(signal.Signals[self.received])
