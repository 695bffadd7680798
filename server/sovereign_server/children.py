"""Child processes the server runs (Envoy, llama-server): they must never outlive it."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# Run by a fresh interpreter between our fork and Envoy's exec: asks Linux to SIGKILL the process
# when its parent dies (the setting survives exec), then becomes Envoy. A `preexec_fn` would do the
# same inside our own forked child, but forking a process that runs gRPC's threads makes gRPC log
# warnings and is unsafe for Python code; without `preexec_fn`, subprocess uses vfork+exec.
_PDEATHSIG_LAUNCHER = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):  # the parent died before prctl: nobody would signal us
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def with_parent_death_signal(argv: list[str]) -> list[str]:
    """`argv`, wrapped so that the kernel kills the program if this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return argv
    # -I -S: no user site, no environment-driven imports; only ctypes and os are needed.
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_LAUNCHER, str(os.getpid()), *argv]


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    # No proxies: the gateway is on loopback and an `http_proxy` variable must not reroute it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
