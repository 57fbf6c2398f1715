"""Start and stop the servers under test, each in its own process group on its own core."""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.kit.server import free_port

ROOT = Path(__file__).resolve().parent.parent

KINDS = {
    # kind: (module, speaks the browser flow)
    "ours": ("chat", True),
    "floor": ("bench.floor_server", False),
    "bare": ("bench.bare_quart", False),
    # ours as `python -m chat --workers 2` over a redis-server of its own
    "ours2": ("chat", True),
}
TITLES = {"ours": "ours (chat)", "floor": "floor (websockets)", "bare": "bare Quart+hypercorn",
          "ours2": "ours, 2 workers + Redis"}
WORKERS = {"ours2": 2}


def _preexec(cores: set[int] | None):
    def setup() -> None:
        os.setsid()
        if cores:
            os.sched_setaffinity(0, cores)
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return setup


@dataclass
class Server:
    kind: str
    process: subprocess.Popen
    port: int
    log_path: Path
    redis: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> dict:
        return {"kind": self.kind, "base": self.base, "browser": KINDS[self.kind][1],
                "pid": self.process.pid}

    def log_problems(self) -> list[str]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if " ERROR " in line or "Traceback" in line
                or "Exception" in line or "fell behind" in line][:20]

    def stop(self, fast: bool = False) -> None:
        """SIGTERM to the group (the app closes its sockets), or SIGKILL when `fast`."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL if fast else signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            except ProcessLookupError:
                pass
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(5)


def start(kind: str, workdir: Path, log_dir: Path, cores: set[int] | None, tag: str,
          env_extra: dict[str, str] | None = None, db_path: Path | None = None) -> Server:
    module, _ = KINDS[kind]
    port = free_port()
    env = dict(os.environ)
    redis = None
    if kind in WORKERS:
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_preexec(cores))
        env["CHAT_BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.3)
    if kind.startswith("ours"):
        db_path = db_path or workdir / f"{tag}.db"
        env.update({
            "CHAT_DATABASE_URL": f"sqlite:///{db_path}",
            "CHAT_SECRET_KEY": secrets.token_urlsafe(32),
            "CHAT_MESSAGE_RATE": "off",
            "CHAT_JOIN_FAIL_RATE": "off",
            "CHAT_CREATE_RATE": "off",
            "CHAT_SOCKETS_PER_ADDRESS": "off",  # every benchmark client is 127.0.0.1
            "CHAT_ROOM_CAPACITY": "100000",
            "CHAT_EMPTY_ROOM_TTL": "86400",
        })
    env.update(env_extra or {})
    log_path = log_dir / f"server-{kind}-{tag}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--bind", f"127.0.0.1:{port}",
         *(["--workers", str(WORKERS[kind])] if kind in WORKERS else [])],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_preexec(cores),
    )
    log.close()
    server = Server(kind, process, port, log_path, redis)
    _wait_ready(server, 30)
    return server


def _wait_ready(server: Server, limit: float) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} server exited ({server.process.returncode}): "
                               f"{server.log_path.read_text()[-2000:]}")
        try:
            if server.kind.startswith("ours"):
                with urllib.request.urlopen(server.base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            else:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.kind} server not ready within {limit} s")
