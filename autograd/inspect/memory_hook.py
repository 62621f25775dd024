"""``MemoryHook``: how much array memory the graph keeps alive, and the largest buffers the ops make.

    with MemoryHook() as mem:           # bytes of arrays alive, peak, largest column buffers
        loss = model(x); loss.backward()
    print(mem.summary())

What it can and cannot see: a function hook (``autograd/hooks.py``) is called around each op, so it sees the
arrays going in and out and what the op saves on ``self`` for backward. Temporaries inside an op (the im2col
column matrix of a convolution, a padded copy) live and die between two hook calls; ``MemoryHook`` reports them
in two honest ways, described in its docstring.
"""
import sys
import tracemalloc
import weakref

from ..hooks import FunctionHook
from .trace import format_shape

__all__ = ["MemoryHook", "format_bytes"]


def format_bytes(n):
    """1536 -> '1.5 KiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _owner(array):
    """The array that owns the memory of ``array`` (follows ``.base`` through views)."""
    while getattr(array, "base", None) is not None and hasattr(array.base, "nbytes"):
        array = array.base
    return array


def _arrays_in(value):
    """Arrays inside an attribute saved by forward: an array, or a tuple/list of them."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _arrays_in(v)]
    return [value] if hasattr(value, "nbytes") and hasattr(value, "dtype") and hasattr(value, "shape") else []


def _column_bytes(fn, input_shapes, output_shapes, itemsize):
    """Size of the im2col column matrix of a 2-D convolution, from its shapes, or None for other ops.

    An op declares that it is such a convolution with the class attribute ``lowers_to_im2col = True`` (as
    ``ops.conv2d``'s Function does): its input (N, C, H, W), weight (O, C, kh, kw) and output (N, O, OH, OW) then
    give a column matrix of C*kh*kw rows and N*OH*OW columns (see ``ops/kernels/reference/im2col.py``).
    """
    if not getattr(fn, "lowers_to_im2col", False) or len(input_shapes) < 2 or not output_shapes:
        return None
    x, w, y = input_shapes[0], input_shapes[1], output_shapes[0]
    if len(x) != 4 or len(w) != 4 or len(y) != 4:
        return None
    n, c, _, _ = x
    _, cw, kh, kw = w
    return int(cw * kh * kw * n * y[2] * y[3] * itemsize)


class _Buffers:
    """A set of array buffers known by weak reference: how many bytes are still alive, and the peak."""

    def __init__(self):
        self.alive = {}          # id(owner array) -> (weakref, nbytes, role)
        self.current = 0
        self.peak = 0

    def add(self, arrays, role):
        for a in arrays:
            if a is None or not hasattr(a, "nbytes"):
                continue
            owner = _owner(a)
            key = id(owner)
            if key in self.alive:
                continue
            try:
                ref = weakref.ref(owner, self._release(key))
            except TypeError:    # NumPy scalars cannot be weakly referenced: too small to matter, skip them
                continue
            self.alive[key] = (ref, int(owner.nbytes), role)
            self.current += int(owner.nbytes)
        self.peak = max(self.peak, self.current)

    def _release(self, key):
        def release(_ref):
            entry = self.alive.pop(key, None)
            if entry is not None:
                self.current -= entry[1]
        return release


class _SavedByGraph:
    """Bytes that graph nodes hold for backward: a buffer counts while at least one op that saved it still holds
    it, that is until the op's backward has run and the engine has released it (or the op is garbage)."""

    def __init__(self):
        self.holders = {}        # id(owner array) -> [number of ops holding it, nbytes]
        self.by_fn = {}          # id(fn) -> (weakref to fn, list of owner ids)
        self.to_check = []       # ops whose backward ran: released by the engine right after, unless retain_graph
        self.current = 0
        self.peak = 0

    def add(self, fn, arrays):
        owners = {}
        for a in arrays:
            o = _owner(a)
            owners[id(o)] = int(o.nbytes)
        if not owners or id(fn) in self.by_fn:
            return
        for key, nbytes in owners.items():
            entry = self.holders.setdefault(key, [0, nbytes])
            entry[0] += 1
            if entry[0] == 1:
                self.current += nbytes
        key_fn = id(fn)
        self.by_fn[key_fn] = (weakref.ref(fn, lambda _r: self._drop(key_fn)), list(owners))
        self.peak = max(self.peak, self.current)

    def _drop(self, key_fn):
        entry = self.by_fn.pop(key_fn, None)
        if entry is None:
            return
        for key in entry[1]:
            holder = self.holders[key]
            holder[0] -= 1
            if holder[0] == 0:
                self.current -= holder[1]
                del self.holders[key]

    def backward_ran(self, fn):
        self.to_check.append(weakref.ref(fn))

    def check_released(self):
        for ref in self.to_check:
            fn = ref()
            if fn is not None and fn.__dict__.get("released", False):
                self._drop(id(fn))
        self.to_check = []


class MemoryHook(FunctionHook):
    """How much array memory the graph keeps alive, and the largest buffers the ops make.

    What it reports, and how each number is measured:

    * **alive** (``current_bytes``, ``peak_bytes``): the hook keeps a weak reference to the memory behind every
      array an op receives, returns or saves for backward (and every gradient in backward); a view counts as
      the array that owns its memory, and each buffer counts once. ``current_bytes`` sums those still alive
      (parameters and the batch included); ``peak_bytes`` is the largest such sum seen at any hook call.
      Arrays created and dropped inside one op are not seen here (see the last two items).
    * **saved for backward** (``saved_bytes``, ``peak_saved_bytes``): the buffers that recorded ops keep on
      ``self`` for their backward (inputs, outputs or extra arrays), each counted while at least one op still
      holds it: the memory that training pays for the graph. It grows during forward and falls as backward
      frees each op (the engine frees an op right after its backward, unless ``retain_graph=True``).
    * **column buffers** (``column_buffers``): for each convolution (an op whose class sets
      ``lowers_to_im2col = True``), the size of its im2col column matrix for the whole batch, computed from the
      shapes: C*kh*kw rows by N*OH*OW columns. This is what the textbook method (and ``ops.conv2d`` on the GPU)
      allocates for one conv call, and the reason convolutions are memory hungry. On the CPU the fast kernel tier
      lowers a few images at a time into reused buffers of about a megabyte per worker thread (at least one
      image's columns, ``bytes / N``, which the summary prints too), so there the measured temporaries below are
      much smaller.
    * **measured temporaries** (``temporaries=True``, CPU only): Python's ``tracemalloc`` (to which NumPy reports
      its allocations) gives the peak memory allocated *during* each op above what was allocated when it
      started. It sees NumPy allocations only (not Numba's internal ones, nor the GPU's), and it slows Python
      down while on (run the model once before, so that Numba does not compile its kernels under it).

    Attributes:
        events: list of (phase, op name, module path, alive bytes after the op, measured temporary bytes or None).
    """

    def __init__(self, temporaries=False):
        self.temporaries = temporaries
        self._all = _Buffers()
        self._saved = _SavedByGraph()
        self.peak_at = None                  # (phase, op, module) where the peak of alive bytes was first seen
        self.column_buffers = []             # (bytes, op, module, input shape, weight shape)
        self.events = []
        self._before = {}                    # id(fn) -> attribute names before forward
        self._traced_before = {}
        self._started_tracemalloc = False
        self._peak_noted = 0

    current_bytes = property(lambda self: self._all.current)
    peak_bytes = property(lambda self: self._all.peak)
    peak_saved_bytes = property(lambda self: self._saved.peak)

    @property
    def saved_bytes(self):
        self._saved.check_released()
        return self._saved.current

    def _note(self, phase, fn, temp):
        if self._all.peak > self._peak_noted:
            self._peak_noted = self._all.peak
            self.peak_at = (phase, fn.name, ".".join(fn.scope))
        self.events.append((phase, fn.name, ".".join(fn.scope), self._all.current, temp))

    def alive_by_role(self):
        """{'input' | 'output' | 'saved' | 'grad': bytes alive now}, by what first brought each buffer in."""
        out = {}
        for ref, nbytes, role in list(self._all.alive.values()):
            if ref() is not None:
                out[role] = out.get(role, 0) + nbytes
        return out

    # -- tracemalloc around one op
    def _temp_begin(self, fn):
        if self.temporaries:
            tracemalloc.reset_peak()
            self._traced_before[id(fn)] = tracemalloc.get_traced_memory()[0]

    def _temp_end(self, fn):
        if not self.temporaries:
            return None
        before = self._traced_before.pop(id(fn), None)
        if before is None:
            return None
        return max(0, tracemalloc.get_traced_memory()[1] - before)

    # -- the hook methods
    def forward_pre(self, fn, inputs):
        self._saved.check_released()
        self._all.add(inputs, "input")
        self._before[id(fn)] = set(fn.__dict__)
        self._temp_begin(fn)

    def forward_post(self, fn, inputs, outputs):
        temp = self._temp_end(fn)
        before = self._before.pop(id(fn), set())
        saved = [a for name in set(fn.__dict__) - before for a in _arrays_in(fn.__dict__[name])]
        self._all.add(outputs, "output")
        self._all.add(saved, "saved")
        if any(getattr(fn, "needs_input_grad", ())):      # recorded: the op keeps these until its backward
            self._saved.add(fn, saved)
        if outputs and len(inputs) >= 2:
            cols = _column_bytes(fn, [getattr(x, "shape", ()) for x in inputs],
                                 [y.shape for y in outputs], outputs[0].dtype.itemsize)
            if cols is not None:
                self.column_buffers.append((cols, fn.name, ".".join(fn.scope), tuple(inputs[0].shape),
                                            tuple(inputs[1].shape)))
        self._note("forward", fn, temp)

    def backward_pre(self, fn, grad_outputs):
        self._saved.check_released()
        self._all.add(grad_outputs, "grad")
        self._temp_begin(fn)

    def backward_post(self, fn, grad_outputs, grad_inputs):
        temp = self._temp_end(fn)
        self._all.add(grad_inputs, "grad")
        self._saved.backward_ran(fn)
        self._note("backward", fn, temp)

    def add(self):
        if self.temporaries and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True
        return super().add()

    def remove(self):
        super().remove()
        if self._started_tracemalloc:
            tracemalloc.stop()
            self._started_tracemalloc = False

    # -- reports
    def largest_column_buffers(self, k=5):
        """The ``k`` largest im2col column buffers: list of (bytes, op, module, input shape, weight shape)."""
        return sorted(self.column_buffers, key=lambda r: -r[0])[:k]

    def largest_temporaries(self, k=5):
        """The ``k`` ops with the largest measured temporaries (``temporaries=True`` only):
        list of (bytes, phase, op, module)."""
        rows = [(t, phase, name, scope) for phase, name, scope, _, t in self.events if t is not None]
        return sorted(rows, key=lambda r: -r[0])[:k]

    def summary(self, k=5):
        lines = [f"array memory alive now : {format_bytes(self.current_bytes)}",
                 f"peak alive (graph)     : {format_bytes(self.peak_bytes)}"
                 + (f"  at {self.peak_at[0]} of {self.peak_at[1]} in {self.peak_at[2] or '-'}"
                    if self.peak_at else ""),
                 f"saved for backward now : {format_bytes(self.saved_bytes)} "
                 f"(peak {format_bytes(self.peak_saved_bytes)}; arrays the ops keep on self for their backward)"]
        cols = self.largest_column_buffers(k)
        if cols:
            lines.append(f"largest im2col column buffers (from shapes, whole batch / one image; "
                         f"{len(self.column_buffers)} convolutions):")
            for nbytes, name, scope, xs, ws in cols:
                lines.append(f"  {format_bytes(nbytes):>10s} / {format_bytes(nbytes // max(xs[0], 1)):>10s}  "
                             f"{name} {scope or '-'}  x {format_shape(xs)} w {format_shape(ws)}")
        temps = self.largest_temporaries(k)
        if temps:
            lines.append("largest measured temporaries (tracemalloc, NumPy allocations during the op):")
            for nbytes, phase, name, scope in temps:
                lines.append(f"  {format_bytes(nbytes):>10s}  {phase:<8s} {name} {scope or '-'}")
        return "\n".join(lines)

    def print_summary(self, k=5, file=None):
        print(self.summary(k), file=file or sys.stdout)
