"""End-to-end fixtures: a real server process (`python -m chat`), Chromium, and for
several processes a shared database (`database_url`; `redis_server` is in tests/conftest).

`LiveServer` runs the app the way it is deployed: its own process group, a port picked
once, a database file under the test's `tmp_path` and `CHAT_*` settings from the
environment. It can be stopped gracefully (SIGTERM), killed (SIGKILL to the group) and
restarted on the same port and database, so tests of hardening, restarts and several
processes can reuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
POSTGRES_ADMIN = os.environ.get("CHAT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run"]


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


# Fixtures ------------------------------------------------------------------------------

MakeServer = Callable[..., LiveServer]


@pytest.fixture
def make_live_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Factory: `make_live_server(env={...}, args=[...], start=True)`; all stopped at teardown.

    Each server gets its own work folder (`tmp_path/<name>`), unless `database` is given
    to share one between processes.
    """
    servers: list[LiveServer] = []

    def make(*, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
             start: bool = True, name: str | None = None, **options) -> LiveServer:
        name = name or f"server{len(servers) + 1}"
        server = LiveServer(tmp_path / name, env=env, args=args, name=name, **options)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in reversed(servers):
        server.close()
        print(f"\n--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}")


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Settings for `live_server`; override this fixture (or use the factory) to change them."""
    return {}


@pytest.fixture
def live_server(make_live_server: MakeServer, live_server_env: dict[str, str]) -> LiveServer:
    return make_live_server(env=live_server_env, name="server")


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database when PostgreSQL answers and the store exists, else a
    SQLite file shared by the processes."""
    try:
        import asyncpg

        import chat.store.postgres  # noqa: F401

        admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=2)
    except Exception:
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    name = f"chat_scale_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def chromium_or_skip() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium, headless, through Playwright's async API (one per test)."""
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


OpenPerson = Callable[..., Awaitable[object]]


@pytest.fixture
async def people(browser) -> AsyncIterator[OpenPerson]:
    """Factory: `await people(server, "Ann", javascript=True, viewport=None, **options)`
    opens a person (their own browser context, so their own session) on `server`.

    At teardown, any console error or uncaught page error on any of their pages fails
    the test (a test that stops the server says so with `user.allow_offline_noise()`).
    """
    from tests.e2e.browsing import new_user

    opened = []

    async def open_person(server: LiveServer, name: str, *, javascript: bool = True,
                          viewport: dict | None = None, **options):
        context = await browser.new_context(
            base_url=server.url, java_script_enabled=javascript,
            viewport=viewport or {"width": 1280, "height": 800}, **options)
        user = await new_user(context, name)
        opened.append(user)
        return user

    yield open_person
    problems = {user.name: user.unexpected_errors() for user in opened}
    problems = {name: lines for name, lines in problems.items() if lines}
    assert not problems, f"console errors: {problems}"


@pytest.fixture
def two_servers(redis_server, database_url, make_live_server: MakeServer):
    """Two app processes on one Redis broker and one database."""
    env = {
        "CHAT_BROKER_URL": redis_server.url,
        "CHAT_DATABASE_URL": database_url,
        "CHAT_SECRET_KEY": "scale-out-test-" + uuid.uuid4().hex,
        "CHAT_MESSAGE_RATE": "off",
        "CHAT_JOIN_FAIL_RATE": "off",
        "CHAT_CREATE_RATE": "off",
    }
    return make_live_server(env=env, name="a"), make_live_server(env=env, name="b")


@pytest.fixture
async def users() -> AsyncIterator[dict[str, object]]:
    """Alice, Bob and Carol as scripted browsers (`tests.e2e.scripted.User`)."""
    from tests.e2e.scripted import User

    made = {name: User(name) for name in ("Alice", "Bob", "Carol")}
    yield made
    for user in made.values():
        await user.close()
