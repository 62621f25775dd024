"""The autograd core stands alone: importing it (or any inspection module) loads nothing of ``ops`` or
``minception``. Tensor's operators are ops: ``import ops`` installs them (ops/tensor_methods.py), and before that
each says so in a TypeError.

Imports are checked in a fresh interpreter (a subprocess): in this one, ops and minception are already loaded.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import autograd
import ops
from autograd import Tensor
from autograd.tensor import OP_METHODS
from ops import tensor_methods

AUTOGRAD = os.path.dirname(os.path.abspath(autograd.__file__))
ROOT = os.path.dirname(AUTOGRAD)
CORE = sorted(f"autograd.{f[:-3]}" for f in os.listdir(AUTOGRAD) if f.endswith(".py") and f != "__init__.py")
INSPECTION = sorted(f"autograd.inspect.{f[:-3]}" for f in os.listdir(os.path.join(AUTOGRAD, "inspect"))
                    if f.endswith(".py") and f != "__init__.py")


def run_fresh(code):
    """Run ``code`` in a new interpreter from the project root; returns its stdout (fails the test on an error)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def loaded_above_the_core(module):
    """The modules of ops and minception loaded by importing ``module`` alone in a fresh interpreter."""
    out = run_fresh(f"""
        import sys
        import {module}
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("ops", "minception")))
    """)
    return out.strip()


@pytest.mark.parametrize("module", ["autograd"] + CORE)
def test_importing_the_core_loads_no_ops_and_no_minception(module):
    assert loaded_above_the_core(module) == "[]"


@pytest.mark.parametrize("module", ["autograd.inspect"] + INSPECTION)
def test_inspection_modules_load_only_the_core(module):
    assert loaded_above_the_core(module) == "[]"


def test_without_ops_an_operator_says_to_import_ops():
    out = run_fresh("""
        import numpy as np
        from autograd import Tensor, backend
        backend.require_gpu = lambda: None       # as if there were a GPU: Tensor.to("cuda") then needs ops
        t = Tensor(np.ones((2, 3)), requires_grad=True)
        uses = {"add": lambda: t + t, "rmul": lambda: 2 * t, "neg": lambda: -t, "matmul": lambda: t @ t,
                "getitem": lambda: t[0], "sum": lambda: t.sum(), "reshape": lambda: t.reshape(3, 2),
                "T": lambda: t.T, "astype": lambda: t.astype("float64"), "to": lambda: t.to("cuda")}
        for name, use in uses.items():
            try:
                use()
                print(name, "no error")
            except TypeError as error:
                print(name, error)
        print("same_device", t.to("cpu") is t)
    """)
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert lines.pop("same_device") == "True"              # no op needed: the tensor itself
    assert lines["add"] == ("Tensor + Tensor: operators are installed by the ops package; "
                            "import ops (or minception) first")
    assert lines["rmul"].startswith("int * Tensor: ")
    assert lines["sum"].startswith("Tensor.sum(): ")
    assert lines["to"].startswith("Tensor.to('cuda'): ")
    for name, message in lines.items():
        assert message.endswith("import ops (or minception) first"), (name, message)
        assert len(message) <= 100, message


def test_importing_ops_installs_every_operator():
    assert set(tensor_methods.METHODS) == set(OP_METHODS)
    for name, method in tensor_methods.METHODS.items():
        assert Tensor.__dict__[name] is method, name
    a = Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    b = Tensor(np.full((2, 3), 2.0))
    y = ((a + b) * a - b / 2 + 1 - a ** 2 + (-a)).sum() + (3 * a).mean() + (a @ b.T).max() + a[1].exp().log().sum()
    y = y + a.reshape(3, 2).transpose().flatten(0).sqrt().sum() + (2 - a).relu().sum() + (1 / (a + 1)).sum()
    y.backward()
    assert a.grad.shape == (2, 3) and np.isfinite(a.grad).all()
    assert a.reshape((3, 2)).shape == (3, 2) and a.transpose(1, 0).shape == (3, 2) and a.T.shape == (3, 2)
    assert a.astype("float32").dtype == np.float32 and a.to("cpu") is a
    assert isinstance(np.ones(3) * Tensor(np.ones(3)), Tensor)       # __array_priority__: Tensor.__rmul__


def test_install_is_idempotent():
    tensor_methods.install()
    ops.tensor_methods.install()
    assert (Tensor(np.ones(2)) + 1).data.tolist() == [2.0, 2.0]
