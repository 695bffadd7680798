"""Child processes (Envoy, llama-server, the benchmark's servers): started, awaited until ready,
stopped in order, and never outliving this process.

    child = ChildProcess([binary, "--port", str(port)], log=run_dir / "server.log")
    child.start()
    child.wait_ready(http_ok(f"http://127.0.0.1:{port}/health"), within=30)
    ...
    child.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["ChildError", "ChildProcess", "Probe", "http_get", "http_ok", "with_parent_death_signal"]

# A readiness check: True once the child serves. OSError counts as "not yet" (connection refused).
Probe = Callable[[], bool]

# How much of a log file `log_tail` reads: enough for its lines, bounded for a long-running child.
_TAIL_BYTES = 64 * 1024

# Run by a fresh interpreter between our fork and the program's exec: asks Linux to SIGKILL the process
# when its parent dies (the setting survives exec), then becomes the program. A `preexec_fn` would do
# the same inside our own forked child, but forking a process that runs gRPC's threads makes gRPC log
# warnings and is unsafe for Python code; without `preexec_fn`, subprocess uses vfork+exec.
_PDEATHSIG_LAUNCHER = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):  # the parent died before prctl: nobody would signal us
    os._exit(1)
os.execvp(sys.argv[2], sys.argv[2:])  # searches PATH as subprocess would
"""


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """`argv`, wrapped so that the kernel kills the program if this process dies (Linux only).
    The launcher execs the program in place: the child's pid is the program's."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    # -I -S: no user site, no environment-driven imports; only ctypes and os are needed.
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_LAUNCHER, str(os.getpid()), *argv]


def http_get(url: str, timeout: float, *, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """Status and body of GET `url` (an https URL verified by `context`, if given); raises OSError
    when nothing answers."""
    # No proxies: children listen on loopback and an `http_proxy` variable must not reroute them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def http_ok(url: str, timeout: float = 2.0) -> Probe:
    """A probe that passes once GET `url` answers 200."""

    def probe() -> bool:
        # A server still starting may also close the connection mid-response.
        with contextlib.suppress(OSError, http.client.HTTPException):
            return http_get(url, timeout)[0] == 200
        return False

    return probe


class ChildError(RuntimeError):
    """A child exited while starting or did not become ready in time (the message then ends with
    the tail of its log), or was started twice."""


class ChildProcess:
    """One program run as a child process.

    Its stdout and stderr go to `log` (appended; `Path(os.devnull)` discards them), or with
    `log=None` to this process's own. It runs in a session of its own, so a Ctrl-C in a terminal
    reaches only us and we stop it in order. With `die_with_parent` (Linux), the kernel kills it if
    this process dies without stopping it; the kernel ties that to the *thread* that starts the child,
    so call `start()` from a long-lived thread (the main one, the event loop's), never from a
    worker such as `asyncio.to_thread`'s.

    `start()` again after it exited or was stopped starts a new process (a supervisor's restart).
    Blocking methods have awaitable twins for asyncio code: `await_ready`, `await_exit`, `astop`.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
        die_with_parent: bool = True,
        stop_grace: float = 5.0,
    ) -> None:
        self.argv = [os.fspath(arg) for arg in argv]
        self.name = name or Path(self.argv[0]).name
        # Set over this process's environment.
        self.env = dict(env or {})
        self.cwd = cwd
        self.log = log
        self.die_with_parent = die_with_parent
        # Seconds `stop()` waits after SIGTERM before SIGKILL, unless told otherwise.
        self.stop_grace = stop_grace
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False
        # Where this run's output starts in the (appended) log.
        self._log_offset = 0

    # State -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The program's pid (the same with `die_with_parent`: its launcher execs it in place)."""
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """The exit status (negative: killed by that signal); None while running or never started."""
        return self._process.poll() if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # Life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the program and returns at once; `wait_ready` tells when it serves."""
        if self.running():
            raise ChildError(f"{self.name} is already running")
        argv = with_parent_death_signal(self.argv) if self.die_with_parent else self.argv
        log_file = self.log.open("ab") if self.log is not None else None
        try:
            self._log_offset = log_file.seek(0, os.SEEK_END) if log_file else 0
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT if log_file else None,
                cwd=self.cwd,
                env={**os.environ, **self.env} if self.env else None,
                start_new_session=True,
            )
        finally:
            # The child holds its own descriptor.
            if log_file is not None:
                log_file.close()
        self._stopped = False

    def wait_ready(self, probe: Probe, within: float, *, interval: float = 0.05) -> None:
        """Returns once `probe()` passes. Raises `ChildError` with the log's tail as soon as the
        child exits, or after `within` seconds; the child is stopped first, so a failed start
        leaves no process behind."""
        deadline = time.monotonic() + within
        try:
            while not self._ready(probe, deadline, within):
                time.sleep(interval)
        except BaseException:
            self.stop()
            raise

    async def await_ready(self, probe: Probe, within: float, *, interval: float = 0.05) -> None:
        """`wait_ready` for asyncio code: probes in a worker thread, so the loop never blocks;
        cancelling it stops the child."""
        deadline = time.monotonic() + within
        try:
            while True:
                if await asyncio.to_thread(self._ready, probe, deadline, within):
                    return
                await asyncio.sleep(interval)
        except BaseException:
            await self.astop()
            raise

    def wait(self, timeout: float | None = None) -> int:
        """Waits for the child to exit and returns its status; raises `subprocess.TimeoutExpired`."""
        if self._process is None:
            raise ChildError(f"{self.name} was never started")
        return self._process.wait(timeout)

    async def await_exit(self) -> int:
        """Waits, without blocking the loop, for the child to exit; returns its status."""
        return await asyncio.to_thread(self.wait)

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL if it still runs after `grace` seconds (default `stop_grace`);
        returns once it exited, with its status (None if it was never started). Idempotent."""
        self._stopped = True
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    async def astop(self, grace: float | None = None) -> int | None:
        return await asyncio.to_thread(self.stop, grace)

    def kill(self) -> int | None:
        """SIGKILL at once, as a crash would; returns once it exited, with its status."""
        self._stopped = True
        process = self._process
        if process is None:
            return None
        process.kill()
        return process.wait()

    # Output ------------------------------------------------------------------------------------

    def log_text(self) -> str:
        """What the child wrote to its log since it was last started ("" without a log file)."""
        return self._read_log(self._log_offset)

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of `log_text()`."""
        offset = self._log_offset
        if self.log is not None:
            with contextlib.suppress(OSError):
                offset = max(offset, self.log.stat().st_size - _TAIL_BYTES)
        return "\n".join(self._read_log(offset).splitlines()[-lines:])

    # Internals ---------------------------------------------------------------------------------

    def _ready(self, probe: Probe, deadline: float, within: float) -> bool:
        """One look: True once `probe` passes; raises if the child is gone or time is up."""
        process = self._process
        if process is None or self._stopped:
            raise ChildError(f"{self.name} was stopped while starting")
        code = process.poll()
        if code is not None:
            raise ChildError(f"{self.name} {_exit_text(code)} while starting{self._tail_suffix()}")
        with contextlib.suppress(OSError):
            if probe():
                return True
        if time.monotonic() > deadline:
            raise ChildError(f"{self.name} did not become ready within {within:g} seconds{self._tail_suffix()}")
        return False

    def _read_log(self, offset: int) -> str:
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _tail_suffix(self) -> str:
        tail = self.log_tail()
        return f":\n{tail}" if tail else ""


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
