"""The project's import graph, read from the code's own import statements (lazy ones inside functions too).

A reading path needs a direction: the autograd core first, then ``ops``, then ``minception``; a module that
imports one that imports it back can only be read together with it. So:

* there is no cycle among the project's modules (``tests/`` excluded);
* the autograd core imports nothing above it (no ``ops``, no ``minception``), and ``ops`` nothing of
  ``minception``;
* no module imports another module's private name (``from x import _name``): what a module shares, it names
  publicly.

A node is a module (``ops.conv``) or a package's ``__init__`` (``ops``). ``from pkg import name`` is an edge to
``pkg.name`` when that is a module of the project, else to ``pkg``.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_LEVEL = ("autograd", "ops", "minception", "bench", "examples")


def project_modules():
    """``{module name: path}`` for every ``.py`` file of the project outside ``tests/``."""
    modules = {}
    for top in TOP_LEVEL:
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for file in sorted(files):
                if not file.endswith(".py"):
                    continue
                path = os.path.join(folder, file)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(parts)] = path
    return modules


def _is_package(path):
    return os.path.basename(path) == "__init__.py"


def imports_of(name, path, modules):
    """``[(imported module, imported names, line)]`` of module ``name``, resolved to the project's modules.

    ``bench`` and ``examples`` scripts import their siblings by plain name (they run with their folder on
    ``sys.path``), so ``import torch_models`` in ``bench/train_step.py`` is ``bench.torch_models``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    package = name if _is_package(path) else name.rpartition(".")[0]
    top = name.split(".")[0]
    found = []

    def resolve(module):
        if module in modules:
            return module
        if top in ("bench", "examples") and f"{top}.{module}" in modules:
            return f"{top}.{module}"
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.append((target, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            source = (resolve(source) or source) if source else None
            if source is None:
                continue
            names = [alias.name for alias in node.names]
            submodules = [n for n in names if f"{source}.{n}" in modules]
            for n in submodules:
                found.append((f"{source}.{n}", (), node.lineno))
            others = tuple(n for n in names if n not in submodules)
            if others and source in modules:
                found.append((source, others, node.lineno))
    return found


def import_graph():
    modules = project_modules()
    graph = {name: {} for name in modules}
    for name, path in modules.items():
        for target, names, line in imports_of(name, path, modules):
            if target != name:
                graph[name].setdefault(target, (names, line))
    return modules, graph


def strongly_connected_components(graph):
    """Tarjan's algorithm, iterative: the groups of modules that all reach one another."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _cycle_in(component, graph):
    """The shortest cycle through the component's first module (breadth-first), for the failure message."""
    members, start = set(component), component[0]
    parent, queue = {start: None}, [start]
    for node in queue:
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return [start] + path[::-1][1:] + [start] if node != start else [start, start]
            if child in members and child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")


def test_the_project_has_no_import_cycle():
    modules, graph = import_graph()
    cycles = strongly_connected_components(graph)
    report = []
    for component in cycles:
        cycle = _cycle_in(component, graph)
        steps = [f"{a} (line {graph[a][b][1]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
        report.append(f"{len(component)} modules import one another, e.g.:\n    " + "\n    ".join(steps))
    assert not cycles, "import cycles in the project:\n" + "\n".join(report)


@pytest.mark.parametrize("lower, higher", [("autograd", ("ops", "minception", "bench", "examples")),
                                           ("ops", ("minception", "bench", "examples")),
                                           ("minception", ("bench", "examples"))])
def test_lower_layers_import_nothing_above_them(lower, higher):
    modules, graph = import_graph()
    wrong = [f"{name} (line {line}) imports {target}"
             for name in sorted(graph) if name.split(".")[0] == lower
             for target, (names, line) in sorted(graph[name].items()) if target.split(".")[0] in higher]
    assert not wrong, f"{lower} must not import {', '.join(higher)}:\n  " + "\n  ".join(wrong)


def test_no_module_imports_a_private_name_of_another():
    modules, graph = import_graph()
    wrong = [f"{name} (line {line}) imports {', '.join(n for n in names if n.startswith('_'))} from {target}"
             for name in sorted(graph)
             for target, (names, line) in sorted(graph[name].items())
             if any(n.startswith("_") and not n.startswith("__") for n in names)]
    assert not wrong, "private names imported across modules:\n  " + "\n  ".join(wrong)


def test_the_graph_sees_the_imports(tmp_path):
    """The tests above would pass on an empty graph: check that the reader finds every kind of import."""
    modules, graph = import_graph()
    assert len(modules) > 100
    assert "autograd" in graph["ops.conv"]
    assert "minception.nn.module" in graph["minception.nn.conv"]
    source = tmp_path / "conv.py"
    source.write_text("import ops.shape\nfrom . import module\nfrom .module import Module, _private\n"
                      "def later():\n    from .. import nn\n")
    known = {"ops.shape": "", "minception.nn.module": "", "minception.nn": "", "minception.nn.conv": str(source)}
    found = {(target, names) for target, names, _ in imports_of("minception.nn.conv", str(source), known)}
    assert found == {("ops.shape", ()), ("minception.nn.module", ()), ("minception.nn.module", ("Module", "_private")),
                     ("minception.nn", ())}


def test_a_cycle_is_found_and_shown():
    graph = {"a": {"b": ((), 1)}, "b": {"c": ((), 2)}, "c": {"a": ((), 3)}, "d": {"a": ((), 4)}}
    components = strongly_connected_components(graph)
    assert components == [["a", "b", "c"]]
    assert _cycle_in(components[0], graph) == ["a", "b", "c", "a"]
