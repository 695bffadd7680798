"""`pip install .` (not editable) into a fresh virtual environment, then `sovereign serve` from a
directory outside the checkout: the distribution ships all the server and its gateway need,
Envoy's files included, and finds them without the source tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sovereign_server.children import ChildProcess

# Installing the dependencies takes most of the time, even from pip's cache.
pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# What a checkout may hold besides its sources: environments, caches, build output, data.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "data", "*.egg-info", "__pycache__", ".*_cache")


def run(*argv: str | Path) -> str:
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_pip_install_then_sovereign_serve_from_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing may lead the new environment back to this checkout or this environment.
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        monkeypatch.delenv(name, raising=False)
    # A copy of the sources, deleted once installed: nothing may read from it afterwards.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    # This environment's pip installs into the new one: bootstrapping pip there would add time only.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check", source)
    shutil.rmtree(source)
    located = run(python, "-c", "import sovereign_server, sovereign_envoy; print(sovereign_envoy.__file__)")
    assert Path(located.strip()).is_relative_to(venv)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    serve = ChildProcess(
        [venv / "bin" / "sovereign", "serve", "--engine", "builtin", "--grpc-port", "0", "--http-port", "0",
         "--db", tmp_path / "db.sqlite3", "--log-level", "warning"],
        name="sovereign serve",
        env={"PYTHONUNBUFFERED": "1"},
        cwd=elsewhere,
        log=tmp_path / "serve.log",
    )  # fmt: skip
    serve.start()
    try:
        serve.wait_ready(lambda: "API docs" in serve.log_text(), within=60)
        found = re.search(r"(http://127\.0\.0\.1:\d+)/v1", serve.log_text())
        assert found is not None, serve.log_text()
        with httpx.Client(base_url=found.group(1), trust_env=False, timeout=10) as http:
            assert http.get("/health").json() == {"status": "SERVING"}
            created = http.post("/v1/assistants", json={"model": "builtin", "name": "installed"})
            assert created.status_code == 200, created.text
            assert created.json()["name"] == "installed"
            assert http.get(f"/v1/assistants/{created.json()['id']}").json()["name"] == "installed"
            assert http.get("/openapi.json").json()["info"]
            assert http.get("/docs").status_code == 200
        assert serve.stop(grace=30) == 0, serve.log_tail()
    finally:
        serve.stop()
    assert not any(elsewhere.iterdir()), "serve wrote into its working directory"
    assert (tmp_path / "db.sqlite3").is_file()
