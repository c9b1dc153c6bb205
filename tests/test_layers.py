"""The package's shape, read from its imports (ast, brute force; nothing of gdyn is imported).

docs/architecture.md promises: dependencies point down the layer order only; gdyn imports
sit at the top of a module except the CLI's lazy stage imports and the ``.plot()`` methods'
panels; no import cycle between modules (``TYPE_CHECKING`` imports count: a reader follows
them too); each subpackage exports exactly what other packages use (and no more than
:data:`MAX_EXPORTS` names in all), other packages import its names from the package, and no
exported name hides a submodule of the same name. Each test fails with the offending
import, so a change that breaks a rule names the line to fix.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# docs/architecture.md, "Import order": a unit may import only units before it (and itself).
# "api" is gdyn/__init__.py (it names its stages as strings, imported lazily).
LAYERS = [
    "errors", "settings", "layout", "files", "cells", "trajectory", "states", "split", "temperatures", "models", "config",
    "download", "importers", "toy", "graph", "train", "koopman", "analysis", "export", "plots",
    "compare", "api", "cli",
]  # fmt: skip
MAX_EXPORTS = 100
# Torch modules behind the standard-library-only model registry (gdyn.models.__init__ must
# not import them): gdyn.train imports them directly.
REACH_IN_ALLOWED = {"gdyn.models.gdynet", "gdyn.models.vamp", "gdyn.models.vampnet"}


def _module_files() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "gdyn").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _module_files()
PACKAGES = {m for m, p in MODULES.items() if p.name == "__init__.py" and m != "gdyn"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return "api" if len(parts) == 1 else parts[1]


class Import:
    """One imported name: where, what, and how (``lazy``: inside a function)."""

    def __init__(self, source: str, target: str, name: str | None, line: int, lazy: bool,
                 function: str | None) -> None:  # fmt: skip
        self.source, self.target, self.name = source, target, name
        self.line, self.lazy, self.function = line, lazy, function

    def __repr__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{MODULES[self.source].relative_to(ROOT)}:{self.line} imports {what}"


def _imports(module: str) -> list[Import]:
    """Every gdyn import of ``module``; ``from P import X`` with X a submodule of P is an
    import of ``P.X``."""
    tree = ast.parse(MODULES[module].read_text())
    base = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Import):
                out.extend(Import(module, a.name, None, child.lineno, function is not None,
                                  function) for a in child.names if a.name.startswith("gdyn"))
            elif isinstance(child, ast.ImportFrom):
                target = child.module or ""
                if child.level:
                    target = ".".join([*base.split(".")[: len(base.split(".")) - child.level + 1],
                                       *([target] if target else [])])  # fmt: skip
                if target.startswith("gdyn"):
                    for a in child.names:
                        sub = f"{target}.{a.name}"
                        if sub in MODULES:
                            out.append(Import(module, sub, None, child.lineno,
                                              function is not None, function))
                        else:
                            out.append(Import(module, target, a.name, child.lineno,
                                              function is not None, function))
            visit(child, inner)

    visit(tree, None)
    return out


IMPORTS = {m: _imports(m) for m in MODULES}


def _lazy_allowed(imp: Import) -> bool:
    """The documented exceptions to "gdyn imports at the top of the module"."""
    if _unit(imp.source) == "cli":
        return True  # command functions import their stage lazily (gdyn --help stays fast)
    return imp.function == "plot" and imp.target == "gdyn.plots"  # the API's .plot()


def test_imports_follow_the_layer_order() -> None:
    rank = {u: i for i, u in enumerate(LAYERS)}
    assert {_unit(m) for m in MODULES} <= set(rank), "a new unit: place it in LAYERS and the doc"
    bad = [
        imp for imports in IMPORTS.values() for imp in imports
        if rank[_unit(imp.target)] > rank[_unit(imp.source)]
        and not (imp.lazy and _lazy_allowed(imp))
    ]  # fmt: skip
    # The public API names its stages as strings (PEP 562 lazy imports): same rule.
    api = ast.literal_eval(
        re.search(r"_API: dict\[str, str\] = (\{.*?\})", MODULES["gdyn"].read_text(), re.S)[1]
    )
    bad += [f"gdyn._API[{k!r}] = {v!r}" for k, v in api.items()
            if rank[_unit(v)] >= rank["api"]]  # fmt: skip
    assert not bad, "imports against the layer order of docs/architecture.md:\n" + "\n".join(
        map(repr, bad)
    )


def test_gdyn_imports_sit_at_the_top_of_the_module() -> None:
    bad = [imp for imports in IMPORTS.values() for imp in imports
           if imp.lazy and not _lazy_allowed(imp)]  # fmt: skip
    assert not bad, "function-local gdyn imports hide the dependency:\n" + "\n".join(map(repr, bad))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle through its smallest node, found by brute-force DFS."""
    found: list[list[str]] = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append(path)
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert sorted(map(tuple, _cycles(graph))) == [("a", "b", "c"), ("d",)]


def test_no_import_cycles() -> None:
    # Edges between modules, TYPE_CHECKING and function-local imports included; an import
    # of a name from a package is an edge to its __init__.
    graph = {m: {imp.target for imp in imports if imp.target != m}
             for m, imports in IMPORTS.items()}  # fmt: skip
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def _all(package: str) -> list[str]:
    tree = ast.parse(MODULES[package].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


def _outside_uses() -> dict[str, set[str]]:
    """Names other packages, the API, docs/tutorial.py and the workflow take from each
    subpackage itself (tests, benchmarks and scripts import from the defining module)."""
    used: dict[str, set[str]] = defaultdict(set)
    for m, imports in IMPORTS.items():
        for imp in imports:
            if imp.target in PACKAGES and imp.name and _unit(imp.target) != _unit(m):
                used[imp.target].add(imp.name)
    api = re.search(r"_API: dict\[str, str\] = (\{.*?\})", MODULES["gdyn"].read_text(), re.S)
    for name, target in ast.literal_eval(api[1]).items():
        used[target].add(name)
    # Text of the workflow and the tutorial: ``from gdyn.P import a, b``, and ``alias.name``
    # for ``from gdyn import P as alias`` / ``import gdyn.P as alias`` / ``gdyn.P.name``.
    texts = [ROOT / "Snakefile", ROOT / "docs" / "tutorial.py",
             *sorted((ROOT / "workflow").rglob("*.smk")),
             *sorted((ROOT / "workflow").rglob("*.py"))]  # fmt: skip
    # Rule files share the Snakefile's namespace (common.smk's aliases hold in figures.smk).
    code = "\n".join(
        line.split("#", 1)[0]
        for path in texts if path.exists() for line in path.read_text().splitlines()
    )  # fmt: skip
    for pkg, *names in re.findall(r"from (gdyn\.\w+) import (?:\(([\w\s,]+)\)|([\w ,]+))", code):
        if pkg in PACKAGES:
            names = ",".join(names)
            used[pkg].update(n.split(" as ")[0].strip() for n in names.split(",") if n.strip())
    aliases = {f"gdyn.{p}": f"gdyn.{p}" for p in (x.split(".")[1] for x in PACKAGES)}
    for p, a in re.findall(r"from gdyn import (\w+) as (\w+)", code):
        aliases[a] = f"gdyn.{p}"
    for p in re.findall(r"from gdyn import (\w+)\s*$", code, re.M):
        aliases[p] = f"gdyn.{p}"
    for p, a in re.findall(r"import (gdyn\.\w+) as (\w+)", code):
        aliases[a] = p
    for alias, pkg in aliases.items():
        if pkg in PACKAGES:
            used[pkg].update(re.findall(rf"(?<![\w./]){re.escape(alias)}\.(\w+)", code))
    for pkg in list(used):
        used[pkg] -= {m.rpartition(".")[2] for m in MODULES if m.startswith(pkg + ".")}
    return used


def test_subpackages_export_what_other_packages_use() -> None:
    used = _outside_uses()
    total = 0
    for pkg in sorted(PACKAGES):
        exported = set(_all(pkg))
        total += len(exported)
        assert used[pkg] <= exported, f"{pkg}: used from outside but not in __all__: " + str(
            sorted(used[pkg] - exported)
        )
        assert exported <= used[pkg], (
            f"{pkg}: exported but used by no other package (import it from its module in "
            f"tests): {sorted(exported - used[pkg])}"
        )
    assert total <= MAX_EXPORTS, f"{total} names exported by the subpackages"


def test_other_packages_import_a_subpackage_through_its_exports() -> None:
    bad = [
        imp for m, imports in IMPORTS.items() for imp in imports
        if _unit(imp.target) != _unit(m) and imp.target not in PACKAGES
        and imp.target.count(".") >= 2 and imp.target not in REACH_IN_ALLOWED
    ]  # fmt: skip
    assert not bad, "imports that reach into another package's modules:\n" + "\n".join(
        map(repr, bad)
    )


def test_no_exported_name_hides_a_submodule() -> None:
    for pkg in sorted(PACKAGES):
        submodules = {m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == pkg}
        bound = {imp.name for imp in IMPORTS[pkg] if imp.name} | set(_all(pkg))
        assert not bound & submodules, f"{pkg}: names that hide a submodule: {bound & submodules}"
