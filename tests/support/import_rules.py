"""The layering rules of the source tree, checked from the import statements alone.

Every `import` and `from ... import` counts, including those inside functions (a lazy import
is still a dependency). The rules are the ones `docs/architecture.md` states: the domain
(`monitor`) never imports the DICOM adapter; the stages of `dicom_node` import only stages
upstream of them and the shared leaves; no stage imports the demo, the synthetic data
generators or a command line; and no two modules import each other, directly or round a loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STAGES = (
    "receive",
    "assemble",
    "queue",
    "outputs",
    "deliver",
    "release",
    "priors",
    "process",
    "service",
    "web",
)
"""`dicom_node` stages in import order: each may import only those before it."""

FENCED = ("dicom_node.demo", "dicom_node.synthetic", "dicom_node.cli", "monitor.cli")
"""Imported by no stage: demo and test-data generators, and the command lines."""


@dataclass(frozen=True)
class ImportEdge:
    """`source` (a module) imports `target` (a module or package) at `line`."""

    source: str
    target: str
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(
    root: Path, packages: tuple[str, ...] = ("monitor", "dicom_node")
) -> dict[str, Path]:
    """Every module (and package `__init__`) under `root/<package>`, by dotted name."""
    return {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def import_edges(root: Path) -> list[ImportEdge]:
    """Every import of one of our modules, by every one of our modules.

    `from pkg import name` imports the submodule `pkg.name` when there is one, else the
    package `pkg` itself: importing a submodule does not depend on what its package
    re-exports, so a package's `__init__` and its submodules do not form a false cycle.
    """
    modules = source_modules(root)
    edges = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, source, is_package, modules):
                edges.append(ImportEdge(source, target, node.lineno))
    return edges


def _targets(
    node: ast.AST, source: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in modules)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = source.split(".")
            anchor = parts[: len(parts) - node.level + is_package]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in modules:
                yield submodule
            elif base in modules:
                yield base


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "dicom_node" and len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    """Plain sentences, one per broken rule; empty when the tree keeps them all."""
    edges = import_edges(root)
    found = []
    for edge in edges:
        where = f"{edge.source} (line {edge.line}) imports {edge.target}"
        source_stage, target_stage = stage_of(edge.source), stage_of(edge.target)
        if _within(edge.source, "monitor") and _within(edge.target, "dicom_node"):
            found.append(f"domain imports the DICOM adapter: {where}")
        if source_stage and any(_within(edge.target, fenced) for fenced in FENCED):
            found.append(f"stage {source_stage} imports demo, synthetic or CLI code: {where}")
        if (
            source_stage
            and target_stage
            and STAGES.index(target_stage) > STAGES.index(source_stage)
        ):
            found.append(f"stage {source_stage} imports downstream stage {target_stage}: {where}")
        if _is_shared_leaf(edge.source) and (target_stage or _fenced(edge.target)):
            found.append(f"shared leaf imports a stage: {where}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in import_cycles(edges)]
    return found


def _is_shared_leaf(module: str) -> bool:
    """A top-level module of `dicom_node` (db, files, ...), not a stage, the demo or the CLI."""
    parts = module.split(".")
    return (
        len(parts) == 2
        and parts[0] == "dicom_node"
        and not stage_of(module)
        and not _fenced(module)
    )


def _fenced(module: str) -> bool:
    return any(_within(module, fenced) for fenced in FENCED)


def import_cycles(edges: list[ImportEdge]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), closed on its first module."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.target != edge.source and not edge.source.startswith(edge.target + "."):
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group) + [sorted(group)[0]])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups
