"""The package imports one way: no cycle, and no module reaches into a layer above its own.

Layers, bottom up (docs/architecture.md draws them): the byte formats and shared helpers; the
command table and the master's dialect; the keyspace; the replication core; the services
(link, persistence, downstream, client session...); their trio shells and observability; the
composition root and the command line. A module may import its own layer or any below.

Checked two ways: every module imports alone in a fresh interpreter (no order-dependent
cycle hides behind another import), and the imports written in the source - module level,
inside `TYPE_CHECKING` blocks and inside functions - are read with `ast` and judged against
the layers. Module-level imports must also form no cycle.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "replproxy"

# Module name prefix -> layer; the longest matching prefix wins.
LAYERS: dict[str, int] = {
    "replproxy": 0,
    "replproxy.args": 0,
    "replproxy.errors": 0,
    "replproxy.glob": 0,
    "replproxy.speedups": 0,
    "replproxy.resp": 0,
    "replproxy.rdb": 0,
    "replproxy.config": 0,
    "replproxy.commandtable": 1,
    "replproxy.dialect": 1,
    "replproxy.replica_defaults": 1,
    "replproxy.keyspace": 2,
    "replproxy.replication": 3,
    "replproxy.disklog": 3,
    "replproxy.acl": 3,
    "replproxy.link": 4,
    "replproxy.persistence": 4,
    "replproxy.fork": 4,
    "replproxy.downstream": 4,
    "replproxy.gate": 4,
    "replproxy.probe": 4,
    "replproxy.session": 4,
    "replproxy.scripting": 4,
    "replproxy.info": 4,
    "replproxy.interfaces": 4,
    "replproxy.tls": 4,
    "replproxy.sentinel": 4,
    "replproxy.server": 5,
    "replproxy.http": 5,
    "replproxy.metrics": 5,
    "replproxy.progress": 5,
    "replproxy.startup": 5,
    "replproxy.status": 5,
    "replproxy.app": 6,
    "replproxy.cluster": 4,
    "replproxy.cluster.metrics": 5,
    "replproxy.cluster.supervisor": 6,
    "replproxy.cluster.cli": 6,
    "replproxy.families": 0,
    "replproxy.logs": 0,
    "replproxy.conffile": 6,
    "replproxy.cli": 6,
    "replproxy.options": 6,
    "replproxy.rdb.cli": 6,
    "replproxy.__main__": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{name} has no layer: add it to LAYERS in tests/test_layers.py")
    return LAYERS[best]


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


@functools.cache  # both checks read every module: parse each once
def imports_of(path: Path) -> tuple[tuple[str, int, str], ...]:
    """(imported module, line, "module" | "typing" | "function") for every replproxy import."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, int, str]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.module is None or not node.module.startswith("replproxy"):
            return []
        # `from pkg import submodule` imports the submodule; `from mod import name`, the module.
        subs = [
            f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES
        ]
        return subs if len(subs) == len(node.names) else [node.module, *subs]

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.extend(
                    (t, child.lineno, kind) for t in targets(child) if t.startswith("replproxy")
                )
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), kind)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "function")
            else:
                visit(child, kind)

    visit(tree, "module")
    return tuple(out)


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        layer_of(name)


def test_no_import_reaches_a_layer_above() -> None:
    wrong = []
    for name, path in MODULES.items():
        mine = layer_of(name)
        for target, line, kind in imports_of(path):
            if target in MODULES and layer_of(target) > mine:
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({kind} import) "
                    f"{name} [layer {mine}] -> {target} [layer {layer_of(target)}]"
                )
    assert not wrong, "imports into a layer above:\n" + "\n".join(wrong)


def test_module_level_imports_form_no_cycle() -> None:
    graph = {
        name: {
            t for t, _, kind in imports_of(path) if kind == "module" and t in MODULES and t != name
        }
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


# Imports each module named in argv[1] in a forked child of an interpreter that holds every
# module the package uses (argv[2]) but none of the package's own: each child's import of
# the package is as fresh as a new interpreter's, without paying for its start.
_FORK_IMPORTS = r"""
import importlib, os, sys, traceback
for dep in sys.argv[2].split():
    try:
        importlib.import_module(dep)
    except Exception:
        pass  # a module some other module loads on its own terms (a lazy submodule)
for m in list(sys.modules):
    if m == "replproxy" or m.startswith("replproxy."):
        sys.exit("a dependency imported replproxy itself: " + m)
failed = []
for name in sys.argv[1].split():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            importlib.import_module(name)
        except BaseException:
            os.write(w, traceback.format_exc()[-1500:].encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name + ": " + err.decode(errors="replace"))
print("\n".join(failed))
"""

# Prints every module (not the package's own) that importing the whole package loads.
_DEPENDENCIES = r"""
import importlib, sys
for name in sys.argv[1].split():
    importlib.import_module(name)
print(" ".join(m for m in sys.modules if m != "replproxy" and not m.startswith("replproxy.")
               and m != "__main__"))
"""


def test_each_module_imports_alone() -> None:
    """Each module imported first, in an interpreter where no module of the package was
    imported yet: an import that only works after another module was imported first (an
    order-dependent cycle) fails here. The interpreters are forked children of one that
    loaded only the package's dependencies."""
    names = " ".join(sorted(n for n in MODULES if n != "replproxy.__main__"))

    def run(script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            cwd=PACKAGE.parent,
            timeout=300,
            # No BLAS threads in the parent: forked children inherit none of them.
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        return done.stdout.decode()

    failed = run(_FORK_IMPORTS, names, run(_DEPENDENCIES, names)).strip()
    assert not failed, failed
