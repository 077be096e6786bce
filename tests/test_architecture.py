"""The layering rules of docs/architecture.md, read from the source (ast), so a change that breaks
one fails here rather than in a review."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
DOMAINS = ("customers", "billing", "delivery", "paper", "portal", "inboxes", "staff")
TOOLING = ("console.bench", "console.devtools")


def _modules(folder: Path) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(folder.rglob("*.py"))
            if "migrations/versions" not in str(path)]


def _imports(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_console_never_imports_jobs():
    """jobs/ is the top of the import graph: console/ asks for jobs by dotted name (console.outbox)."""
    offenders = [(_rel(p), name) for p, tree in _modules(CONSOLE) for name in _imports(tree)
                 if name == "jobs" or name.startswith("jobs.")]
    assert offenders == []


def test_production_code_never_imports_the_benches_or_the_devtools():
    allowed = ("console/bench/", "console/devtools/")
    offenders = []
    for path, tree in _modules(CONSOLE):
        if _rel(path).startswith(allowed):
            continue
        for name in _imports(tree):
            if name.startswith(TOOLING):
                offenders.append((_rel(path), name))
    # The two entry points that wire them in: `console bench …` commands, and `console mailin`
    # starting the demo sandbox when no relay is configured (the embedded demo only).
    assert sorted(offenders) == [("console/cli.py", "console.bench"), ("console/delivery/mailin.py", "console.devtools.sandbox")]


def test_no_bench_sandbox_or_test_mta_module_inside_a_domain_package():
    found = [_rel(p) for domain in DOMAINS for p in (CONSOLE / domain).glob("*.py")
             if any(word in p.stem for word in ("bench", "sandbox", "loopback", "postfix"))]
    assert found == []


def test_no_import_fallbacks_between_the_projects_own_modules():
    offenders = []
    for path, tree in _modules(CONSOLE) + _modules(ROOT / "jobs"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) and node.type.id in (
                "ImportError", "ModuleNotFoundError"
            ):
                offenders.append(f"{_rel(path)}:{node.lineno}")
    assert offenders == []


def test_the_environment_is_read_only_by_config():
    offenders = []
    for path, tree in _modules(CONSOLE):
        if _rel(path) == "console/config.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and (
                isinstance(node.value, ast.Name) and node.value.id == "os"
            ):
                offenders.append(f"{_rel(path)}:{node.lineno}")
    assert offenders == []


def test_jobs_are_thin():
    """Job functions: ids in, one session, one service call, commit — no queries or updates of their own."""
    for path, tree in _modules(ROOT / "jobs"):
        names = _imports(tree)
        assert not any(n.startswith("sqlalchemy") for n in names if _rel(path) != "jobs/context.py"), _rel(path)
        assert not any(n.startswith("rq") for n in names), _rel(path)
