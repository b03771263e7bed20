"""Run ``gridpatrol serve`` as a child process on a free loopback port (benchmarks, end-to-end tests)."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# ``python -m gridpatrol.scripts.cli``: the command line of the running interpreter's gridpatrol.
CLI = [sys.executable, "-m", "gridpatrol.scripts.cli"]


class ServerError(RuntimeError):
    """The server exited or did not answer /readyz in time; the message holds the end of its log."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reserve_port() -> socket.socket:
    """A socket holding a free loopback port for a server that binds it later; close it once the
    server answers.

    It is bound with SO_REUSEADDR and never listens: the kernel gives the port to no other
    ``bind(port 0)`` (another pytest-xdist worker's server), yet our server, which sets
    SO_REUSEADDR too (uvicorn does), can bind and listen on it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def stop_process(proc: subprocess.Popen, *, wait_s: float = 60) -> None:
    """Stop a server or worker process as an operator would: SIGTERM (a worker finishes the job in hand),
    then SIGKILL if it has not ended within ``wait_s`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=2) as r:  # noqa: S310  (loopback URL we built)
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_server(db: str, *, workers: int = 1, env: dict[str, str] | None = None,
                   cli: Sequence[str] = CLI, cwd: Path | None = None, ready_s: float = 90) -> Iterator[str]:
    """``gridpatrol serve`` on a free loopback port; yields the base URL once /readyz answers 200.

    The server logs to ``$TMPDIR/gp-e2e-server-PORT.log`` (deleted afterwards unless
    ``GRIDPATROL_KEEP_LOGS`` is set). Without ``GRIDPATROL_SECRET_KEY`` in ``env`` or the
    environment it gets a random key. :class:`ServerError` if it exits or is not ready in ``ready_s``."""
    hold = reserve_port()
    port = hold.getsockname()[1]
    log = Path(tempfile.gettempdir()) / f"gp-e2e-server-{port}.log"
    fh = open(log, "w", encoding="utf-8")
    child_env = {"GRIDPATROL_SECRET_KEY": os.environ.get("GRIDPATROL_SECRET_KEY") or secrets.token_urlsafe(32),
                 **{k: v for k, v in os.environ.items() if k != "GRIDPATROL_SECRET_KEY"}, **(env or {})}
    proc = subprocess.Popen(
        [*cli, "--db", db, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=child_env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while not _ready(base):
            if proc.poll() is not None:
                raise ServerError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise ServerError(f"server not ready after {ready_s:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        hold.close()  # the server listens on the port now
        yield base
    finally:
        hold.close()
        stop_process(proc, wait_s=15)
        fh.close()
        if not os.environ.get("GRIDPATROL_KEEP_LOGS"):
            log.unlink(missing_ok=True)
