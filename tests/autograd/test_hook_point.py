"""The hook point (autograd/hooks.py): what the core calls, in which order, and that the core stands alone.

The core (the modules in autograd/) imports no inspection module (autograd/inspect/); inspection modules import
the core. The core names no upper layer (no package, folder or class of ops or minception).
"""
import ast
import os
import traceback

import numpy as np
import pytest

import autograd
import ops
from autograd import Function, FunctionHook, Tensor, name_scope, no_grad
from autograd import config
from autograd.engine import iter_backward
from autograd.inspect.anomaly import _hidden, _library, register_library, user_frames

AUTOGRAD = os.path.dirname(os.path.abspath(autograd.__file__))
INSPECT = os.path.join(AUTOGRAD, "inspect")


def modules_in(folder, package):
    """{dotted module name: path} of the .py files of ``folder`` (its __init__ excluded)."""
    return {f"{package}.{f[:-3]}": os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.endswith(".py") and f != "__init__.py"}


CORE = modules_in(AUTOGRAD, "autograd")            # tensor, function, engine, config, hooks, backend, gradcheck
INSPECTION = modules_in(INSPECT, "autograd.inspect")


def imports_of(module, path):
    """Dotted names of the modules (or packages) that ``module`` imports, at any level (lazy imports too)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                           # from .engine import x; from .. import hooks
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = parent + ("." + base if base else "")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)     # from . import config: a module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def project_imports(module, path):
    """The project's modules (autograd, ops, minception; packages included) that ``module`` imports from."""
    known = set(CORE) | set(INSPECTION)
    found = set()
    for name in imports_of(module, path):
        if name in known or name.split(".")[0] in ("ops", "minception"):
            found.add(name)
        elif name.rsplit(".", 1)[0] in known:         # from .backend import f: the module autograd.backend
            found.add(name.rsplit(".", 1)[0])
    return found


def test_the_core_imports_only_the_core():
    for module, path in CORE.items():
        outside = project_imports(module, path) - set(CORE) - {"autograd"}
        assert not outside, (module, outside)


def test_inspection_imports_only_the_core_and_itself():
    for module, path in INSPECTION.items():
        outside = project_imports(module, path) - set(CORE) - set(INSPECTION) - {"autograd", "autograd.inspect"}
        assert not outside, (module, outside)


def test_the_autograd_modules_import_each_other_without_a_cycle():
    modules = {**CORE, **INSPECTION}
    graph = {m: project_imports(m, path) & set(modules) for m, path in modules.items()}
    done, on_path = set(), []

    def visit(m):
        assert m not in on_path, f"import cycle: {' -> '.join(on_path + [m])}"
        if m in done:
            return
        on_path.append(m)
        for n in graph[m]:
            visit(n)
        on_path.pop()
        done.add(m)

    for m in modules:
        visit(m)


def test_the_core_names_no_upper_layer():
    # String constants that would tie the core to a package, folder or class above it.
    upper = {"ops", "minception", "nn", "Parameter", "conv", "Conv2d", "models"}
    for module, path in {**CORE, **INSPECTION}.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value.lower() not in {u.lower() for u in upper}, (module, node.value)


# ---------------------------------------------------------------------------------------------- the calls
class Recorder(FunctionHook):
    def __init__(self):
        self.calls = []

    def forward_pre(self, fn, inputs):
        self.calls.append(("forward_pre", fn.name, fn.scope, len(inputs)))

    def forward_post(self, fn, inputs, outputs):
        self.calls.append(("forward_post", fn.name, fn.scope, len(outputs)))

    def backward_pre(self, fn, grad_outputs):
        self.calls.append(("backward_pre", fn.name, fn.scope, len(grad_outputs)))

    def backward_post(self, fn, grad_outputs, grad_inputs):
        self.calls.append(("backward_post", fn.name, fn.scope, len(grad_inputs)))

    def backward_error(self, fn, error):
        self.calls.append(("backward_error", fn.name, fn.scope, str(error)))


class Broken(Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        raise ValueError("broken backward")


def test_a_hook_sees_every_op_forward_and_backward_in_order_with_its_scope():
    x = Tensor(np.ones(3), requires_grad=True)
    with Recorder() as rec:
        with name_scope("blk"):
            y = ops.exp(x)
        y.sum().backward()
    assert rec.calls == [
        ("forward_pre", "Exp", ("blk",), 1), ("forward_post", "Exp", ("blk",), 1),
        ("forward_pre", "Sum", (), 1), ("forward_post", "Sum", (), 1),
        ("backward_pre", "Sum", (), 1), ("backward_post", "Sum", (), 1),
        ("backward_pre", "Exp", ("blk",), 1), ("backward_post", "Exp", ("blk",), 1),
    ]
    assert rec not in autograd.hooks.active_function_hooks()


def test_backward_error_is_shown_to_every_hook_then_the_error_propagates():
    first, second = Recorder(), Recorder()
    x = Tensor(np.ones(2), requires_grad=True)
    with first, second:
        with name_scope("head"):
            y = Broken()(x)
        with pytest.raises(ValueError, match="broken backward"):
            y.sum().backward()
    for rec in (first, second):
        assert rec.calls[-1] == ("backward_error", "Broken", ("head",), "broken backward")
        assert ("backward_post", "Broken", ("head",), 1) not in rec.calls


def test_iter_backward_pauses_after_each_op_with_its_gradients():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    steps = iter_backward(y)
    fn, gys, gxs = next(steps)
    assert fn.name == "Sum" and gys[0] == 1.0 and x.grad is None     # nothing reached the leaf yet
    fn, gys, gxs = next(steps)
    assert fn.name == "Mul" and np.allclose(gxs[0], [1.0, 2.0])
    assert np.allclose(x.grad, [2.0, 4.0])                            # Mul sends x * g twice: summed
    assert next(steps, None) is None


# ---------------------------------------------------------------------------------------------- name scopes
def test_name_scope_nests_restores_on_error_and_none_adds_nothing():
    with name_scope("a"):
        with name_scope(None):
            assert config.current_scope() == "a"
        with pytest.raises(RuntimeError):
            with name_scope("b"):
                assert config.current_scope() == "a.b"
                raise RuntimeError
        assert config.state.scope == ("a",)
        y = ops.relu(Tensor(np.ones(2), requires_grad=True))
    assert config.state.scope == ()
    assert y.creator.scope == ("a",)


def test_scope_is_recorded_without_grad_too():
    seen = Recorder()
    with seen, no_grad(), name_scope("eval"):
        ops.relu(Tensor(np.ones(2)))
    assert seen.calls[0][2] == ("eval",)


# ---------------------------------------------------------------------------------------------- library code
def test_a_package_declares_its_frames_library_code(tmp_path, monkeypatch):
    pkg = tmp_path / "mylib"
    (pkg / "layers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "layers" / "__init__.py").write_text("")
    (pkg / "wrappers.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("autograd.inspect.anomaly._library", list(_library))
    monkeypatch.setattr("autograd.inspect.anomaly._hidden", list(_hidden))
    import mylib.layers
    import mylib.wrappers
    frames = traceback.StackSummary.from_list([
        ("/home/me/helpers.py", 5, "build", "net(x)"),
        ("/home/me/train.py", 42, "<module>", "loss = model(x)"),
        (str(pkg / "layers" / "block.py"), 7, "forward", "return wrap(x)"),
        (str(pkg / "wrappers.py"), 3, "wrap", "return Op()(x)"),
        (os.path.join(AUTOGRAD, "function.py"), 60, "__call__", "ys = self.forward(*xs)"),
    ])

    def shown():
        return [(os.path.basename(f.filename), f.lineno) for f in user_frames(frames)]

    assert shown()[-2:] == [("block.py", 7), ("wrappers.py", 3)]        # undeclared: all of it is "your code"
    register_library("mylib")                                           # the package: shown as library code
    register_library("mylib.wrappers", hide=True)                       # one file of it: plumbing, hidden
    assert shown() == [("helpers.py", 5), ("train.py", 42), ("block.py", 7)]
    register_library("mylib")                                           # declaring twice changes nothing
    assert shown() == [("helpers.py", 5), ("train.py", 42), ("block.py", 7)]
    with pytest.raises(ValueError, match="not an imported module"):
        register_library("mylib.never_imported")
