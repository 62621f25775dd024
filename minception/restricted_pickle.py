"""Unpickle untrusted bytes: only the names the caller allows, only plain data, and nothing shared between loads.

A pickle is a program for a small stack machine. Its opcodes may import any name (GLOBAL), call what is on the
stack (REDUCE), set attributes of any object (BUILD) and hash any value into a dict or a set. ``pickle.load`` on a
file from the internet can therefore run code; PyTorch's ``.pth`` files and the CIFAR-10 batches are pickles.
``RestrictedUnpickler`` runs the same machine with these rules:

- GLOBAL gives only what the caller listed in ``names``; REDUCE calls only those objects. The caller builds
  ``names`` for each load (small functions that check their arguments), so one file cannot change what the next
  file gets: nothing a pickle can reach outlives its load.
- BUILD applies state only to objects of the types in ``build``, through the caller's function for that type.
- Dict keys must be ``str``, ``bytes``, ``int``, ``float``, ``bool`` or ``None``, and sets are refused. Hashing a
  tuple nested a million deep overflows the C stack and kills the interpreter; plain keys cannot nest.
- Opcodes that create objects of arbitrary classes (INST, OBJ, NEWOBJ, NEWOBJ_EX) or read the extension
  registry (EXT1, EXT2, EXT4) are refused.
- Whatever goes wrong while reading malformed bytes is raised as ``pickle.UnpicklingError``, never as a crash.

It is a subclass of the pure-Python unpickler (``pickle._Unpickler``) because that one keeps its opcode table
in Python, where single entries can be replaced. It is slower than the C unpickler, which does not matter for
these files: their bulk is a few long byte strings, each read in one step.

    unpickler = RestrictedUnpickler(raw, names={("collections", "OrderedDict"): make_ordered_dict})
    obj = unpickler.load()
"""
from __future__ import annotations

import io
import pickle

from minception.files.shorten import shorten

__all__ = ["RestrictedUnpickler", "describe"]

_PLAIN_KEYS = (str, bytes, int, float, bool, type(None))


def describe(value) -> str:
    """A short, bounded ``repr`` of an untrusted value, for error messages (never deep, never long), that cannot
    fail: ``reprlib`` itself raises on an integer of more than 4,300 digits (see ``minception.files.shorten``)."""
    return shorten(value)


def _refused_opcode(name, why):
    def refuse(self):
        raise pickle.UnpicklingError(f"opcode {name} is refused: {why}")
    return refuse


class RestrictedUnpickler(pickle._Unpickler):
    """Reads a pickle under the rules in the module docstring.

    Args:
        data: the pickle's bytes.
        names: ``{(module, name): object}``, the only globals the pickle may name. Build it afresh for each load.
        build: ``{type: apply(obj, state)}``: BUILD on an object of that type (or a subclass) calls ``apply``;
            BUILD on anything else is refused.
        persistent_load: ``f(pid)`` for persistent ids (opcodes PERSID, BINPERSID); None refuses them.
        encoding: how Python 2 ``str`` objects are decoded (``"bytes"`` keeps them as bytes).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data, names, build=None, persistent_load=None, encoding="ASCII"):
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._names = dict(names)
        self._build = dict(build or {})
        self._persistent_load = persistent_load

    def load(self):
        try:
            return super().load()
        except pickle.UnpicklingError:
            raise
        except EOFError:
            raise pickle.UnpicklingError("the pickle is truncated (its data ends before its STOP opcode)") from None
        except Exception as e:          # malformed bytes: any error of the machine means "not a valid pickle"
            raise pickle.UnpicklingError(f"malformed pickle ({type(e).__name__}: {e})") from e

    def find_class(self, module, name):
        try:
            return self._names[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not one of the names this "
                                         f"file type may contain") from None

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise pickle.UnpicklingError("refusing a persistent id: this file type has none")
        return self._persistent_load(pid)

    # ------------------------------------------------------------------------------ replaced opcodes ---
    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is allowed for allowed in self._names.values()):
            raise pickle.UnpicklingError(f"REDUCE may call only the allowed names, not {describe(func)}")
        if type(args) is not tuple:
            raise pickle.UnpicklingError(f"REDUCE needs a tuple of arguments, got {type(args).__name__}")
        self.stack[-1] = func(*args)

    def _load_build(self):
        state = self.stack.pop()
        obj = self.stack[-1]
        apply = next((self._build[cls] for cls in type(obj).__mro__ if cls in self._build), None)
        if apply is None:
            raise pickle.UnpicklingError(f"BUILD is refused on {type(obj).__name__} objects")
        apply(obj, state)

    def _set_items(self, target, items):
        if not isinstance(target, dict):
            raise pickle.UnpicklingError(f"SETITEM(S) needs a dict, got {type(target).__name__}")
        if len(items) % 2:
            raise pickle.UnpicklingError("SETITEMS needs key/value pairs, got an odd number of items")
        for i in range(0, len(items), 2):
            key = items[i]
            if type(key) not in _PLAIN_KEYS:
                raise pickle.UnpicklingError(f"dict keys must be plain values (str, bytes, numbers), got a "
                                             f"{type(key).__name__}")
            target[key] = items[i + 1]

    def _load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    def _load_setitems(self):
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    def _load_dict(self):
        items = self.pop_mark()
        d = {}
        self._set_items(d, items)
        self.append(d)

    def _add_to_list(self, items):
        target = self.stack[-1]
        if type(target) is not list:
            raise pickle.UnpicklingError(f"APPEND(S) needs a list, got {type(target).__name__}")
        target.extend(items)

    def _load_append(self):
        self._add_to_list([self.stack.pop()])

    def _load_appends(self):
        self._add_to_list(self.pop_mark())

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    for _op, _name in ((pickle.EMPTY_SET, "EMPTY_SET"), (pickle.ADDITEMS, "ADDITEMS"),
                       (pickle.FROZENSET, "FROZENSET")):
        dispatch[_op[0]] = _refused_opcode(_name, "sets hash their items, and no supported file holds one")
    for _op, _name in ((pickle.INST, "INST"), (pickle.OBJ, "OBJ"), (pickle.NEWOBJ, "NEWOBJ"),
                       (pickle.NEWOBJ_EX, "NEWOBJ_EX"), (pickle.EXT1, "EXT1"), (pickle.EXT2, "EXT2"),
                       (pickle.EXT4, "EXT4")):
        dispatch[_op[0]] = _refused_opcode(_name, "it creates objects of classes the file chooses")
    del _op, _name
