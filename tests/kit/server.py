"""A real server for the kit to drive: `LiveServer` runs `python -m chat` the way it is
deployed (its own process group, a port picked once, a database file in its work folder,
`CHAT_*` settings from the environment), stoppable gracefully (SIGTERM), killable
(SIGKILL to the group) and restartable on the same port and database. `LogWatch` and
`database_rows` read what it left behind: its log and its SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_FAULTS = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


class LiveServer:
    """One `python -m chat` process, restartable on the same port and database.

    `env` overrides `CHAT_*` settings (other inherited `CHAT_*` variables are dropped so
    the machine's environment cannot leak in); `args` are extra command-line arguments.
    Output goes to `log_path`; `log_tail()` shows its end when something fails.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        database: Path | None = None,
        name: str = "server",
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port or free_port(host)
        self.database = Path(database or self.workdir / "chat.db").resolve()
        self.args = list(args)
        self.name = name
        self.log_path = self.workdir / f"{name}.log"
        self.env = {"CHAT_DATABASE_URL": f"sqlite:///{self.database}", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # Addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> str:
        """What `GET /healthz` says ("ok", "degraded"), or "down" when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as response:
                return json.loads(response.read())["status"]
        except OSError:
            return "down"

    # Life cycle ------------------------------------------------------------------

    def command(self) -> list[str]:
        return [sys.executable, "-m", "chat", "--bind", f"{self.host}:{self.port}", *self.args]

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_")}
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and return once `GET /healthz` answers 200."""
        if self.running:
            raise ServerFailed(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=PROJECT_ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerFailed(f"{self.name} exited with {code} before it was ready\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerFailed(f"{self.name} not ready after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group and wait; SIGKILL if it does not exit in `timeout`."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerFailed(f"{self.name} ignored SIGTERM for {timeout}s\n"
                                   f"{self.log_tail()}") from None
        self._reap_group()
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole process group (workers included) and wait."""
        process = self.process
        if process is None:
            return None
        self._signal_group(signal.SIGKILL)
        process.wait(10)
        return process.returncode

    def restart(self, timeout: float = 20.0) -> None:
        """Stop gracefully, then start again on the same port and database."""
        self.stop()
        self.start(timeout)

    # Async conveniences: the same, off the event loop ------------------------------

    async def astart(self, ready_within: float = 20.0) -> None:
        await asyncio.to_thread(self.start, ready_within)

    async def astop(self, exit_within: float = 15.0) -> int | None:
        return await asyncio.to_thread(self.stop, exit_within)

    async def arestart(self, ready_within: float = 20.0) -> None:
        await asyncio.to_thread(self.restart, ready_within)

    # Helpers -----------------------------------------------------------------------

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)  # start_new_session: pgid == pid

    def _reap_group(self) -> None:
        """Kill anything the server left behind in its group (e.g. hypercorn workers)."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Teardown: stop gracefully, and kill the group if that fails."""
        try:
            self.stop()
        except ServerFailed:
            pass
        finally:
            if self.process is not None and self.process.poll() is None:
                self.kill()


MakeServer = Callable[..., LiveServer]  # the `make_live_server` fixture


# What a server left behind: its log and its database ---------------------------------


class LogWatch:
    """The part of a server's log written after a mark, checked for handler faults."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.offset = 0
        self.mark()

    def mark(self) -> None:
        self.offset = self.server.log_path.stat().st_size if self.server.log_path.exists() else 0

    def text(self) -> str:
        with self.server.log_path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def faults(self) -> list[str]:
        return [line for line in self.text().splitlines() if SERVER_FAULTS.search(line)]

    def assert_clean(self) -> None:
        faults = self.faults()
        assert not faults, ("server logged faults:\n" + "\n".join(faults[:20]) + "\n"
                            + self.text()[-4000:])


def server_log_text(server: LiveServer) -> str:
    return server.log_path.read_text(errors="replace")


def database_rows(server: LiveServer, query: str, args: tuple = ()) -> list[tuple]:
    """Read the server's SQLite file directly (read-only), e.g. to prove nothing changed."""
    uri = f"file:{server.database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return db.execute(query, args).fetchall()


def count_rooms(server: LiveServer) -> int:
    return database_rows(server, "SELECT count(*) FROM rooms")[0][0]


def count_messages(server: LiveServer, code: str | None = None) -> int:
    if code is None:
        return database_rows(server, "SELECT count(*) FROM messages")[0][0]
    return database_rows(server, "SELECT count(*) FROM messages WHERE room_code = ?", (code,))[0][0]
