"""``TimerHook``: wall-clock time of every op, forward and backward, summed per op type or per module.

    with TimerHook() as timer:          # seconds per op type, forward and backward
        loss = model(x); loss.backward()
    print(timer.summary())

A function hook (``autograd/hooks.py``): the core calls it before and after every op's forward and backward.
"""
import sys
import time

from ..backend import get_array_module, is_gpu_array
from ..hooks import FunctionHook

__all__ = ["TimerHook"]


def _synchronize(arrays):
    """Wait for the GPU when any array lives there, so that a wall-clock time covers the kernels it launched."""
    for a in arrays:
        if a is not None and is_gpu_array(a):
            get_array_module(a).cuda.get_current_stream().synchronize()
            return


class TimerHook(FunctionHook):
    """Wall-clock time of every op, forward and backward, summed per op type (or per module).

    On the GPU the hook synchronises the device before and after each op, so the times are the op's real cost
    (and the run is slower than without the hook). Nested ops, if any, are counted in their parent too.

    Attributes:
        records: list of (op name, module path, 'forward' | 'backward', seconds), in the order the ops ran.
    """

    def __init__(self):
        self.records = []
        self._start = {}

    def _begin(self, fn, arrays):
        _synchronize(arrays)
        self._start[id(fn)] = time.perf_counter()

    def _end(self, fn, arrays, phase):
        _synchronize(arrays)
        start = self._start.pop(id(fn), None)
        if start is not None:
            self.records.append((fn.name, ".".join(fn.scope), phase, time.perf_counter() - start))

    def forward_pre(self, fn, inputs):
        self._begin(fn, inputs)

    def forward_post(self, fn, inputs, outputs):
        self._end(fn, outputs, "forward")

    def backward_pre(self, fn, grad_outputs):
        self._begin(fn, grad_outputs)

    def backward_post(self, fn, grad_outputs, grad_inputs):
        self._end(fn, grad_inputs, "backward")

    def totals(self, by="op", depth=1):
        """{key: {'forward': seconds, 'backward': seconds, 'calls': n}}; key is the op name (``by='op'``) or the
        first ``depth`` parts of the module path (``by='module'``)."""
        if by not in ("op", "module"):
            raise ValueError(f"TimerHook.totals: by must be 'op' or 'module', got {by!r}")
        out = {}
        for name, scope, phase, seconds in self.records:
            key = name if by == "op" else (".".join(scope.split(".")[:depth]) if scope else "(top level)")
            row = out.setdefault(key, {"forward": 0.0, "backward": 0.0, "calls": 0})
            row[phase] += seconds
            row["calls"] += phase == "forward"
        return out

    def total_time(self):
        return sum(r[3] for r in self.records)

    def summary(self, by="op", depth=1):
        """Table sorted by total time: calls, forward ms, backward ms, total ms and share of the total."""
        totals = self.totals(by, depth)
        grand = self.total_time() or 1.0
        key_w = max([len(k) for k in totals] + [len(by)])
        head = (f"{by:<{key_w}s}  {'calls':>6s}  {'forward ms':>11s}  {'backward ms':>11s}  {'total ms':>10s}  "
                f"{'share':>6s}")
        lines = [head, "-" * len(head)]
        for key, row in sorted(totals.items(), key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"])):
            total = row["forward"] + row["backward"]
            lines.append(f"{key:<{key_w}s}  {row['calls']:6d}  {1e3 * row['forward']:11.3f}  "
                         f"{1e3 * row['backward']:11.3f}  {1e3 * total:10.3f}  {100 * total / grand:5.1f}%")
        fwd = sum(r["forward"] for r in totals.values())
        bwd = sum(r["backward"] for r in totals.values())
        lines.append("-" * len(head))
        lines.append(f"{'total':<{key_w}s}  {sum(r['calls'] for r in totals.values()):6d}  {1e3 * fwd:11.3f}  "
                     f"{1e3 * bwd:11.3f}  {1e3 * (fwd + bwd):10.3f}  100.0%")
        return "\n".join(lines)

    def print_summary(self, by="op", depth=1, file=None):
        print(self.summary(by, depth), file=file or sys.stdout)
