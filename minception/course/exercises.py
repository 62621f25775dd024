"""The course's exercises, in teaching order: what each asks, where the student writes it, where its solution lives.

Each exercise is a function (or a class) of the library with its body removed: the student's file in
``DIR/exercises/`` is written from the library's own source by ``handout.py``, so the solutions are the library's
code and there is one source for both. One student file may hold several exercises (``im2col.py`` holds im2col
and col2im); each kernel file is a whole kernel family, so that ``run`` can register it as the student's tier.

    from minception.course.exercises import EXERCISES, exercise, load_student_module
    ex = exercise("im2col")                  # or exercise(3)
    ex.file, ex.functions, ex.family         # 'im2col.py', ('im2col',), 'im2col'
    module = load_student_module("DIR/exercises", ex.file)

This module is the catalog the grader (``grader/``), the handout writer and ``run`` share: ids, names, files and
function names are fixed.
"""
import importlib.util
import itertools
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """One exercise of the course.

    ``functions``: the names the student writes in ``file`` (for the IR-A block: the class). ``source``: the
    library file that holds the solution (and from which the student's file is written). ``family``: the kernel
    family the file serves in ``ops.kernels`` (``run`` registers it), or None (the optimizer, the block)."""
    id: int
    name: str
    title: str
    goal: str
    minutes: int
    file: str
    functions: tuple
    source: str
    family: object

    @property
    def module(self):
        """The library module of ``source``: ``ops/kernels/reference/im2col.py`` -> ``ops.kernels.reference.im2col``."""
        return self.source[:-3].replace("/", ".")


EXERCISES = [
    Exercise(1, "relu", "ReLU, forward and backward",
             "Write the simplest nonlinearity and its gradient, and see that the output alone is enough for it.",
             10, "relu.py", ("relu", "relu_backward"), "ops/kernels/reference/elementwise.py", "elementwise"),
    Exercise(2, "softmax_cross_entropy", "Softmax cross-entropy with label smoothing",
             "Derive the (p - q) / N gradient and keep exp from overflowing by subtracting the row maximum.",
             30, "loss.py", ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"),
             "ops/kernels/reference/loss.py", "loss"),
    Exercise(3, "im2col", "im2col: every window as a column",
             "Lay out every input window, padding included, as one column of a GEMM-ready matrix.",
             40, "im2col.py", ("im2col",), "ops/kernels/reference/im2col.py", "im2col"),
    Exercise(4, "col2im", "col2im: the adjoint of im2col",
             "Add every column entry back onto its pixel, summing where windows overlap.",
             25, "im2col.py", ("col2im",), "ops/kernels/reference/im2col.py", "im2col"),
    Exercise(5, "conv2d", "conv2d forward and backward through im2col",
             "Turn a convolution into one matrix product and derive both of its gradients from it.",
             40, "conv2d.py", ("forward", "backward"), "ops/kernels/reference/conv2d.py", "conv2d"),
    Exercise(6, "max_pool", "Max pooling, forward and backward",
             "Keep the argmax of every window (a tie goes to the first maximum) and route the gradient to it.",
             35, "pooling.py", ("max_pool2d_forward", "max_pool2d_backward"),
             "ops/kernels/reference/pooling.py", "pooling"),
    Exercise(7, "avg_pool", "Average pooling, forward and backward",
             "Divide by the number of real pixels in each window and spread the gradient evenly back.",
             25, "pooling.py", ("avg_pool2d_forward", "avg_pool2d_backward"),
             "ops/kernels/reference/pooling.py", "pooling"),
    Exercise(8, "batch_norm_train", "Batch normalisation in training mode",
             "Derive the three-term backward through the batch mean and the biased batch variance.",
             50, "batch_norm.py", ("forward_train", "backward_train"),
             "ops/kernels/reference/batch_norm.py", "batch_norm"),
    Exercise(9, "batch_norm_eval", "Batch normalisation in evaluation mode",
             "See why the running statistics make evaluation a per-channel affine map with a simple gradient.",
             15, "batch_norm.py", ("forward_eval", "backward_eval"),
             "ops/kernels/reference/batch_norm.py", "batch_norm"),
    Exercise(10, "rmsprop", "The RMSProp update in TensorFlow's form",
             "Write the paper's optimizer step in place, with eps inside the square root and lr inside momentum.",
             20, "rmsprop.py", ("rmsprop_update",), "minception/optim/rmsprop.py", None),
    Exercise(11, "inception_resnet_a", "An Inception-ResNet-A block from nn units",
             "Assemble a residual Inception block from the paper's figure with the library's layers.",
             30, "inception_resnet_a.py", ("InceptionResNetA",), "minception/models/resnet_blocks.py", None),
]

_BY_NAME = {e.name: e for e in EXERCISES}
_BY_ID = {e.id: e for e in EXERCISES}

#: the student's files, in teaching order (one file may hold several exercises)
FILES = tuple(dict.fromkeys(e.file for e in EXERCISES))

#: kernel family -> the student's file that implements it
FAMILY_FILES = {e.family: e.file for e in EXERCISES if e.family is not None}


def exercise(name_or_id):
    """The exercise with this name (``"im2col"``) or id (``3``, or ``"3"``); ValueError naming the choices if none."""
    key = name_or_id
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    found = _BY_ID.get(key) if isinstance(key, int) and not isinstance(key, bool) else _BY_NAME.get(key)
    if found is None:
        raise ValueError(f"unknown exercise {name_or_id!r}; expected an id 1-{len(EXERCISES)} or one of "
                         f"{', '.join(_BY_NAME)}")
    return found


def exercises_in(file):
    """The exercises whose functions live in the student's ``file`` (e.g. ``"pooling.py"``: max_pool, avg_pool)."""
    return [e for e in EXERCISES if e.file == file]


_loaded = itertools.count()


def load_student_module(directory, file):
    """Import the student's ``directory/file`` (e.g. ``DIR/exercises``, ``"im2col.py"``) as a fresh module.

    Each call imports the file anew under a unique name (``student_im2col_3``), so an edited file is read again
    and two students' copies never share a module. ``sys.path`` is not changed, and the module is taken out of
    ``sys.modules`` again once it has run: the student's files import only the installed library (numpy,
    autograd, ops, minception), never one another. Raises FileNotFoundError naming the path when it is missing;
    any error of the student's code (a SyntaxError, an exception at import) propagates as it is.
    """
    path = os.path.join(os.fspath(directory), file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no exercise file {path}; expected the file that "
                                f"'python -m minception.course new' wrote")
    name = f"student_{os.path.splitext(file)[0]}_{next(_loaded)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module           # while it runs: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
