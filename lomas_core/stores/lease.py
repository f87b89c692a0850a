"""Owner liveness for pending charges: who answers a query, and whether that process still lives.

Every server process registers an **owner** with its store and stamps its id on each pending
charge. A pending record may be resolved (``failed``, charge kept) only when its owner is dead:

* **known dead**: on the same machine (same kernel boot and pid namespace), the owner's process
  id is gone or now belongs to a process started at another time; or the owner closed its store;
* **lease expired** (stores shared between machines): the owner stopped renewing its heartbeat for
  longer than its lease, as observed on the *observer's* monotonic clock, so clocks of different
  machines never need to agree.

A live owner's records are never touched, however old. :class:`LeaseKeeper` is the background
thread that renews this process's lease and resolves dead owners' records every interval.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["LeaseKeeper", "ProcessIdentity", "process_gone", "this_process"]

log = logging.getLogger("lomas.stores.lease")


@dataclass(frozen=True)
class ProcessIdentity:
    """Where a process runs and which one it is (``machine`` None when it cannot be known)."""

    machine: str | None
    pid: int
    #: The process's start time in clock ticks since boot (tells a reused pid apart).
    started: int | None
    host: str

    def as_doc(self) -> dict[str, Any]:
        return {"machine": self.machine, "pid": self.pid, "started": self.started,
                "host": self.host}


@lru_cache(maxsize=1)
def _machine() -> str | None:
    """The kernel boot id plus this pid namespace: equal only for processes that see each other's
    pids (containers on one kernel have different pid namespaces)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _started(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie runs nothing any more
        return None
    return int(fields[19])


def this_process() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(_machine(), pid, _started(pid), socket.gethostname())


def process_gone(machine: Any, pid: Any, started: Any) -> bool:
    """True only when it is *known* that the described process no longer runs.

    False whenever that cannot be known: another machine or pid namespace, or no ``/proc``.
    """
    here = _machine()
    if here is None or machine != here or not isinstance(pid, int):
        return False
    now = _started(pid)
    if now is None:  # no such process, or a zombie
        return True
    return started is not None and now != started


class LeaseKeeper:
    """A daemon thread calling ``beat`` every ``interval`` seconds until :meth:`stop`.

    ``beat`` renews the owner's lease and resolves dead owners' records; its failures are logged
    and retried at the next interval (a store outage must not kill the thread).
    """

    def __init__(self, beat: Callable[[], Any], interval: float, name: str) -> None:
        self._beat = beat
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - keep beating through store outages
                log.warning("%s: heartbeat failed: %s", self._thread.name, type(exc).__name__)

    def stop(self) -> None:
        """Stop beating (returns once the thread has finished its current beat)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
