"""The import graph of event_clip_ros, read from the source: layers point down, nothing imports in a circle,
only ros/ imports rclpy, and ``event-clip`` starts without torch.

Every import counts for the layers, also one inside a function or under ``if TYPE_CHECKING``: a lazy
import hides an arrow from the reader, not from the design.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "event_clip_ros"

#: The parts of the package and what each may import besides itself and the base modules:
#: events <- model <- apps <- ros / cli, with train beside apps (using model and events), video (pure
#: input) and sim (synthetic scenes) beside the event layer.
LAYERS: dict[str, set[str]] = {
    "events": set(),
    "sim": {"events"},
    "video": {"events"},
    "model": {"events"},
    "apps": {"events", "sim", "video", "model"},
    "train": {"events", "sim", "model"},
    "ros": {"events", "sim", "video", "model", "apps"},
    "cli": {"events", "sim", "video", "model", "apps", "ros"},
}
#: Modules at the package root that every part may use; they import nothing of the package.
BASE = {"atomic_files", "batching", "plotting"}
#: Top-level names of ROS's Python packages: rclpy, launch, ament, rosidl and the message packages.
ROS_NAMES = ("rclpy", "rosidl", "launch", "ament_index")


@dataclass(frozen=True)
class Import:
    source: str  #: the importing module, dotted
    target: str  #: the imported module or package of event_clip_ros, or a third-party top-level name
    line: int
    deferred: bool  #: inside a function or under ``if TYPE_CHECKING``: not run when the source is imported

    def __str__(self) -> str:
        where = modules()[self.source].relative_to(REPO)
        return f"{where}:{self.line}: {self.source} -> {self.target}{' (deferred)' if self.deferred else ''}"


@cache
def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(base: str, name: str) -> str:
    """``base.name`` when that is a module of the package (``from base import name``), else ``base``."""
    candidate = f"{base}.{name}"
    return candidate if candidate in modules() else base


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[Import] = []
        self._deferred = 0

    def _visit_deferred(self, node: ast.AST) -> None:
        self._deferred += 1
        self.generic_visit(node)
        self._deferred -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_deferred

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._deferred += 1
            for child in node.body:
                self.visit(child)
            self._deferred -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, target, node.lineno, self._deferred > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self._add(alias.name if top == PACKAGE else top, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if base.split(".")[0] != PACKAGE:
            self._add(base.split(".")[0], node)
            return
        for alias in node.names:
            self._add(_resolve(base, alias.name), node)


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for name, path in modules().items():
        collector = _Collector(name, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.found
    return tuple(found)


def part(module: str) -> str:
    """The part of the package a module belongs to: its subpackage or base module ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal(imported: Iterable[Import]) -> list[Import]:
    return [i for i in imported if i.target.split(".")[0] == PACKAGE]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {n for targets in edges.values() for n in targets}):
        if node not in index:
            visit(node)
    return found


def explain(members: list[str], imported: Iterable[Import]) -> str:
    inside = set(members)
    return "\n".join(dict.fromkeys(str(i) for i in imported if i.source in inside and i.target in inside))


# ------------------------------------------------------------------------------------------------ tests
def test_the_graph_reads_the_package():
    """The reader finds the modules and resolves relative, absolute and from-package imports."""
    found = {(i.source, i.target) for i in internal(imports())}
    assert len(modules()) > 100
    assert ("event_clip_ros.cli.events_cmds", "event_clip_ros.sim.glyph_scene") in found  # from ..sim.glyph_scene import x
    assert ("event_clip_ros.model", "event_clip_ros.model.factory") in found  # from .factory import x, in __init__
    assert ("event_clip_ros.ros.live_evaluation", "event_clip_ros.apps.detector") in found
    deferred = [i for i in imports() if i.source == "event_clip_ros.cli.model_cmds" and i.target == "event_clip_ros.model"]
    assert deferred and all(i.deferred for i in deferred)  # model_from_args: from ..model import ...
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layers_are_acyclic_and_cover_the_package():
    assert cycles({name: set(allowed) for name, allowed in LAYERS.items()}) == []
    parts = {part(name) for name in modules()} - {""}
    assert parts == set(LAYERS) | BASE, "a new subpackage or base module: give it its place in LAYERS or BASE"


def test_every_import_points_down():
    upward = []
    for i in internal(imports()):
        source, target = part(i.source), part(i.target)
        if source == target or target in BASE:
            continue
        if source in BASE or source == "" or target not in LAYERS.get(source, set()):
            upward.append(str(i))
    assert not upward, "imports against the layers (test/test_import_graph.py LAYERS):\n" + "\n".join(upward)


def test_no_cycle_between_subpackages():
    edges: dict[str, set[str]] = {}
    for i in internal(imports()):
        if part(i.source) != part(i.target):
            edges.setdefault(part(i.source), set()).add(part(i.target))
    assert cycles(edges) == []


def test_no_import_cycle_in_model():
    """Not even through a lazy or type-checking import (one inside a function only hides it)."""
    model = [i for i in internal(imports()) if part(i.source) == "model" and part(i.target) == "model"]
    edges: dict[str, set[str]] = {}
    for i in model:
        if i.target != i.source and not i.source.startswith(i.target + "."):  # a module's own package is loaded first
            edges.setdefault(i.source, set()).add(i.target)
    found = cycles(edges)
    assert not found, "\n\n".join(explain(c, model) for c in found)


def test_no_cycle_when_modules_are_imported():
    """What runs at import time, package ``__init__``s included, forms no cycle: importing the modules in any order works.

    Importing ``a.b.c`` runs ``a/b/__init__.py`` first unless the importer already sits inside ``a.b``.
    """
    edges: dict[str, set[str]] = {}
    run = [i for i in internal(imports()) if not i.deferred]
    for i in run:
        chain = i.target.split(".")
        for k in range(2, len(chain) + 1):
            target = ".".join(chain[:k])
            if target != i.source and not i.source.startswith(target + "."):
                edges.setdefault(i.source, set()).add(target)
    found = cycles(edges)
    assert not found, "\n\n".join(explain(c, run) for c in found)


def test_only_ros_imports_rclpy():
    outside = [str(i) for i in imports()
               if part(i.source) != "ros" and (i.target.startswith(ROS_NAMES) or i.target.endswith(("_msgs", "_interfaces")))]
    assert not outside, "only event_clip_ros/ros may import ROS packages:\n" + "\n".join(outside)


@pytest.mark.parametrize("module", ["event_clip_ros.cli"])
def test_the_cli_starts_without_torch_or_rclpy(module):
    """Why the CLI's model and ROS imports are lazy: ``event-clip --help`` and the event commands stay fast."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'open_clip', 'rclpy') if m in sys.modules))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
