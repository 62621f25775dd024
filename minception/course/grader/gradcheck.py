"""A float64 gradient check of the student's own functions: their backward against finite differences of
their forward.

Comparing with the reference tells *whether* a result is wrong; this check tells whether the student's backward
is the derivative of the student's forward. Both answers teach: a backward that is wrong against the reference
but right against the student's own forward means the forward is the one to fix (and the other way round).

For a scalar ``L = sum(gy * f(x))`` with a fixed random ``gy``, each element of ``dL/dx`` is estimated by central
differences ``(L(x + h e_i) - L(x - h e_i)) / 2h`` with ``h = 1e-6``: exact for polynomials up to degree 2, and
with an error of about ``h**2`` times the third derivative otherwise. Inputs are kept small (a few hundred
elements at most): every element costs two calls of the forward.
"""
import numpy as np

from autograd.gradcheck import numerical_gradient

from .compare import compare


def check_gradient(name, analytic, loss, x, regions=()):
    """The difference between the student's gradient ``analytic`` for input ``x`` and finite differences of
    ``loss`` (their forward), as a ``compare`` dict named ``name``, or None when they agree.

    The tolerance is float32's (differences are accurate to about 1e-8 here, not to float64's 1e-16)."""
    return compare(name, analytic, numerical_gradient(lambda: loss(x), x), np.float32, regions)
