"""The benchmark run: servers, scenarios, report. `python -m bench --help`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import report, servers
from bench.progress import status
from bench.seed import seed_rooms

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    "rooms": 10, "members": 10,
    "rates": [1000, 2000, 3000, 4000, 5000, 6750, 10000, 14000, 18000, 22000, 26000, 30000],
    "step_s": 3.0, "drain": 2.0, "warmup_rate": 1000, "warmup_s": 2.0,
    "cpu_rate": 6750, "cpu_s": 10.0, "p99_limit_ms": 100.0, "stop_after_failures": 1,
    "fanout_sizes": [50, 100, 200, 400, 800, 1600], "fanout_senders": 4,
    "fanout_rate": 2.0, "fanout_duration": 10.0, "fanout_within_ms": 500.0,
    "fanout_share": 0.95, "fanout_join_timeout": 60.0,
    "memory_connections": 2000, "memory_room_size": 100, "memory_settle_s": 2.0,
    "memory_messages": 3,
    "history_counts": [10, 1_000, 10_000, 1_000_000], "history_requests": 20,
    "scenario_time_limit": 240.0, "quiet_s": 0.5,
}
QUICK = {
    **FULL,
    "rooms": 2, "members": 3, "rates": [60, 120], "step_s": 0.6, "drain": 1.0,
    "warmup_rate": 30, "warmup_s": 0.3, "cpu_rate": 90, "cpu_s": 0.6,
    "fanout_sizes": [4, 8], "fanout_duration": 0.6, "fanout_join_timeout": 15.0,
    "memory_connections": 30, "memory_room_size": 10, "memory_settle_s": 0.2,
    "history_counts": [10, 100, 1000], "history_requests": 3,
    "scenario_time_limit": 30.0, "quiet_s": 0.15,
}
SCENARIOS = ("throughput", "fanout", "memory", "history")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds per server")
    parser.add_argument("--servers", default="ours,floor,bare",
                        help="comma-separated: ours, floor, bare (default %(default)s)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client cores")
    parser.add_argument("--no-deflate", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do; default: "
                             "offered as Chromium does)")
    parser.add_argument("--compression", default=None, metavar="MODE",
                        help="CHAT_WS_COMPRESSION for ours and bare Quart: off, small or "
                             "default (default: the app's own default)")
    parser.add_argument("--db-dir", type=Path, default=None,
                        help="where the SQLite files go (default: a new folder under $TMPDIR)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile our server with py-spy under the fixed load")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a size or duration, e.g. --set cpu_s=20 "
                             "--set rates=1000,2000 (keys: see latest.json 'settings')")
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> dict:
    settings = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, _, raw = item.partition("=")
        if key not in settings:
            raise SystemExit(f"--set: unknown key {key!r}; known: {', '.join(sorted(settings))}")
        old = settings[key]
        if isinstance(old, list):
            settings[key] = [type(old[0])(x) for x in raw.split(",") if x]
        else:
            settings[key] = type(old)(raw)
    return settings


def _cores(no_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    available = sorted(os.sched_getaffinity(0))
    if no_pin or len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _job(scenario: str, server: servers.Server, s: dict, args: argparse.Namespace) -> dict:
    job = {"scenario": scenario, "target": server.target, "label": server.kind,
           "deflate": not args.no_deflate, "time_limit": s["scenario_time_limit"],
           "quiet_s": s["quiet_s"], "arrival_order_free": server.kind in servers.WORKERS}
    if scenario == "throughput":
        job.update({k: s[k] for k in ("rooms", "members", "rates", "step_s", "drain",
                                      "warmup_rate", "warmup_s", "cpu_rate", "cpu_s",
                                      "p99_limit_ms", "stop_after_failures")})
        job["join_timeout"] = 60.0
    elif scenario == "fanout":
        job.update(sizes=s["fanout_sizes"], senders=s["fanout_senders"], rate=s["fanout_rate"],
                   duration=s["fanout_duration"], drain=2.0, within_ms=s["fanout_within_ms"],
                   share=s["fanout_share"], join_timeout=s["fanout_join_timeout"])
    elif scenario == "memory":
        job.update(connections=s["memory_connections"], room_size=s["memory_room_size"],
                   settle_s=s["memory_settle_s"], messages=s["memory_messages"],
                   join_timeout=s["scenario_time_limit"] * 0.75)
    return job


def run_client(job: dict, cores: set[int] | None) -> dict:
    """The load generator in its own process (on its own cores); its JSON result."""
    def pin() -> None:
        if cores:
            os.sched_setaffinity(0, cores)

    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.client"], input=json.dumps(job), text=True,
            stdout=subprocess.PIPE, cwd=servers.ROOT, timeout=job["time_limit"] + 30,
            preexec_fn=pin, check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"load generator exceeded {job['time_limit'] + 30:.0f} s"}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": f"load generator exited {done.returncode}: {done.stdout[-500:]!r}"}


def _versions() -> dict:
    names = ("quart", "hypercorn", "websockets", "aiohttp", "uvloop", "wsproto", "jinja2")
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def run(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    s = _settings(args)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    for kind in kinds:
        if kind not in servers.KINDS:
            raise SystemExit(f"unknown server {kind!r}")
    server_cores, client_cores = _cores(args.no_pin)
    if args.compression:  # servers inherit the environment; the floor ignores it
        os.environ["CHAT_WS_COMPRESSION"] = args.compression
    if client_cores:
        os.sched_setaffinity(0, client_cores)  # the runner mostly waits; keep it off the server
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="chat-bench-", dir=args.db_dir))
    started = time.monotonic()
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "server_cores": sorted(server_cores) if server_cores else "not pinned",
            "client_cores": sorted(client_cores) if client_cores else "not pinned",
            "client_processes": 1, "deflate_offered": not args.no_deflate,
            "compression": args.compression or "app default", "versions": _versions(),
            "db_dir": str(workdir.parent),
        },
        "settings": s,
        "servers": {},
    }
    try:
        for kind in kinds:
            out = results["servers"].setdefault(kind, {"log_problems": {}})
            for scenario in scenarios:
                if scenario == "history" and kind != "ours":
                    continue  # the floors keep no history
                db_path = None
                if scenario == "history":
                    db_path = workdir / "history.db"
                    if not db_path.exists():
                        status(f"seeding {', '.join(f'{n:,}' for n in s['history_counts'])} "
                               "messages")
                        seed_rooms(db_path, _history_rooms(s))
                status(f"{kind}: {scenario}: starting server")
                server = servers.start(kind, workdir, args.out, server_cores,
                                       tag=scenario, db_path=db_path)
                try:
                    job = _job(scenario, server, s, args)
                    if scenario == "history":
                        job.update(rooms=_history_rooms(s), requests=s["history_requests"])
                    job["phase"] = "steps"
                    out[scenario] = run_client(job, client_cores)
                finally:
                    server.stop(fast=args.quick)
                _note_problems(out, scenario, server)
                if scenario == "throughput":
                    # the fixed load on a server of its own, so a failed step cannot spoil it
                    status(f"{kind}: fixed load: starting server")
                    server = servers.start(kind, workdir, args.out, server_cores, tag="fixed")
                    try:
                        job = _job(scenario, server, s, args)
                        job["phase"] = "fixed"
                        fixed = run_client(job, client_cores)
                    finally:
                        server.stop(fast=args.quick)
                    _note_problems(out, "fixed_load", server)
                    out[scenario]["fixed_load"] = fixed.get("fixed_load") or fixed
        if args.profile and "ours" in kinds:
            results["profile"] = _profile(workdir, s, args, server_cores, client_cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["summary"] = report.summary(results)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2))
    report.chart(results, args.out / "latency.png")
    status(f"done in {results['elapsed_s']} s", keep=True)
    print(report.table(results))
    print(f"\nJSON: {args.out / 'latest.json'}\nchart: {args.out / 'latency.png'}")
    return results


def _note_problems(out: dict, scenario: str, server: servers.Server) -> None:
    problems = server.log_problems()
    if problems:
        out["log_problems"][scenario] = problems


def _history_rooms(s: dict) -> dict[str, int]:
    letters = "HJKLMNPQRS"
    return {f"H{letters[i]}{letters[i]}{letters[i]}": n for i, n in enumerate(s["history_counts"])}


def _profile(workdir: Path, s: dict, args: argparse.Namespace, server_cores, client_cores) -> dict:
    """py-spy on our server during the fixed load (a run of its own: sampling costs CPU)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return {"error": "py-spy not installed (pip install py-spy into the venv)"}
    server = servers.start("ours", workdir, args.out, server_cores, tag="profile")
    raw = args.out / "profile-ours.txt"
    try:
        job = _job("throughput", server, s, args)
        job.update(phase="fixed", profile={"py_spy": py_spy, "output": str(raw)})
        result = run_client(job, client_cores)
    finally:
        server.stop(fast=args.quick)
    return {"raw": str(raw), "fixed_load": result.get("fixed_load"),
            "error": result.get("error"), "top": report.profile_summary(raw)}


def main(argv: list[str] | None = None) -> int:
    results = run(argv)
    errors = [f"{kind}/{name}: {value['error']}"
              for kind, scenarios in results["servers"].items()
              for name, value in scenarios.items() if isinstance(value, dict) and "error" in value]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0
