"""Print glfnet's import graph by layer; check that every import points down and that no
module imports itself round a circle.

    python tools/import_graph.py            # layers, edges between packages, violations
    python tools/import_graph.py --dot      # Graphviz source of the package graph

Layers, lowest first (a module may import its own layer's package or any lower layer):

    0 foundation  glfnet._version, errors, io, metrics, checkpoint, removed
    1 data        glfnet.data.*        flow sets, readers, protocols, transforms, input pipeline
    2 preprocess  glfnet.preprocess.*  faces, optical flow, media reading, preparing caches
    3 models      glfnet.models.*      networks, registry, introspection
    4 train       glfnet.config, glfnet.train.*   configuration, training, model directories
    5 eval        glfnet.eval.*, glfnet.infer     leak-free protocols, run directories; inference
                                                  (side by side: neither imports the other)
    6 report      glfnet.report.*
    7 cli         glfnet.cli.*, glfnet.__main__
    8 facade      glfnet (the package's __init__: lazy shortcuts for users, imported by nobody)

Imports inside functions count: a lazy import is still a dependency. Inside ``glfnet.cli``
only ``main`` may import the command modules (``*_cmd``); a command module imports the shared
modules of ``glfnet.cli`` (contract, messages, options, progress, steps, prepare_view), never
another command or ``main``, and the shared modules import no command.
Between modules (files) there is no circle, not even inside one package: a module that
imports a module that imports it back (directly or round a longer loop) is reported, its
circle spelled out (Tarjan's strongly connected components, SIAM J. Comput. 1972). Exit
status 1 when a rule is broken, so the test suite runs this file.
"""

from __future__ import annotations

import ast
import itertools
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

LAYERS = [
    ("foundation", [f"glfnet.{m}" for m in ("_version", "errors", "io", "metrics", "checkpoint", "removed")]),
    ("data", ["glfnet.data"]),
    ("preprocess", ["glfnet.preprocess"]),
    ("models", ["glfnet.models"]),
    ("train", ["glfnet.config", "glfnet.train"]),
    ("eval", ["glfnet.eval", "glfnet.infer"]),
    ("report", ["glfnet.report"]),
    ("cli", ["glfnet.cli", "glfnet.__main__"]),
    ("facade", ["glfnet"]),
]


def layer_of(module: str) -> tuple[int, str]:
    """(rank, prefix) of the most specific layer prefix that ``module`` falls under."""
    best = (-1, "", "")
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[2]):
                best = (rank, p, p)
    if best[0] < 0:
        raise SystemExit(f"{module}: not in any layer; add it to LAYERS in {__file__}")
    return best[0], best[1]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "glfnet").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """glfnet modules that ``name`` imports, with line numbers (``from pkg import sub``
    resolves to the submodule when there is one)."""
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "glfnet"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            if base.split(".")[0] != "glfnet":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub if sub in known else base, node.lineno))
    return found


def _is_command(module: str) -> bool:
    """A command module (``glfnet.cli.<name>_cmd``) or ``glfnet.cli.main``, which registers
    them; the other modules of ``glfnet.cli`` are the shared ones (contract, messages, ...)."""
    return module == "glfnet.cli.main" or (module.startswith("glfnet.cli.") and module.endswith("_cmd"))


def check() -> tuple[list[tuple[str, str]], list[str]]:
    mods = modules()
    edges, problems = set(), []
    graph: dict[str, dict[str, str]] = {name: {} for name in mods}  # module -> {import: where}
    for name, path in mods.items():
        rank, prefix = layer_of(name)
        for target, line in imports(name, path, set(mods)):
            if target == name:
                continue
            t_rank, t_prefix = layer_of(target)
            edges.add((prefix, t_prefix))
            where = f"{path.relative_to(SRC.parent)}:{line}"
            graph[name].setdefault(target, where)
            if t_rank > rank:
                problems.append(
                    f"{where}: {name} ({LAYERS[rank][0]}) imports {target} "
                    f"({LAYERS[t_rank][0]}), a higher layer"
                )
            elif t_rank == rank and t_prefix != prefix and LAYERS[rank][0] == "eval":
                problems.append(
                    f"{where}: {name} imports {target}: two packages of the "
                    f"{LAYERS[rank][0]} layer must not depend on each other"
                )
            elif prefix == "glfnet.cli" and name != "glfnet.cli.main" and _is_command(target):
                problems.append(
                    f"{where}: {name} imports {target}: "
                    + (
                        "command modules call the library, not each other"
                        if _is_command(name)
                        else "the shared modules of the command line import no command"
                    )
                )
    problems += [_describe(circle, graph) for circle in circles(graph)]
    return sorted(e for e in edges if e[0] != e[1]), sorted(set(problems))


def circles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One circle (a list of modules, the first repeated at the end) per group of modules
    that import each other: the strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(group, graph) for group in sorted(groups)]


def _circle(group: list[str], graph: dict[str, dict[str, str]]) -> list[str]:
    """A shortest circle through the first module of ``group`` (breadth first, inside it)."""
    start, inside = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return paths[v] + [start]
                if w in inside and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")  # a strongly connected group has one


def _describe(circle: list[str], graph: dict[str, dict[str, str]]) -> str:
    """``FILE:LINE: import circle a -> b -> a (where each import is)``."""
    wheres = [graph[a][b] for a, b in itertools.pairwise(circle)]
    return f"{wheres[0]}: import circle {' -> '.join(circle)} ({', '.join(wheres)})"


def main(argv: list[str]) -> int:
    edges, problems = check()
    if "--dot" in argv:
        print("digraph glfnet {\n  rankdir=BT;")
        print("\n".join(f'  "{a}" -> "{b}";' for a, b in edges))
        print("}")
        return 1 if problems else 0
    for rank, (label, prefixes) in enumerate(LAYERS):
        print(f"{rank} {label:<11} {', '.join(prefixes)}")
    print("\nimports between packages:")
    for a, b in edges:
        print(f"  {a} -> {b}")
    print(f"\n{len(problems)} rule(s) broken" + (":" if problems else ""))
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
