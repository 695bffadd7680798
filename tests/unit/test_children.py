"""The child-process helper, on real child processes: small Python scripts that get ready, fail,
ignore SIGTERM or outlive a killed parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sovereign_server.children import ChildError, ChildProcess, http_ok
from sovereign_server.engines.local import free_port
from tests.conftest import pid_alive

pytestmark = pytest.mark.unit


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script), *args]


def never() -> bool:
    return False


def wait_until_dead(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# Writes its marker file once "ready", then runs until signalled.
SERVES = """
    import pathlib, sys, time
    time.sleep(0.2)
    pathlib.Path(sys.argv[1]).write_text("ready")
    time.sleep(60)
"""


def test_wait_ready_returns_once_the_probe_passes_and_stop_ends_it(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    child = ChildProcess(python(SERVES, str(marker)), log=tmp_path / "log")
    child.start()
    try:
        child.wait_ready(marker.exists, within=10)
        assert child.running()
        pid = child.pid
        assert pid is not None
        assert child.returncode is None
    finally:
        child.stop()
    assert child.returncode == -signal.SIGTERM
    assert not pid_alive(pid)
    assert child.stop() == -signal.SIGTERM  # idempotent


def test_http_ok_probes_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    server = ChildProcess([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], log=tmp_path / "log")
    server.start()
    try:
        server.wait_ready(http_ok(f"http://127.0.0.1:{port}/"), within=20)
    finally:
        server.stop()
    assert not http_ok(f"http://127.0.0.1:{port}/")()


def test_an_early_exit_fails_at_once_with_the_log_tail(tmp_path: Path) -> None:
    failing = python("""
        import sys
        print("reading config.yaml")
        print("config.yaml: no such listener", file=sys.stderr)
        sys.exit(3)
    """)
    child = ChildProcess(failing, name="server", log=tmp_path / "log")
    child.start()
    started = time.monotonic()
    with pytest.raises(ChildError) as failure:
        child.wait_ready(never, within=30)
    assert time.monotonic() - started < 10
    assert str(failure.value) == (
        "server exited with status 3 while starting:\nreading config.yaml\nconfig.yaml: no such listener"
    )
    assert child.returncode == 3


def test_a_child_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    child = ChildProcess(python("import time; print('starting', flush=True); time.sleep(60)"), log=tmp_path / "log")
    child.start()
    with pytest.raises(ChildError, match=r"did not become ready within 0\.3 seconds:\nstarting$"):
        child.wait_ready(never, within=0.3)
    assert not child.running()
    assert child.returncode == -signal.SIGTERM


def test_a_child_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    child = ChildProcess(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), name="crasher")
    child.start()
    with pytest.raises(ChildError, match=r"^crasher was killed by SIGKILL while starting$"):
        child.wait_ready(never, within=30)


# Ignores SIGTERM, or shuts down in its own time on it (an orderly server).
STUBBORN = """
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(60)
"""
ORDERLY = """
    import signal, sys, time
    def shut_down(signum, frame):
        time.sleep(0.2)
        sys.exit(0)
    signal.signal(signal.SIGTERM, shut_down)
    print("ready", flush=True)
    time.sleep(60)
"""


def start_ready(script: str, log: Path) -> ChildProcess:
    child = ChildProcess(python(script), log=log)
    child.start()
    child.wait_ready(lambda: "ready" in child.log_text(), within=10)
    return child


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    child = start_ready(STUBBORN, tmp_path / "log")
    started = time.monotonic()
    assert child.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


def test_stop_lets_an_orderly_child_finish_within_the_grace_period(tmp_path: Path) -> None:
    child = start_ready(ORDERLY, tmp_path / "log")
    assert child.stop(grace=10) == 0


def test_kill_does_not_wait_for_sigterm_handling(tmp_path: Path) -> None:
    child = start_ready(ORDERLY, tmp_path / "log")
    assert child.kill() == -signal.SIGKILL


# A parent that starts a sleeping child through the helper, prints its pid, and waits to be killed.
PARENT = """
    import sys, time
    from sovereign_server.children import ChildProcess
    child = ChildProcess([sys.executable, "-c", "import time; time.sleep(60)"], die_with_parent=sys.argv[1] == "1")
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("die_with_parent", [True, False])
def test_a_child_dies_with_its_killed_parent_unless_told_otherwise(die_with_parent: bool) -> None:
    parent = subprocess.Popen(python(PARENT, "1" if die_with_parent else "0"), stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    with parent.stdout:
        child_pid = int(parent.stdout.readline())
    try:
        assert pid_alive(child_pid)
        parent.kill()
        parent.wait()
        if die_with_parent:
            assert wait_until_dead(child_pid)
        else:
            time.sleep(0.3)
            assert pid_alive(child_pid)
    finally:
        if pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_a_restart_logs_after_the_previous_run_and_log_text_shows_only_the_latest(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = ChildProcess(python("import sys; print('run', sys.argv[1])", "1"), log=log)
    child.start()
    assert child.wait() == 0
    child.argv[-1] = "2"
    child.start()
    assert child.wait() == 0
    assert child.log_text() == "run 2\n"
    assert log.read_text() == "run 1\nrun 2\n"


def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    script = "import os; print(os.getcwd(), os.environ['CHILD_SETTING'], 'PATH' in os.environ)"
    child = ChildProcess(python(script), env={"CHILD_SETTING": "on"}, cwd=tmp_path, log=tmp_path / "log")
    child.start()
    assert child.wait() == 0
    assert child.log_text() == f"{tmp_path} on True\n"


def test_without_a_log_the_child_shares_our_output(capfd: pytest.CaptureFixture[str]) -> None:
    child = ChildProcess(python("print('to our stdout')"))
    child.start()
    assert child.wait() == 0
    assert capfd.readouterr().out == "to our stdout\n"
    assert child.log_tail() == ""


def test_starting_a_running_child_again_fails(tmp_path: Path) -> None:
    child = ChildProcess(python(SERVES, str(tmp_path / "ready")))
    child.start()
    try:
        with pytest.raises(ChildError, match="already running"):
            child.start()
    finally:
        child.stop()


async def test_await_ready_waits_without_blocking_the_loop(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    child = ChildProcess(python(SERVES, str(marker)))
    child.start()
    waiting = asyncio.create_task(child.await_ready(marker.exists, within=10))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the child takes 0.2 s to get ready: the loop ran meanwhile
    await waiting
    assert await child.astop() == -signal.SIGTERM


async def test_cancelling_await_ready_stops_the_child(tmp_path: Path) -> None:
    child = ChildProcess(python(SERVES, str(tmp_path / "ready")))
    child.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(child.await_ready(never, within=30), 0.3)
    assert not child.running()


async def test_await_exit_returns_the_status(tmp_path: Path) -> None:
    child = ChildProcess(python("import sys; sys.exit(7)"))
    child.start()
    assert await child.await_exit() == 7


def test_a_program_is_found_on_path_as_subprocess_would(tmp_path: Path) -> None:
    child = ChildProcess(["sh", "-c", "echo found"], log=tmp_path / "log")
    child.start()
    assert child.wait() == 0
    assert child.log_text() == "found\n"
