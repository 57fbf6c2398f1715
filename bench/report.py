"""The report: summary figures, the table, the latency chart and a profile digest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.servers import TITLES

KINDS = ("ours", "floor", "bare", "ours2")


def _get(results: dict, kind: str, *path: str):
    node = results["servers"].get(kind)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _integrity(scenario: dict | None) -> dict:
    totals = Counter()
    if not isinstance(scenario, dict):
        return dict(totals)
    steps = list(scenario.get("steps", []))
    if scenario.get("fixed_load"):
        steps.append(scenario["fixed_load"])
    for step in steps:
        for key in ("lost", "duplicated", "out_of_order", "id_mismatch", "delivered"):
            totals[key] += step.get(key, 0) or 0
    return dict(totals)


def summary(results: dict) -> dict:
    """The figures of the table, per server kind."""
    out: dict = {}
    for kind in results["servers"]:
        fixed = _get(results, kind, "throughput", "fixed_load") or {}
        memory = _get(results, kind, "memory") or {}
        row = {
            "cpu_us_per_delivery": fixed.get("server_cpu_us_per_delivery"),
            "fixed_load_deliveries_per_s": fixed.get("offered_deliveries_per_s"),
            "fixed_load_p99_ms": fixed.get("p99_ms"),
            "fixed_load_client_cpu_share": fixed.get("client_cpu_share"),
            "throughput_best_delivered_per_s": _get(results, kind, "throughput",
                                                    "best_delivered_per_s"),
            "fanout_largest_room": _get(results, kind, "fanout", "largest_room"),
            "memory_kib_per_connection": memory.get("kib_per_connection"),
            "memory_kib_per_idle_connection": memory.get("kib_per_idle_connection"),
            "integrity_throughput": _integrity(_get(results, kind, "throughput")),
            "integrity_fanout": _integrity(_get(results, kind, "fanout")),
        }
        for count, figures in (_get(results, kind, "history") or {}).items():
            if isinstance(figures, dict):
                row[f"history_page_p50_ms_{count}"] = figures.get("page_p50_ms")
                row[f"history_earlier_p50_ms_{count}"] = figures.get("earlier_p50_ms")
                row[f"history_search_p50_ms_{count}"] = figures.get("search_p50_ms")
        out[kind] = row
    return out


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(a, b, higher_is_better: bool = False) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return "-"
    return f"{a / b:.2f}x"


def table(results: dict) -> str:
    rows_summary = results["summary"]
    kinds = [k for k in KINDS if k in rows_summary]
    fixed_rate = results["settings"]["cpu_rate"]
    lines: list[tuple[str, ...]] = [("figure", *(TITLES[k] for k in kinds), "ours/floor")]

    def row(label: str, key: str, digits: int = 1) -> None:
        values = [rows_summary[k].get(key) for k in kinds]
        ours, floor = rows_summary.get("ours", {}).get(key), rows_summary.get("floor", {}).get(key)
        lines.append((label, *(_fmt(v, digits) for v in values), _ratio(ours, floor)))

    row(f"server CPU us per delivered message @ {fixed_rate:,}/s", "cpu_us_per_delivery")
    row(f"p99 latency ms @ {fixed_rate:,}/s", "fixed_load_p99_ms")
    row("load generator CPU share @ fixed load", "fixed_load_client_cpu_share", 2)
    row("throughput: deliveries/s (p99<=100ms, 0 lost)", "throughput_best_delivered_per_s")
    row("fan-out: largest room (95% all < 500 ms)", "fanout_largest_room")
    row("memory: KiB per connection, after traffic", "memory_kib_per_connection")
    row("memory: KiB per connection, idle (before traffic)", "memory_kib_per_idle_connection")
    for count in results["settings"]["history_counts"]:
        row(f"history {count:,} msgs: room page p50 ms", f"history_page_p50_ms_{count}", 2)
        row(f"history {count:,} msgs: load earlier p50 ms",
            f"history_earlier_p50_ms_{count}", 2)
        row(f"history {count:,} msgs: search p50 ms", f"history_search_p50_ms_{count}", 2)
    for scenario in ("throughput", "fanout"):
        values = []
        for k in kinds:
            i = rows_summary[k][f"integrity_{scenario}"]
            values.append(f"{i.get('lost', 0)}/{i.get('duplicated', 0)}/"
                          f"{i.get('out_of_order', 0)}" if i else "-")
        lines.append((f"{scenario}: lost/duplicated/out of order", *values, ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rendered = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:],
                                                                           strict=True)]
        rendered.append("| " + " | ".join(cells) + " |")
        if n == 0:
            rendered.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    machine = results["machine"]
    rendered.append(f"\nserver cores {machine['server_cores']}, load generator cores "
                    f"{machine['client_cores']} ({machine['client_processes']} process), "
                    f"deflate offered: {machine.get('deflate_offered')}, "
                    f"compression: {machine.get('compression')}, "
                    f"{machine['cpus']} CPUs; {results['elapsed_s']} s")
    return "\n".join(rendered)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for kind in KINDS:
        scenario = _get(results, kind, "throughput")
        if not isinstance(scenario, dict):
            continue
        steps = list(scenario.get("steps", []))
        if scenario.get("fixed_load"):
            steps.append(scenario["fixed_load"])
        points = sorted((s["offered_deliveries_per_s"], s["p99_ms"]) for s in steps
                        if s.get("p99_ms") is not None)
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=TITLES[kind])
    ax.axhline(results["settings"]["p99_limit_ms"], color="grey", linestyle="--",
               label="p99 limit")
    ax.set_xlabel("offered deliveries/s (messages x receivers)")
    ax.set_ylabel("p99 end-to-end latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"{results['settings']['rooms']} rooms x {results['settings']['members']} "
                 "members, open loop")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def profile_summary(raw: Path, top: int = 25) -> dict:
    """From py-spy's raw (collapsed) stacks: the functions most often on the CPU (self)
    and most often on the stack (inclusive), as shares of the samples."""
    if not raw.exists():
        return {}
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            inclusive[name] += n
    if not total:
        return {}
    return {
        "samples": total,
        "self": [(name, round(n / total, 4)) for name, n in own.most_common(top)],
        "inclusive": [(name, round(n / total, 4)) for name, n in inclusive.most_common(top * 2)],
    }


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    where = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({where})"
