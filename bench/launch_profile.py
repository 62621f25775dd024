"""Where one training step's work goes: launches per kernel, per op type and per launch kind, and a Chrome trace.

``bench/device_check.py`` uses this file in two steps:

* ``kernels`` (GPU): every call of a CuPy kernel the engine builds, and of the CuPy functions it calls, is
  recorded with the op that was running (``OpTracker``), its host time, and its device time (two CUDA events
  around the call). The records become three tables (per kernel, per op type, per launch kind) and a trace for
  chrome://tracing or https://ui.perfetto.dev.
* ``cpu-profile`` (CPU): ``ParallelCounter`` counts the calls of the CPU pool's ``parallel_for`` and the parts
  they were cut into, per op type.

Why wrap calls instead of using a profiler: a profiler that sees every GPU kernel (CUPTI: ``nsys``, or
PyTorch's profiler) is not always installed, and it does not know our ops. Wrapping needs only CuPy. CuPy's kernel
classes are compiled (Cython) types whose ``__call__`` cannot be replaced, so ``LaunchRecorder`` replaces their
*constructors* in the ``cupy`` namespace (``cupy.ElementwiseKernel``, ...) before the engine builds its kernels
(it builds each on first use), and a few ``cupy`` functions the engine calls (``cupy.matmul``: cuBLAS,
``cupy.ascontiguousarray``: copies, ...). The CUDA events are read after the step, with one synchronisation at
the end, so the step runs as it does without the recorder, only slower by the event records.

What this cannot see: launches CuPy makes inside its compiled code (ndarray operators such as ``a + b``,
``a.sum()``, ``astype``). Each op's own device time (events at its start and end) minus its wrapped launches'
is reported as "not wrapped". A device time measured by events includes the time the GPU waited for the host
between the two events: when the host is the bottleneck, short kernels look longer than they are.

Nothing here imports CuPy or the engine: the callers pass in what to patch and how to mark the device, so the
tests can use stand-ins.
"""
import sys
import time

from autograd.hooks import FunctionHook

#: CuPy's kernel classes whose constructors are wrapped (each kernel object they build is then timed per call)
KERNEL_CLASSES = ("ElementwiseKernel", "ReductionKernel", "RawKernel")
#: CuPy functions the engine calls that launch kernels (cuBLAS for matmul, copies, fills, elementwise math)
FUNCTIONS = ("matmul", "dot", "ascontiguousarray", "concatenate", "stack", "zeros", "zeros_like", "ones",
             "full_like", "take_along_axis", "put_along_axis", "exp", "log", "sqrt", "argsort", "arange", "where")


# =============================================================================================  which op runs

class OpTracker(FunctionHook):
    """A function hook that knows which op is running, and keeps a span for every op it saw.

    ``current()`` is the running op's name and phase ("Conv2d forward"), or, between ops, the step's phase
    ("(no op: update)", as told by ``on_phase``, which ``loop.train_step`` calls as each phase ends). A span is
    ``{"op", "phase", "start", "end"}`` in host seconds, plus ``start_mark``/``end_mark`` from ``mark()`` (a
    recorded CUDA event on the GPU; None without ``mark``)."""

    NEXT_PHASE = {"forward": "backward", "backward": "update", "average": "update", "update": "done"}

    def __init__(self, mark=None, clock=time.perf_counter):
        self.mark, self.clock = mark, clock
        self.stack = []           # spans of the ops running now, innermost last (an op may call another)
        self.spans = []           # every finished span, in the order they finished
        self.phase = "forward"

    def current(self):
        if self.stack:
            return f"{self.stack[-1]['op']} {self.stack[-1]['phase']}"
        return f"(no op: {self.phase})"

    def on_phase(self, name):
        self.phase = self.NEXT_PHASE.get(name, name)

    def _begin(self, fn, phase):
        self.stack.append({"op": fn.name, "phase": phase, "start": self.clock(),
                           "start_mark": self.mark() if self.mark else None})

    def _end(self):
        if self.stack:
            span = self.stack.pop()
            span["end_mark"] = self.mark() if self.mark else None
            span["end"] = self.clock()
            self.spans.append(span)

    def forward_pre(self, fn, inputs):
        self._begin(fn, "forward")

    def forward_post(self, fn, inputs, outputs):
        self._end()

    def backward_pre(self, fn, grad_outputs):
        self._begin(fn, "backward")

    def backward_post(self, fn, grad_outputs, grad_inputs):
        self._end()

    def backward_error(self, fn, error):
        self._end()


# =============================================================================================  GPU launches

class TimedKernel:
    """A kernel object whose calls go through the recorder; every other attribute is the kernel's own."""

    def __init__(self, kernel, kind, name, recorder):
        self._kernel, self._kind, self._name, self._recorder = kernel, kind, name, recorder

    def __call__(self, *args, **kwargs):
        return self._recorder.call(self._kind, self._name, self._kernel, args, kwargs)

    def __getattr__(self, attr):
        return getattr(self._kernel, attr)


class LaunchRecorder:
    """Records every call of the kernels built while it is installed, and of ``FUNCTIONS``, in ``namespace``
    (the ``cupy`` module; a stand-in in the tests).

    A record: ``{"kernel", "kind", "op", "host_start", "host_us", "begin", "end"}``: the kernel's (or
    function's) name, the entry point ("ElementwiseKernel", "cupy.matmul", ...), ``current_op()`` at the call,
    the host time of the call, and the device marks around it (``mark()``, None without). Calls made inside a
    recorded call (a CuPy function that calls another) are not recorded again. Set ``active`` to False to let
    calls through unrecorded (warm-up steps). ``functions``: the names of the functions to wrap (NumPy's
    stand-ins on the CPU must leave out those that Numba kernels call: Numba cannot compile a wrapper)."""

    def __init__(self, namespace, current_op, mark=None, clock=time.perf_counter, functions=FUNCTIONS):
        self.namespace, self.current_op, self.mark, self.clock = namespace, current_op, mark, clock
        self.functions = functions
        self.records = []
        self.active = True
        self._saved = {}
        self._depth = 0

    def install(self):
        for name in KERNEL_CLASSES:
            if hasattr(self.namespace, name):
                self._replace(name, self._constructor(getattr(self.namespace, name), name))
        if hasattr(self.namespace, "RawModule"):
            self._replace("RawModule", self._module_constructor(self.namespace.RawModule))
        for name in self.functions:
            if callable(getattr(self.namespace, name, None)):
                original = getattr(self.namespace, name)
                prefix = getattr(self.namespace, "__name__", "cupy")
                self._replace(name, self._function(original, f"{prefix}.{name}"))
        return self

    def uninstall(self):
        for name, original in self._saved.items():
            setattr(self.namespace, name, original)
        self._saved.clear()
        self.active = False

    def _replace(self, name, wrapper):
        self._saved[name] = getattr(self.namespace, name)
        setattr(self.namespace, name, wrapper)

    def _constructor(self, cls, kind):
        def build(*args, **kwargs):
            kernel = cls(*args, **kwargs)
            return TimedKernel(kernel, kind, kernel_name(kernel, kind, args, kwargs), self)
        return build

    def _module_constructor(self, cls):
        recorder = self

        class TimedModule:
            """A RawModule whose functions are timed."""

            def __init__(self, *args, **kwargs):
                self._module = cls(*args, **kwargs)

            def get_function(self, name):
                return TimedKernel(self._module.get_function(name), "RawModule", name, recorder)

            def __getattr__(self, attr):
                return getattr(self._module, attr)
        return TimedModule

    def _function(self, fn, kind):
        def call(*args, **kwargs):
            return self.call(kind, kind, fn, args, kwargs)
        call.__name__ = getattr(fn, "__name__", kind)
        call.__doc__ = getattr(fn, "__doc__", None)
        return call

    def call(self, kind, name, fn, args, kwargs):
        """``fn(*args, **kwargs)``, recorded unless inactive or inside another recorded call."""
        if not self.active or self._depth:
            return fn(*args, **kwargs)
        self._depth += 1
        begin = self.mark() if self.mark else None
        t0 = self.clock()
        try:
            return fn(*args, **kwargs)
        finally:
            t1 = self.clock()
            end = self.mark() if self.mark else None
            self._depth -= 1
            self.records.append({"kernel": name, "kind": kind, "op": self.current_op(), "host_start": t0,
                                 "host_us": 1e6 * (t1 - t0), "begin": begin, "end": end})


def kernel_name(kernel, kind, args, kwargs):
    """The name CuPy gives the kernel (its ``name``; ElementwiseKernel's 4th argument), else the kind."""
    name = getattr(kernel, "name", None) or kwargs.get("name")
    if not name and kind == "ElementwiseKernel" and len(args) > 3:
        name = args[3]
    return str(name or kind)


def resolve_marks(records, spans, origin, elapsed_ms):
    """Turn the device marks into numbers: ``device_start_ms`` (from ``origin``, a mark made when the host clock
    read the trace's origin) and ``device_ms`` for each record and span that has marks; the marks are removed
    (they are CUDA events, not data). ``elapsed_ms(a, b)``: milliseconds from mark a to mark b
    (``cupy.cuda.get_elapsed_time``). The device must have finished (synchronised) before this is called."""
    for item, begin_key, end_key in [(r, "begin", "end") for r in records] + \
                                    [(s, "start_mark", "end_mark") for s in spans]:
        begin, end = item.pop(begin_key, None), item.pop(end_key, None)
        if begin is not None and end is not None and origin is not None:
            item["device_start_ms"] = elapsed_ms(origin, begin)
            item["device_ms"] = elapsed_ms(begin, end)


# =============================================================================================  tables

def kernel_table(records):
    """One row per (kernel, entry point), the most device time first: count, total and mean device time, mean
    host time per call, and the op types that launched it."""
    rows = {}
    for r in records:
        row = rows.setdefault((r["kernel"], r["kind"]), {"kernel": r["kernel"], "kind": r["kind"], "count": 0,
                                                         "device_ms": 0.0, "host_ms": 0.0, "ops": set()})
        row["count"] += 1
        row["device_ms"] += r.get("device_ms") or 0.0
        row["host_ms"] += r["host_us"] / 1e3
        row["ops"].add(r["op"].split(" ")[0])
    out = []
    for row in rows.values():
        row["mean_device_us"] = 1e3 * row["device_ms"] / row["count"]
        row["mean_host_us"] = 1e3 * row["host_ms"] / row["count"]
        row["ops"] = sorted(row["ops"])
        out.append(row)
    return sorted(out, key=lambda r: (-r["device_ms"], -r["count"], r["kernel"]))


def op_table(records, spans):
    """One row per op type and phase ("Conv2d forward"), the most device time first: calls, host time inside the
    op, the op's device time (its events), the wrapped launches and their device time, and the difference (the
    launches that could not be wrapped). Nested ops count in their parent too, as in ``TimerHook``."""
    rows = {}

    def row(key):
        return rows.setdefault(key, {"op": key, "calls": 0, "host_ms": 0.0, "device_ms": 0.0, "launches": 0,
                                     "launch_device_ms": 0.0})
    for s in spans:
        r = row(f"{s['op']} {s['phase']}")
        r["calls"] += 1
        r["host_ms"] += 1e3 * (s["end"] - s["start"])
        r["device_ms"] += s.get("device_ms") or 0.0
    for rec in records:
        r = row(rec["op"])
        r["launches"] += 1
        r["launch_device_ms"] += rec.get("device_ms") or 0.0
    for r in rows.values():
        r["not_wrapped_device_ms"] = max(0.0, r["device_ms"] - r["launch_device_ms"]) if r["calls"] else 0.0
    return sorted(rows.values(), key=lambda r: (-max(r["device_ms"], r["launch_device_ms"]), -r["host_ms"]))


def launch_kind_table(records):
    """One row per entry point ("ElementwiseKernel", "cupy.matmul", ...): calls, mean host microseconds per call
    (what one launch of that kind costs the host), total host and device milliseconds."""
    rows = {}
    for r in records:
        row = rows.setdefault(r["kind"], {"kind": r["kind"], "calls": 0, "host_ms": 0.0, "device_ms": 0.0})
        row["calls"] += 1
        row["host_ms"] += r["host_us"] / 1e3
        row["device_ms"] += r.get("device_ms") or 0.0
    for row in rows.values():
        row["mean_host_us"] = 1e3 * row["host_ms"] / row["calls"]
    return sorted(rows.values(), key=lambda r: -r["host_ms"])


def markdown(headers, rows):
    """A Markdown table: ``headers`` and ``rows`` (lists of cells, formatted with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report(records, spans, title):
    """The three tables as text: per kernel, per op type, per launch kind."""
    kernels, ops, kinds = kernel_table(records), op_table(records, spans), launch_kind_table(records)
    total_device = sum(r["device_ms"] for r in kernels)
    timed = any("device_ms" in r for r in records)
    parts = [f"{title}\n", f"wrapped launches: {len(records)}, " +
             (f"their device time {total_device:.2f} ms (events; includes GPU idle between the two events)\n"
              if timed else "no device times (no device marks: a CPU run)\n"),
             "\nPer kernel:\n",
             markdown(["kernel", "entry point", "count", "total ms", "mean us", "host us/call", "ops"],
                      [[r["kernel"], r["kind"], r["count"], f"{r['device_ms']:.3f}", f"{r['mean_device_us']:.1f}",
                        f"{r['mean_host_us']:.1f}", ", ".join(r["ops"][:4])] for r in kernels]),
             "\nPer op type (host: time inside the op; device: between the op's events;\n"
             "not wrapped: the op's device time less its wrapped launches'):\n",
             markdown(["op", "calls", "host ms", "device ms", "launches", "launch device ms", "not wrapped ms"],
                      [[r["op"], r["calls"], f"{r['host_ms']:.3f}", f"{r['device_ms']:.3f}", r["launches"],
                        f"{r['launch_device_ms']:.3f}", f"{r['not_wrapped_device_ms']:.3f}"] for r in ops]),
             "\nPer launch kind (host cost of one call):\n",
             markdown(["entry point", "calls", "mean host us", "host ms", "device ms"],
                      [[r["kind"], r["calls"], f"{r['mean_host_us']:.1f}", f"{r['host_ms']:.3f}",
                        f"{r['device_ms']:.3f}"] for r in kinds])]
    return "".join(parts)


# =============================================================================================  Chrome trace

def chrome_trace(spans, records, host_origin):
    """A trace in the Chrome trace-event format (``{"traceEvents": [...]}``; open it in chrome://tracing or
    https://ui.perfetto.dev): process 1 is the host (thread 1: the ops, thread 2: the recorded calls), process
    2 the device (the recorded calls' event times). Times are microseconds from ``host_origin`` (host seconds)
    and, on the device, from the origin mark made at the same moment (``resolve_marks``)."""
    events = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "host"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "ops"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "launch calls"}},
              {"name": "process_name", "ph": "M", "pid": 2, "tid": 0, "args": {"name": "device (CUDA events)"}}]
    for s in spans:
        events.append({"name": s["op"], "cat": s["phase"], "ph": "X", "pid": 1, "tid": 1,
                       "ts": 1e6 * (s["start"] - host_origin), "dur": 1e6 * (s["end"] - s["start"]),
                       "args": {"device_ms": s.get("device_ms")}})
    for r in records:
        args = {"op": r["op"], "kind": r["kind"]}
        events.append({"name": r["kernel"], "cat": r["kind"], "ph": "X", "pid": 1, "tid": 2,
                       "ts": 1e6 * (r["host_start"] - host_origin), "dur": r["host_us"], "args": args})
        if r.get("device_ms") is not None:
            events.append({"name": r["kernel"], "cat": r["kind"], "ph": "X", "pid": 2, "tid": 1,
                           "ts": 1e3 * r["device_start_ms"], "dur": 1e3 * r["device_ms"], "args": args})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


# =============================================================================================  CPU pool

class ParallelCounter:
    """Counts the calls of the CPU pool's ``parallel_for`` and the parts each ran (the length of the list it
    returns: 1 when it ran serially), per op (``current_op()``), while installed.

    The kernels import ``parallel_for`` by name (``from .runtime.threads import parallel_for``), so replacing
    the attribute of ``threads`` alone would miss them: every loaded module that holds the function is patched.
    Install it after the engine's kernels are imported (after a warm-up step)."""

    def __init__(self, current_op=None):
        self.current_op = current_op or (lambda: "(all)")
        self.calls = self.threaded = self.parts = 0
        self.by_op = {}
        self._patched = []

    def install(self):
        from ops.kernels.cpu.runtime import threads
        original = threads.parallel_for

        def counted(*args, **kwargs):                 # (whatever its signature is today)
            results = original(*args, **kwargs)
            self.calls += 1
            self.parts += len(results)
            self.threaded += len(results) > 1
            row = self.by_op.setdefault(self.current_op(), [0, 0])
            row[0] += 1
            row[1] += len(results)
            return results
        for module in list(sys.modules.values()):
            try:
                holds = vars(module).get("parallel_for") is original
            except TypeError:                        # an entry without a __dict__
                holds = False
            if holds:
                module.parallel_for = counted
                self._patched.append((module, original))
        return self

    def uninstall(self):
        for module, original in self._patched:
            module.parallel_for = original
        self._patched.clear()

    def summary(self):
        return {"calls": self.calls, "threaded_calls": self.threaded, "parts": self.parts,
                "by_op": {op: {"calls": c, "parts": p} for op, (c, p) in
                          sorted(self.by_op.items(), key=lambda kv: -kv[1][1])}}
