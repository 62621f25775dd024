"""minception: layers, the Inception networks, optimizers, data, training and inspection on top of ``autograd``
and ``ops``.

    from minception import nn, models, optim, data

``autograd`` and ``ops`` are top-level packages of this project, and two popular PyPI packages use the same
import names: HIPS autograd (``pip install autograd``) and Canonical's charm framework (``pip install ops``).
Installed side by side, one overwrites or shadows the other. Importing minception therefore checks that both
names resolve to this project's packages (each carries ``__minception__ = True``) and otherwise stops with one
message saying what was found and how to fix it.
"""
import importlib as _importlib

__version__ = "0.1.0"

_SAME_NAME = {"autograd": ("HIPS autograd", "autograd"), "ops": ("Canonical's ops (the Juju charm framework)", "ops")}


def _check_own_packages():
    for name, (other, pip_name) in _SAME_NAME.items():
        module = _importlib.import_module(name)
        if getattr(module, "__minception__", False) is not True:
            found = getattr(module, "__file__", None) or getattr(module, "__path__", None) or "an unknown place"
            raise ImportError(
                f"minception needs its own top-level package {name!r}, but 'import {name}' found another package "
                f"of that name ({found}), probably {other}. minception's 'autograd' and 'ops' share their import "
                f"names with HIPS autograd and Canonical's ops, so they cannot be installed in the same environment. "
                f"Fix: install minception in a virtual environment of its own (python3 -m venv .venv && "
                f". .venv/bin/activate && pip install -e <minception folder>), or remove the other package "
                f"(pip uninstall {pip_name}) and then reinstall minception (pip install --force-reinstall -e "
                f"<minception folder>).")


_check_own_packages()

from autograd.inspect.anomaly import register_library  # noqa: E402  (after the check above)

register_library(__name__)     # layer and model code: shown below the user's line in anomaly reports
