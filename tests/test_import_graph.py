"""The shape of the code: data flows api -> capability -> outbox/indexer -> chain/store.

Walks every module of ``ledger/`` and ``api/`` with ``ast`` (imports anywhere in a module,
inside functions too) and fails on an import cycle, on ``ledger`` importing ``api``, on an
import inside a function (the way cycles used to be dodged), and on the shared engine
(alliance, chain, store, contracts, outbox, indexer, runtime's workers) importing a capability
it should only be handed. The checker itself is tested on small trees that break each rule.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "api")
# Capability packages: the engine below them must not import them.
CAPABILITIES = ("ledger.merchants", "ledger.members", "ledger.points", "ledger.clearing",
                "ledger.coupons", "ledger.items", "ledger.offers", "ledger.memberships",
                "ledger.webhooks", "ledger.console")
# Shared infrastructure that knows no capability (the composition root, ledger.runtime, and
# ledger.deployment, which builds every contract's typed client, are the exceptions).
ENGINE = ("ledger.alliance", "ledger.chain", "ledger.store", "ledger.contracts",
          "ledger.worker", "ledger.errors", "ledger.settings", "ledger.crypto",
          "ledger.types", "ledger.limits", "ledger.signing", "ledger.outbox", "ledger.indexer")
# Engine packages being generalised by issue 9 (their capability imports are listed, so the
# list can only shrink): empty once the outbox and indexer take kinds and projections.
ENGINE_TO_GENERALISE: dict[str, set[str]] = {}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            out[module_name(root, path)] = path
    return out


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` in a thread of its own, tried up to three times on CPython's internal
    "AST constructor recursion depth mismatch" SystemError. CPython 3.11 counts the AST
    builder's recursion from the calling thread's recursion count and keeps the count in state
    shared by every thread; at the end of the whole suite (after tests lifted the recursion
    limit in one thread and the request guard put it back in another) a parse of an unchanged
    file failed that way once. The parse itself is deterministic; a fresh thread starts with
    a count that matches the limit."""
    text = path.read_text()

    def parse(out: list[ast.Module], errors: list[BaseException]) -> None:
        try:
            out.append(ast.parse(text, str(path)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    for attempt in range(3):
        out: list[ast.Module] = []
        errors: list[BaseException] = []
        worker = threading.Thread(target=parse, args=(out, errors))
        worker.start()
        worker.join()
        if out:
            return out[0]
        error = errors[0]
        if not (isinstance(error, SystemError) and "recursion depth mismatch" in str(error)) \
                or attempt == 2:
            raise error
    raise AssertionError("unreachable")


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of every import of a known module."""
    tree = _parse(path)
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name in known:
                        out.append((alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(name, is_package, child)
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    if sub in known:
                        out.append((sub, child.lineno, in_function))
                    elif target in known:
                        out.append((target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return out


def graph(root: Path, packages: Iterable[str] = PACKAGES
          ) -> tuple[dict[str, set[str]], list[str]]:
    """The import graph, and the imports made inside functions (as "module:line -> target")."""
    mods = modules(root, packages)
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    local: list[str] = []
    for name, path in mods.items():
        for target, line, in_function in imports_of(name, path, known):
            if target == name:
                continue
            edges[name].add(target)
            if in_function:
                local.append(f"{name}:{line} -> {target}")
    return edges, local


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path, packages: Iterable[str] = PACKAGES) -> list[str]:
    edges, local = graph(root, packages)
    out = [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    out += [f"ledger imports api: {m} -> {t}" for m, ts in edges.items() for t in sorted(ts)
            if _under(m, ["ledger"]) and _under(t, ["api"])]
    out += [f"import inside a function: {x}" for x in local]
    for m, ts in edges.items():
        if not _under(m, ENGINE):
            continue
        allowed = ENGINE_TO_GENERALISE.get(m, set())
        out += [f"engine module imports a capability: {m} -> {t}" for t in sorted(ts)
                if _under(t, CAPABILITIES) and t not in allowed]
    return out


# ---------------------------------------------------------------------- the project


def test_ledger_and_api_import_without_cycles_or_hidden_imports() -> None:
    assert violations(ROOT) == []


def test_engine_allowances_are_all_still_needed() -> None:
    """The allowances for engine modules still being generalised only shrink: one that is no
    longer used must be deleted."""
    edges, _ = graph(ROOT)
    for module, allowed in ENGINE_TO_GENERALISE.items():
        assert allowed <= edges.get(module, set()), f"{module}: drop {allowed - edges[module]}"


def test_the_alliance_imports_no_worker() -> None:
    edges, _ = graph(ROOT)
    workers = {"ledger.outbox.worker", "ledger.points.expiry", "ledger.worker", "ledger.runtime"}
    assert not edges["ledger.alliance"] & workers


def closure(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for t in edges.get(todo.pop(), set()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_the_audit_never_reaches_the_store() -> None:
    """Auditors must not have to trust the service's database: the chain audit (everything
    under ledger.audit but the service side: the drift report, which compares the store with
    the chain, auditor credentials and the operator's commands) imports nothing that opens
    it, not even indirectly."""
    edges, _ = graph(ROOT)
    service_side = ["ledger.audit.drift", "ledger.audit.service", "ledger.audit.operator_cli"]
    audit = [m for m in edges if _under(m, ["ledger.audit"]) and m not in service_side]
    assert "ledger.audit.engine" in audit and "ledger.audit.cli" in audit
    store_side = ["ledger.store", "ledger.alliance", "ledger.runtime", "ledger.terminal",
                  *service_side]
    for m in audit:
        reached = sorted(t for t in closure(edges, m) | {m}
                         if _under(t, store_side) or t.endswith(".repos"))
        assert reached == [], f"{m} reaches {reached}"


def test_every_capability_is_a_package_with_its_service() -> None:
    mods = modules(ROOT)
    for cap in CAPABILITIES:
        assert cap in mods, f"{cap} is not a package"
        assert any(m.startswith(cap + ".") for m in mods)
        assert mods[cap].read_text().strip() == "", \
            f"{cap}/__init__.py re-exports: import its submodules instead"


# ---------------------------------------------------------------------- the checker


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in {p.split("/")[0] for p in files}:
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


def test_checker_finds_a_cycle_through_relative_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "ledger/a.py": "from .b import x\n",
        "ledger/b.py": "from . import c\nx = 1\n",
        "ledger/c.py": "from ledger.a import y\n",
        "api/__init__.py": "",
    })
    assert violations(root) == ["import cycle: ledger.a <-> ledger.b <-> ledger.c"]


def test_checker_refuses_ledger_importing_api(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"ledger/a.py": "import api.app\n", "api/app.py": "x = 1\n"})
    assert violations(root) == ["ledger imports api: ledger.a -> api.app"]


def test_checker_refuses_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "ledger/a.py": "def f():\n    from .b import x\n    return x\n",
        "ledger/b.py": "x = 1\n",
        "api/__init__.py": "",
    })
    assert violations(root) == ["import inside a function: ledger.a:2 -> ledger.b"]


def test_checker_refuses_the_engine_importing_a_capability(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "ledger/alliance.py": "from .points import service\n",
        "ledger/points/service.py": "x = 1\n",
        "ledger/points/__init__.py": "",
        "api/__init__.py": "",
    })
    assert violations(root) == [
        "engine module imports a capability: ledger.alliance -> ledger.points.service"]
