"""The layout stays readable: in chat/ no class over 150 lines, no module over 300 and
no import cycle; under tests/ no file over 500 lines. A newcomer reads any one module in
a sitting, and follows imports one way, from the routes down to the store."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "chat"
CLASS_MAX = 150
MODULE_MAX = 300
TEST_FILE_MAX = 500


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the `chat` package."""
    modules = {}
    for path in sorted(CHAT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The `chat` modules `name` imports, anywhere in it (a function-level import too).
    A module importing its own package (a parent) is how Python loads it anyway, not a
    cycle of our making, so those edges are left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from chat import web` imports the module chat.web; `from chat.x import y`
            # imports chat.x (and y is a name in it).
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target in modules and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_in_chat_is_longer_than_300_lines():
    long = {name: n for name, path in _modules().items() if (n := _lines(path)) > MODULE_MAX}
    assert long == {}


def test_no_class_in_chat_is_longer_than_150_lines():
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > CLASS_MAX:
                    long[f"{name}.{node.name}"] = size
    assert long == {}


def test_chat_has_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycle(graph) is None


def test_the_cycle_check_finds_a_cycle():
    # The check above must be able to fail: a two-module loop is found.
    assert _cycle({"a": {"b"}, "b": {"a"}, "c": set()}) == ["a", "b", "a"]


def test_no_file_under_tests_is_longer_than_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (n := _lines(path)) > TEST_FILE_MAX
    }
    assert long == {}
