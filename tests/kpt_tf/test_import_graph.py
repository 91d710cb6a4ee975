"""The import graph of kpt_tf: no cycle among its modules, counting the imports inside functions as well as the
top-level ones, and a generic module imports no plugin (importing the training loop does not import the
distillation trainer)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from tests.conftest import REPO


def modules_of(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__) for every module under `root` (the package's dir)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports anywhere in its file (top level, functions, classes).

    `from a.b import c` is an import of the module `a.b.c` when that is a module, else of `a.b`; relative imports
    are resolved. Importing `a.b.c` runs the packages `a.b` and `a` first, so those are imported too, except the
    importer's own enclosing packages (already being imported when it runs)."""
    modules = modules_of(root, package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == package)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                if origin.split(".")[0] != package:
                    continue
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    targets.add(full if full in modules else known(origin))
        enclosing = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 2)}
        for target in list(targets - {None}):
            parts = target.split(".")
            targets.update(p for p in (".".join(parts[:k]) for k in range(1, len(parts)))
                           if p in modules and p not in enclosing)
        graph[name] = targets - {None, name}
    return graph


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, each importing the next and the last the first) per strongly connected
    group of modules: empty when the graph has no cycle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:   # the shortest way back to the group's first module, through the group
        start = min(group)
        previous, queue = {start: None}, deque([start])
        while queue:
            v = queue.popleft()
            if start in graph[v]:     # v closes the cycle (no module imports itself here)
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                cycles.append(path[::-1])
                break
            for w in sorted(graph[v] & group):
                if w not in previous:
                    previous[w] = v
                    queue.append(w)
    return cycles


def test_no_import_cycle_among_kpt_tf_modules():
    graph = import_graph(REPO / "kpt_tf", "kpt_tf")
    assert {"kpt_tf.workdir", "kpt_tf.trained", "kpt_tf.models", "kpt_tf.training.loop"} <= set(graph)
    cycles = cycles_in(graph)
    assert not cycles, "import cycles in kpt_tf (imports inside functions count):\n" + "\n".join(
        " -> ".join([*cycle, cycle[0]]) for cycle in cycles)


def test_the_cycle_check_sees_function_level_relative_and_submodule_imports(tmp_path):
    """The checker itself, on a made-up package: each kind of import it must follow closes a cycle it reports."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from pkg.sub import leaf\n")
    (root / "sub" / "leaf.py").write_text("X = 1\n")
    (root / "a.py").write_text("def f():\n    from pkg import b   # inside a function\n")
    (root / "b.py").write_text("from . import c\n")
    (root / "c.py").write_text("import pkg.a\n")
    (root / "d.py").write_text("from pkg.sub.leaf import X\n")
    graph = import_graph(root, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg.sub.leaf", "pkg.sub"}      # the package the leaf lives in runs first
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}               # a package importing its own module is no cycle
    assert cycles_in(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    (root / "sub" / "leaf.py").write_text("def g():\n    from pkg import d\n")
    assert cycles_in(import_graph(root, "pkg")) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.d", "pkg.sub.leaf"]]


def test_importing_the_training_loop_does_not_import_a_plugin():
    """The loop finds trainers through their registry: importing it must not import kpt_tf.distill by name."""
    code = ("import sys\nimport kpt_tf.training.loop\n"
            "print(sorted(m for m in sys.modules if m == 'kpt_tf.distill' or m.startswith('kpt_tf.distill.')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", f"importing kpt_tf.training.loop imported {done.stdout}"
