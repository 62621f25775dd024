"""Check analytic gradients against central finite differences, in float64.

For a function ``f`` with outputs ``y_k`` we draw a random upstream gradient ``v_k`` (never all ones: a sum of
batch-normalised outputs is constant, and an all-ones check of batch norm passes whatever its backward does) and
compare two ways of getting the gradient of the scalar ``L = sum_k <y_k, v_k>``:

* analytic: one ``backward`` with the ``v_k`` as seeds;
* numeric: ``(L(x + eps*e) - L(x - eps*e)) / (2*eps)`` for a perturbation ``e``.

``e`` is each single element in turn (the full Jacobian-vector check; exact, for small inputs) or a few random
unit directions over all inputs at once (the directional check; two forward passes per direction, for whole
networks). An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
"""
import numpy as np

from . import config
from .backend import get_array_module, to_numpy
from .engine import backward
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree; the message is the full report."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, params=(), mode="auto",
              max_full_elements=4096, n_directions=3, seed=0):
    """Compare the backward of ``fn`` with finite differences.

    Args:
        fn: called as ``fn(*inputs)``; returns a Tensor or a tuple of Tensors.
        inputs: Tensors (those with ``requires_grad=True`` are checked) or arrays (constants).
        params: further tensors ``fn`` uses (for example a model's parameters), checked too. Either tensors or
            ``(name, tensor)`` pairs; names appear in the report.
        mode: "full" checks every element, "directional" checks random directions, "auto" picks "full" when
            the checked tensors hold at most ``max_full_elements`` numbers in all.
        n_directions: directions tried in directional mode.
        seed: seeds the upstream gradient and the directions.

    Returns:
        True. Raises ``GradcheckError`` with a report naming the worst element on failure, and ``TypeError``
        when a checked tensor is not float64 (finite differences in float32 are too coarse to mean anything).
    """
    named = [(f"input {i}", t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i, p in enumerate(params):
        name, t = p if isinstance(p, tuple) else (f"param {i}", p)
        if t.requires_grad:
            named.append((name, t))
    if not named:
        raise ValueError("gradcheck: no input or parameter has requires_grad=True, so there is nothing to check")
    for name, t in named:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: {name} (shape {t.shape}) is {t.dtype}; finite differences need float64 "
                            f"inputs and parameters: convert with .astype('float64') or build the model in float64")
    for _, t in named:                       # perturb private copies, never a view shared with something else
        t.data = t.data.copy()
    rng = np.random.default_rng(seed)

    outputs = _as_tuple(fn(*inputs))
    upstream = [_randn_like(rng, y.data) for y in outputs]
    saved_grads = [t.grad for _, t in named]
    for _, t in named:
        t.grad = None
    differentiable = [(y, v) for y, v in zip(outputs, upstream) if y.requires_grad]
    if not differentiable:
        raise GradcheckError("gradcheck: no output of fn depends on a checked tensor (outputs do not require grad)")
    backward([y for y, _ in differentiable], [v for _, v in differentiable])
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
        _check_full(named, analytic, objective, eps, atol, rtol)
    elif mode == "directional":
        _check_directions(named, analytic, objective, eps, atol, rtol, n_directions, rng)
    else:
        raise ValueError(f"gradcheck: mode must be 'auto', 'full' or 'directional', got {mode!r}")
    return True


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def _randn_like(rng, array):
    xp = get_array_module(array)
    return xp.asarray(rng.standard_normal(array.shape)).astype(array.dtype)


def _check_full(named, analytic, objective, eps, atol, rtol):
    for (name, t), g in zip(named, analytic):
        flat = t.data.reshape(-1)            # a view: writing into it perturbs t
        numeric = np.empty(t.size)
        for i in range(t.size):
            original = float(flat[i])
            flat[i] = original + eps
            plus = objective()
            flat[i] = original - eps
            minus = objective()
            flat[i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        numeric = numeric.reshape(t.shape)
        ana = to_numpy(g).astype(np.float64)
        error = np.abs(ana - numeric)
        allowed = atol + rtol * np.abs(numeric)
        if (error > allowed).any():
            worst = np.unravel_index(np.argmax(error - allowed), t.shape)
            bad = int((error > allowed).sum())
            raise GradcheckError(
                f"gradcheck failed for {name} (shape {t.shape}): {bad} of {t.size} elements disagree\n"
                f"  worst element {tuple(int(i) for i in worst)}: numeric {numeric[worst]:.10g}, "
                f"analytic {ana[worst]:.10g}, |difference| {error[worst]:.3g} > allowed {allowed[worst]:.3g}\n"
                f"  tolerances: eps={eps:g}, atol={atol:g}, rtol={rtol:g}; max |difference| {error.max():.3g}\n"
                f"  numeric  (first elements): {np.array2string(numeric.reshape(-1)[:8], precision=6)}\n"
                f"  analytic (first elements): {np.array2string(ana.reshape(-1)[:8], precision=6)}")


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
            lines = []
            for j, (name, t) in enumerate(named):   # find which tensors disagree on their own
                only = [d if i == j else xp.zeros_like(d) for i, d in enumerate(direction)]
                n_j, p_j = _directional(named, analytic, objective, eps, only)
                flag = "MISMATCH" if abs(n_j - p_j) > atol + rtol * abs(n_j) else "ok"
                lines.append(f"    {name:40s} shape {str(t.shape):20s} numeric {n_j:+.8e} analytic {p_j:+.8e} {flag}")
            raise GradcheckError(
                f"directional gradcheck failed on direction {k}: numeric {numeric:.10g}, analytic {predicted:.10g}, "
                f"|difference| {abs(numeric - predicted):.3g} > allowed {atol + rtol * abs(numeric):.3g} "
                f"(eps={eps:g}, atol={atol:g}, rtol={rtol:g})\n  per tensor, along the same direction:\n"
                + "\n".join(lines))
