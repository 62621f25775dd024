"""Averaging the gradients over the ranks: the one communication of a data-parallel step.

After ``loss.backward()`` every rank holds the gradient of the loss on its own shard of the batch. Synchronous
data parallelism replaces each by the average over the ranks: with equal shards, the mean of the shard losses'
gradients is the gradient of the mean loss over the whole global batch, so every rank takes the same optimizer
step a single process would take on that batch.

Buckets. A network has hundreds of parameter arrays, many tiny (a BN layer's 32 gammas). One all-reduce per array
would pay the network's latency hundreds of times per step; one all-reduce of everything would need a copy of
all the gradients at once. The middle way (Horovod's "tensor fusion", PyTorch DDP's buckets): copy the gradients
into a few flat buffers of about ``bucket_bytes`` each, reduce each buffer once, copy the averages back::

    bucket 0: [ conv1.weight | conv2.weight | ... | presence flags ]   -> one allreduce_sum_ -> / size -> back
    bucket 1: [ ...                                                 ]   -> one allreduce_sum_ -> ...

The parameters are taken in the order of their names, the same on every rank, so that element ``i`` of a bucket
is the same number everywhere (the reduction adds buffers element by element). Buckets hold one dtype on one
device each.

A parameter may have no gradient on a rank (``p.grad is None``: it was not used by this shard's forward). It
then counts as a zero gradient, like an unused sample in one big batch. One "presence flag" per parameter rides
at the end of its bucket (1 where the rank has a gradient); a parameter whose flags sum to 0 (no rank used it)
keeps ``grad = None``, so the optimizer skips it exactly as it would in one process.
"""
import weakref

from autograd.backend import get_array_module

#: default bucket size: 25 MB, about 6.5 million float32 gradients
BUCKET_BYTES = 25 * 2 ** 20


class GradientBuckets:
    """The bucket layout of a list of parameters, and the flat buffers that carry their gradients.

    Args:
        named_params: ``(name, Parameter)`` pairs (``model.named_parameters()``); frozen ones are left out.
        bucket_bytes: a bucket is closed once it holds at least this many bytes of gradients.

    Attributes:
        buckets: list of buckets, each a list of ``(name, parameter)`` in name order.
    """

    def __init__(self, named_params, bucket_bytes=BUCKET_BYTES):
        if not bucket_bytes > 0:
            raise ValueError(f"GradientBuckets: bucket_bytes must be positive, got {bucket_bytes}")
        self.bucket_bytes = int(bucket_bytes)
        self.params = sorted(((n, p) for n, p in named_params if p.requires_grad), key=lambda item: item[0])
        names = [n for n, _ in self.params]
        if len(set(names)) != len(names):
            raise ValueError("GradientBuckets: two parameters share a name; the order must be the same on every rank")
        self._signature = None
        self.buckets = []
        self._buffers = []

    def _layout(self):
        """(Re)build the buckets when the parameters' dtypes or devices changed (e.g. after ``model.to``)."""
        signature = tuple((p.data.dtype.str, type(p.data).__module__) for _, p in self.params)
        if signature == self._signature:
            return
        self._signature = signature
        groups = {}                  # (dtype, array module) -> [(name, p)], in name order
        for name, p in self.params:
            groups.setdefault((p.data.dtype.str, type(p.data).__module__), []).append((name, p))
        self.buckets = []
        for group in groups.values():
            bucket, filled = [], 0
            for name, p in group:
                bucket.append((name, p))
                filled += p.data.nbytes
                if filled >= self.bucket_bytes:
                    self.buckets.append(bucket)
                    bucket, filled = [], 0
            if bucket:
                self.buckets.append(bucket)
        self._buffers = [None] * len(self.buckets)

    def _buffer(self, i):
        """The flat buffer of bucket ``i``: every gradient of the bucket, then one presence flag per parameter."""
        bucket = self.buckets[i]
        size = sum(p.data.size for _, p in bucket) + len(bucket)
        buf = self._buffers[i]
        if buf is None or buf.size != size:
            first = bucket[0][1].data
            buf = self._buffers[i] = get_array_module(first).empty(size, dtype=first.dtype)
        return buf

    def allreduce_mean(self, comm):
        """Replace every ``p.grad`` by its average over the ranks of ``comm`` (in place where it exists).

        One ``comm.allreduce_sum_`` per bucket. Every rank must call this at the same point of its step.
        """
        if comm.size == 1:
            return
        self._layout()
        for i, bucket in enumerate(self.buckets):
            buf = self._buffer(i)
            offset = 0
            flags = buf[buf.size - len(bucket):]
            for j, (_, p) in enumerate(bucket):
                n = p.data.size
                if p.grad is None:
                    buf[offset:offset + n] = 0
                    flags[j] = 0
                else:
                    buf[offset:offset + n] = p.grad.reshape(-1)
                    flags[j] = 1
                offset += n
            comm.allreduce_sum_(buf)
            buf[:offset] /= comm.size
            offset = 0
            used = flags.tolist()                          # how many ranks had each gradient
            for j, (_, p) in enumerate(bucket):
                n = p.data.size
                average = buf[offset:offset + n].reshape(p.data.shape)
                if p.grad is not None:
                    p.grad[...] = average                  # in place: whoever holds the gradient sees the average
                elif used[j] > 0:
                    p.grad = average.copy()
                offset += n


_layouts = weakref.WeakKeyDictionary()       # model -> its GradientBuckets (built on first use)


def allreduce_gradients(model, comm=None, bucket_bytes=BUCKET_BYTES):
    """Average the gradients of ``model``'s parameters over all ranks, after ``loss.backward()``.

    Args:
        model: an ``nn.Module`` (its buckets are built once and reused), or ``(name, Parameter)`` pairs.
        comm: a communicator (default: ``distributed.init()``).
        bucket_bytes: size of the flat buffers reduced at once (see the module docstring).

    Single process: returns at once, gradients untouched.
    """
    if comm is None:
        from .environment import init
        comm = init()
    if comm.size == 1:
        return
    if hasattr(model, "named_parameters"):
        buckets = _layouts.get(model)
        if buckets is None or buckets.bucket_bytes != int(bucket_bytes):
            buckets = _layouts[model] = GradientBuckets(model.named_parameters(), bucket_bytes)
    else:
        buckets = GradientBuckets(model, bucket_bytes)
    buckets.allreduce_mean(comm)

