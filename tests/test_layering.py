"""The import layering of ARCHITECTURE.md, enforced on the source tree (parsed with ast, nothing imported).

Library layers, lowest first: runtime < geometry < data < losses < model < evaluation < viz. A library module imports
only from its own layer or below, never a driver (train.py, eval.py, predict.py, make_knn_list.py,
common_flags.py, experiments/, bench/); no module imports itself back through a cycle. Every import counts,
also one inside a function or a ``__main__`` block.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("runtime", "geometry", "data", "losses", "model", "evaluation", "viz")
DRIVER_PACKAGES = ("experiments", "bench")
DRIVER_MODULES = ("train", "eval", "predict", "make_knn_list", "common_flags")
#: Folders that hold no project code.
SKIPPED = {"tests", "docs", "presets", "generated", "runs"}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} of every Python file of the project (not tests, not hidden folders)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in SKIPPED or any(part.startswith(".") for part in rel):
            continue
        modules[_module_name(path, root)] = path
    return modules


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """{module: {imported project module: line}} over every import statement of every project module."""
    modules = project_modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # "a.b.c" of a function c of module a.b -> a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def layer_of(module: str) -> int | None:
    """Index of the module's library layer, or None for a driver; raises for a module of no known place."""
    top = module.split(".")[0]
    if top in LAYERS:
        return LAYERS.index(top)
    if top in DRIVER_PACKAGES or top in DRIVER_MODULES:
        return None
    raise ValueError(f"{module} belongs to no layer of ARCHITECTURE.md: add it to a layer or to the drivers")


def violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every import that breaks the layering, as 'module:line -> imported (why)'."""
    found = []
    for module, edges in graph.items():
        own = layer_of(module)
        if own is None:
            continue
        for target, line in edges.items():
            other = layer_of(target)
            if other is None:
                found.append(f"{module}:{line} -> {target} (a library module imports a driver)")
            elif other > own:
                found.append(f"{module}:{line} -> {target} ({LAYERS[own]} may not import {LAYERS[other]})")
    return found


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Import cycles between modules (each found once, from its first module in sorted order)."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, {})):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_library_imports_only_its_layer_or_below_and_no_driver():
    graph = import_graph(REPO)
    assert {m.split(".")[0] for m in graph} >= set(LAYERS) | set(DRIVER_PACKAGES) | set(DRIVER_MODULES)
    assert violations(graph) == []


def test_data_imports_nothing_of_model_or_losses():
    graph = import_graph(REPO)
    arrows = [(m, t) for m, edges in graph.items() if m.split(".")[0] == "data" for t in edges
              if t.split(".")[0] in ("model", "losses")]
    assert arrows == []


def test_no_import_cycles():
    assert cycles(import_graph(REPO)) == []


#: The first statement of a CLI whose imports reach TensorFlow (runtime/quiet_tensorflow.py).
QUIET_START = "if __name__ in ('__main__', '__mp_main__'):\n    import runtime.quiet_tensorflow"


def _imports_tensorflow(path: Path) -> bool:
    return any(isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tensorflow" for a in node.names)
               or isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tensorflow"
               for node in ast.walk(ast.parse(path.read_text())))


def _is_cli(path: Path) -> bool:
    return any(isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
               for node in ast.parse(path.read_text()).body)


def test_every_cli_that_reaches_tensorflow_imports_it_quietly_first():
    """TensorFlow's start-up noise is filtered in one place (runtime/quiet_tensorflow.py), which works only
    if it imports TensorFlow before anything else does: every program whose imports reach TensorFlow has
    QUIET_START as its first statement (after the docstring and __future__ imports); one that does not reach
    it does not pay for importing it."""
    modules, graph = project_modules(REPO), import_graph(REPO)
    reaches = {}

    def reaches_tensorflow(module, seen=()):
        if module not in reaches:
            reaches[module] = _imports_tensorflow(modules[module]) or any(
                reaches_tensorflow(target, seen + (module,)) for target in graph[module] if target not in seen)
        return reaches[module]

    clis = [name for name, path in modules.items() if _is_cli(path)]
    assert {"train", "eval", "predict", "make_knn_list", "data.build", "experiments.reproduce"} <= set(clis)
    wrong = []
    for name in clis:
        body = [node for node in ast.parse(modules[name].read_text()).body
                if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
        body = body[1:] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
        quiet = ast.unparse(body[0]).startswith(QUIET_START)
        if quiet != reaches_tensorflow(name):
            wrong.append(f"{name}: {'lacks' if not quiet else 'needs no'} the quiet start")
    assert wrong == []


def test_the_checks_find_what_they_look_for(tmp_path):
    """On a small tree made to break every rule: an upward import (inside a function), a driver import, a
    cycle, and a module in no layer."""
    files = {
        "data/__init__.py": "",
        "data/reader.py": "def f():\n    from model import net\n",
        "model/__init__.py": "",
        "model/net.py": "from data import reader\nimport train\n",
        "model/a.py": "from . import b\n",
        "model/b.py": "from model.a import thing\n",
        "train.py": "from model import net\n",
        "stray.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["data.reader"] == {"model.net": 2} and graph["model.b"] == {"model.a": 1}
    with pytest.raises(ValueError, match="stray belongs to no layer"):
        violations(graph)
    del graph["stray"]
    assert violations(graph) == ["data.reader:2 -> model.net (data may not import model)",
                                 "model.net:2 -> train (a library module imports a driver)"]
    assert cycles(graph) == [["data.reader", "model.net", "data.reader"], ["model.net", "train", "model.net"],
                             ["model.a", "model.b", "model.a"]]
