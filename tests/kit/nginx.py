"""A private nginx running the deploy site (`deploy/nginx/chat.conf`) for tests.

The site file is used as shipped, with only what a test machine must change swapped:
the certificate (a self-signed one made here), the listening ports (free unprivileged
ones on 127.0.0.1, no IPv6) and, to run it, the app processes of the upstream block.
Each swap is checked to have happened, so a reworded site file fails loudly instead of
being tested half-changed. A small main config around it keeps the pid, logs and
temporary files in the test's own folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.kit.server import PROJECT_ROOT, free_port

SITE = PROJECT_ROOT / "deploy" / "nginx" / "chat.conf"
NGINX = "/usr/sbin/nginx"
UPSTREAM_SERVER = re.compile(r"^(\s*server )127\.0\.0\.1:\d+( [^;]*;)$", re.M)


class NginxMissing(RuntimeError):
    pass


def nginx_binary() -> str:
    binary = shutil.which("nginx") or (NGINX if os.access(NGINX, os.X_OK) else None)
    if binary is None:
        raise NginxMissing("nginx is not installed (scripts/services installs Debian's)")
    return binary


def _swap(text: str, old: str | re.Pattern[str], new, count: int) -> str:
    if isinstance(old, str):
        found = text.count(old)
        text = text.replace(old, new)
    else:
        text, found = old.subn(new, text)
    if found != count:
        raise AssertionError(f"deploy site: expected {count} x {old!r}, found {found}")
    return text


class Nginx:
    """nginx with the deploy site, in `workdir`. `upstreams` (host, port) replace the app
    processes the site lists; None keeps them (enough for `nginx -t`)."""

    def __init__(self, workdir: Path, upstreams: Sequence[tuple[str, int]] | None = None) -> None:
        self.workdir = Path(workdir)
        self.upstreams = upstreams
        self.http_port = free_port()
        self.https_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    name = "nginx"

    # Configuration ---------------------------------------------------------------------

    def site(self) -> str:
        text = SITE.read_text()
        text = _swap(text, "listen 80;", f"listen 127.0.0.1:{self.http_port};", 1)
        text = _swap(text, "listen 443 ssl http2;",
                     f"listen 127.0.0.1:{self.https_port} ssl http2;", 1)
        text = _swap(text, re.compile(r"^\s*listen \[::\]:\d+[^;]*;\n", re.M), "", 2)
        text = _swap(text, re.compile(r"ssl_certificate /\S+;"),
                     f"ssl_certificate {self.workdir / 'cert.pem'};", 1)
        text = _swap(text, re.compile(r"ssl_certificate_key /\S+;"),
                     f"ssl_certificate_key {self.workdir / 'key.pem'};", 1)
        if self.upstreams is not None:
            servers = iter(self.upstreams)
            text = _swap(text, UPSTREAM_SERVER,
                         lambda m: f"{m.group(1)}{':'.join(map(str, next(servers)))}{m.group(2)}",
                         len(self.upstreams))
        return text

    def main_config(self) -> str:
        work = self.workdir
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers write into `work`
        temp = "\n".join(f"    {kind}_temp_path {work / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""{user}worker_processes 1;
pid {work / 'nginx.pid'};
error_log {work / 'error.log'} info;
events {{ worker_connections 1024; }}
http {{
    log_format forwarded '$remote_addr "$request" $status xff="$http_x_forwarded_for"';
    access_log {work / 'access.log'} forwarded;
{temp}
    include {work / 'chat.conf'};
}}
"""

    def write(self) -> Path:
        """Write the certificate, the site and the main config; the main config's path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.workdir / "cert.pem").exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                 "-keyout", str(self.workdir / "key.pem"),
                 "-out", str(self.workdir / "cert.pem")],
                check=True, capture_output=True)
        (self.workdir / "chat.conf").write_text(self.site())
        main = self.workdir / "nginx.conf"
        main.write_text(self.main_config())
        return main

    def command(self, *extra: str) -> list[str]:
        work = self.workdir
        return [nginx_binary(), "-p", f"{work}/", "-e", str(work / "error.log"),
                "-c", str(work / "nginx.conf"), *extra]

    def test(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on the written configuration."""
        self.write()
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    # Life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        self.write()
        log = (self.workdir / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            self.command("-g", "daemon off;"), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {self.process.returncode}\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.https_port), timeout=0.5):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx not listening after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # fast shutdown: drops open sockets
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                text = (self.workdir / name).read_text(errors="replace")
                parts.append(f"--- {name}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def access_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "access.log").read_text(errors="replace")
        return ""
