"""SIGTERM is obeyed even when the main thread is stuck in a collective.

Lightning answers SIGTERM with a Python signal handler, which runs only when the main
thread comes back to the interpreter. A rank blocked inside a collective (gloo / NCCL,
C++ code) never comes back, so the process would ignore SIGTERM until the collective's
timeout (30 minutes by default). This callback watches for SIGTERM from a second thread
(Python's signal wake-up file descriptor is written by the C-level handler at once, from
any thread) and, when the process has not ended ``grace_s`` seconds later, kills the
processes this rank launched (Lightning's DDP ranks) and exits with status 143
(128 + SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

import lightning as L

log = logging.getLogger(__name__)


class TerminationWatchdog(L.Callback):
    """Ends the process ``grace_s`` seconds after a SIGTERM that it did not obey.

    Active between ``setup`` and ``teardown`` of each trainer stage (fit, validate, test),
    in the main thread only; Lightning's own SIGTERM handling (stop at the next batch,
    SLURM requeue) keeps working inside the grace period.

    Args:
        grace_s: seconds the process gets to end by itself after SIGTERM.

    Raises:
        ValueError: ``grace_s`` is negative.
    """

    def __init__(self, grace_s: float = 60.0) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        self.grace_s = float(grace_s)
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._previous_fd = -1
        self._disarmed = threading.Event()
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._sockets is not None or threading.current_thread() is not threading.main_thread():
            return
        reader, writer = socket.socketpair()
        writer.setblocking(False)  # required by set_wakeup_fd
        try:
            self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread of the main interpreter
            reader.close()
            writer.close()
            return
        self._sockets = (reader, writer)
        self._trainer = trainer
        self._disarmed = threading.Event()
        threading.Thread(
            target=self._watch, args=(reader, self._disarmed), name="sigterm-watchdog", daemon=True
        ).start()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._sockets is None:
            return
        self._disarmed.set()
        signal.set_wakeup_fd(self._previous_fd)
        for sock in self._sockets:
            sock.close()  # the watching thread's recv() returns
        self._sockets, self._trainer = None, None

    def _watch(self, reader: socket.socket, disarmed: threading.Event) -> None:
        while not disarmed.is_set():
            try:
                data = reader.recv(64)  # one byte per signal number received
            except OSError:
                return
            if not data:
                return
            if signal.SIGTERM not in data:
                continue
            if disarmed.wait(self.grace_s):  # the process ended the stage by itself
                return
            message = (
                f"SIGTERM not obeyed within {self.grace_s:g} s (stuck in communication?): exiting"
            )
            log.error(message)
            os.write(2, f"error: {message}\n".encode())  # unbuffered: os._exit flushes nothing
            launcher = getattr(getattr(self._trainer, "strategy", None), "launcher", None)
            for proc in getattr(launcher, "procs", []):  # the DDP ranks this process started
                proc.kill()
            os._exit(128 + signal.SIGTERM)
