"""Check analytic gradients against central finite differences, in float64.

For a function ``f`` with outputs ``y_k`` we draw a random upstream gradient ``v_k`` (never all ones: a sum of
batch-normalised outputs is constant, and an all-ones check of batch norm passes whatever its backward does) and
compare two ways of getting the gradient of the scalar ``L = sum_k <y_k, v_k>``:

* analytic: one ``backward`` with the ``v_k`` as seeds;
* numeric: ``(L(x + eps*e) - L(x - eps*e)) / (2*eps)`` for a perturbation ``e``.

``e`` is each single element in turn (the full Jacobian-vector check; exact, for small inputs) or a few random
unit directions over all inputs at once (the directional check; two forward passes per direction, for whole
networks). An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.

The ``v_k`` come from ``SEED``, a fixed constant (so a failure reproduces) that no one types by hand: with seed 0,
a student's input drawn with ``default_rng(0)`` was *equal* to the upstream gradient of the same shape, and such a
check can pass a wrong backward (for batch norm, ``<y, x>`` is nearly constant). An upstream gradient equal to a
checked tensor is redrawn all the same.

A failure report names each tensor by its ``name`` (``Tensor(..., name="x")``, a ``names=`` entry or a
parameter's path; "input 0" only for an unnamed one), covers every tensor that fails, and prints the positions
that disagree: how many, the worst, and the first few with their analytic and numeric values.
"""
import numpy as np

from . import config
from .backend import get_array_module, to_numpy
from .engine import backward
from .tensor import Tensor

#: the default seed of the upstream gradient and of the directions: a constant, so that a failing check fails
#: again; a large one, so that it is not the 0, 1 or 42 a student draws their inputs with.
SEED = 0x5EED_9AD_C4EC

SHOWN = 6          # wrong positions printed per tensor
WIDTH = 100        # the report's lines fit this many columns


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree; the message is the full report."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, params=(), mode="auto",
              max_full_elements=4096, n_directions=3, seed=None, names=None):
    """Compare the backward of ``fn`` with finite differences.

    Args:
        fn: called as ``fn(*inputs)``; returns a Tensor or a tuple of Tensors.
        inputs: Tensors (those with ``requires_grad=True`` are checked) or arrays (constants).
        params: further tensors ``fn`` uses (for example a model's parameters), checked too. Either tensors or
            ``(name, tensor)`` pairs; names appear in the report.
        mode: "full" checks every element, "directional" checks random directions, "auto" picks "full" when
            the checked tensors hold at most ``max_full_elements`` numbers in all.
        n_directions: directions tried in directional mode.
        seed: seeds the upstream gradient and the directions; None uses ``SEED`` (see the module docstring).
        names: the inputs' names in the report, one per input (None or a missing entry: the tensor's ``name``,
            else "input i").

    Returns:
        True. Raises ``GradcheckError`` with a report of every tensor that fails on failure, and ``TypeError``
        when a checked tensor is not float64 (finite differences in float32 are too coarse to mean anything).
    """
    names = list(names or ())
    named = [(_label(names[i] if i < len(names) else None, t, f"input {i}"), t)
             for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i, p in enumerate(params):
        name, t = p if isinstance(p, tuple) else (None, p)
        if t.requires_grad:
            named.append((_label(name, t, f"param {i}"), t))
    if not named:
        raise ValueError("gradcheck: no input or parameter has requires_grad=True, so there is nothing to check")
    for name, t in named:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: {name} (shape {t.shape}) is {t.dtype}; finite differences need float64\n"
                            f"  inputs and parameters: convert with .astype('float64') or build the model in "
                            f"float64")
    for _, t in named:                       # perturb private copies, never a view shared with something else
        t.data = t.data.copy()
    rng = np.random.default_rng(SEED if seed is None else seed)

    outputs = _as_tuple(fn(*inputs))
    upstream = [_upstream_like(rng, y.data, [t.data for _, t in named]) for y in outputs]
    saved_grads = [t.grad for _, t in named]
    for _, t in named:
        t.grad = None
    differentiable = [(y, v) for y, v in zip(outputs, upstream) if y.requires_grad]
    if not differentiable:
        raise GradcheckError("gradcheck: no output of fn depends on a checked tensor (outputs do not require grad)")
    backward([y for y, _ in differentiable], [v for _, v in differentiable])
    reached = [t.grad is not None for _, t in named]
    analytic = [t.grad if t.grad is not None else get_array_module(t.data).zeros_like(t.data) for _, t in named]
    for (_, t), g in zip(named, saved_grads):
        t.grad = g

    def objective():
        with config.no_grad():
            ys = _as_tuple(fn(*inputs))
        return sum(float((y.data * v).sum()) for y, v in zip(ys, upstream))

    total = sum(t.size for _, t in named)
    if mode == "auto":
        mode = "full" if total <= max_full_elements else "directional"
    if mode == "full":
        _check_full(named, analytic, reached, objective, eps, atol, rtol)
    elif mode == "directional":
        _check_directions(named, analytic, objective, eps, atol, rtol, n_directions, rng)
    else:
        raise ValueError(f"gradcheck: mode must be 'auto', 'full' or 'directional', got {mode!r}")
    return True


def numerical_gradient(objective, array, eps=1e-6):
    """``d objective / d array`` by central differences, one element at a time: a float64 array of ``array``'s shape.

    ``objective()`` returns a float computed from ``array``, which is perturbed in place, element by element, and
    put back: ``(objective(x + eps*e_i) - objective(x - eps*e_i)) / (2*eps)``. Two calls per element, so keep
    ``array`` small. (The grader of ``minception.course`` and the students' public tests use it too.)
    """
    numeric = np.empty(array.shape)
    for i in np.ndindex(array.shape):
        original = float(array[i])
        array[i] = original + eps
        plus = objective()
        array[i] = original - eps
        minus = objective()
        array[i] = original
        numeric[i] = (plus - minus) / (2 * eps)
    return numeric


def _label(name, t, fallback):
    return name or t.name or fallback


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def _upstream_like(rng, array, avoid):
    """A standard normal array of ``array``'s shape and dtype, never equal to one of the ``avoid`` arrays."""
    xp = get_array_module(array)
    while True:
        v = xp.asarray(rng.standard_normal(array.shape)).astype(array.dtype)
        if array.size == 0 or not any(a.shape == v.shape and bool((a == v).all()) for a in avoid):
            return v


def _check_full(named, analytic, reached, objective, eps, atol, rtol):
    failures, passed = [], []
    for (name, t), g, got in zip(named, analytic, reached):
        numeric = numerical_gradient(objective, t.data, eps)
        ana = to_numpy(g).astype(np.float64)
        error = np.abs(ana - numeric)
        allowed = atol + rtol * np.abs(numeric)
        if (error > allowed).any():
            failures.append(_tensor_report(name, t.shape, ana, numeric, error, allowed, got))
        else:
            passed.append(name)
    if failures:
        head = (f"gradcheck failed for {len(failures)} of {len(named)} checked tensors "
                f"(pass: |analytic - numeric| <= atol + rtol * |numeric|)\n"
                f"  tolerances: eps={eps:g}, atol={atol:g}, rtol={rtol:g}")
        tail = [_fit("  passed: " + ", ".join(passed))] if passed else []
        raise GradcheckError("\n".join([head, *failures, *tail]))


def _tensor_report(name, shape, ana, numeric, error, allowed, reached):
    """The lines about one failing tensor: how many positions disagree, the worst, the first few, a hint."""
    wrong = error > allowed
    positions = np.argwhere(wrong)                         # in row-major order
    worst = np.unravel_index(np.argmax(error - allowed), shape)
    lines = [f"  {name} (shape {tuple(shape)}): {len(positions)} of {ana.size} elements disagree; "
             f"max |difference| {error.max():.3g}",
             f"    worst element {_where(worst)}: analytic {ana[worst]:.10g}, numeric {numeric[worst]:.10g}",
             f"      |difference| {error[worst]:.3g} > allowed {allowed[worst]:.3g}"]
    first = [tuple(int(i) for i in p) for p in positions[:SHOWN]]
    lines.append(f"    first wrong positions ({len(first)} of {len(positions)}):")
    lines += [f"      {_where(p)}: analytic {ana[p]:+.8e}  numeric {numeric[p]:+.8e}" for p in first]
    hint = _hint(ana[wrong], numeric[wrong], ana.size, reached)
    if hint:
        lines += ("    " + hint).split("\n")
    return "\n".join(_fit(line) for line in lines)


def _where(position):
    return "at ()" if not position else "at (" + ", ".join(str(int(i)) for i in position) + ")"


def _hint(ana, numeric, size, reached):
    """A pattern in the wrong positions that points at a cause, or ''."""
    if not reached:
        return "no gradient reached this tensor (its .grad stayed None): is it used? did backward return None?"
    if not ana.any():
        return "the analytic gradient is 0 at every wrong position: a gradient never written there?"
    if numeric.all():
        ratio = ana / numeric
        if np.allclose(ratio, ratio[0], rtol=1e-3):
            return f"analytic / numeric = {ratio[0]:.6g} at every wrong position: a wrong constant factor?"
    if ana.size < size // 2 and ana.all():
        return ("only some positions are wrong, the rest agree: contributions overwritten (= where += is needed,\n"
                "    as where pooling windows overlap)? or an edge case: borders, padding, ties?")
    return ""


def _fit(line, width=WIDTH):
    """``line`` cut to ``width`` columns, its end replaced by '...' when it is longer."""
    return line if len(line) <= width else line[:width - 3] + "..."


def _directional(named, analytic, objective, eps, direction):
    originals = [t.data.copy() for _, t in named]
    for (_, t), d in zip(named, direction):
        t.data[...] = t.data + eps * d
    plus = objective()
    for (_, t), d, o in zip(named, direction, originals):
        t.data[...] = o - eps * d
    minus = objective()
    for (_, t), o in zip(named, originals):
        t.data[...] = o
    numeric = (plus - minus) / (2 * eps)
    predicted = sum(float((to_numpy(g).astype(np.float64) * to_numpy(d)).sum()) for g, d in zip(analytic, direction))
    return numeric, predicted


def _check_directions(named, analytic, objective, eps, atol, rtol, n_directions, rng):
    xp = get_array_module(named[0][1].data)
    for k in range(n_directions):
        direction = [rng.standard_normal(t.shape) for _, t in named]
        norm = np.sqrt(sum(float((d * d).sum()) for d in direction))
        direction = [xp.asarray(d / norm) for d in direction]
        numeric, predicted = _directional(named, analytic, objective, eps, direction)
        if abs(numeric - predicted) > atol + rtol * abs(numeric):
            rows = []
            for j, (name, t) in enumerate(named):   # find which tensors disagree on their own
                only = [d if i == j else xp.zeros_like(d) for i, d in enumerate(direction)]
                n_j, p_j = _directional(named, analytic, objective, eps, only)
                rows.append((name, str(tuple(t.shape)), n_j, p_j, abs(n_j - p_j) > atol + rtol * abs(n_j)))
            shape_w = max(len(r[1]) for r in rows)
            name_w = max(8, min(max(len(r[0]) for r in rows), WIDTH - 66 - shape_w))
            lines = [f"    {_fit_left(name, name_w):<{name_w}s}  {shape:<{shape_w}s}  numeric {n_j:+.6e}  "
                     f"analytic {p_j:+.6e}  {'MISMATCH' if bad else 'ok'}" for name, shape, n_j, p_j, bad in rows]
            bad = sum(r[4] for r in rows)
            raise GradcheckError(
                f"directional gradcheck failed on direction {k}: numeric {numeric:.10g}, analytic {predicted:.10g}\n"
                f"  |difference| {abs(numeric - predicted):.3g} > allowed {atol + rtol * abs(numeric):.3g} "
                f"(eps={eps:g}, atol={atol:g}, rtol={rtol:g})\n"
                f"  per tensor, along the same direction ({bad} of {len(rows)} disagree on their own):\n"
                + "\n".join(lines))


def _fit_left(name, width):
    """``name`` cut to ``width`` columns from the left ('...' + its end: a parameter path ends in what it is)."""
    return name if len(name) <= width else "..." + name[len(name) - width + 3:]
