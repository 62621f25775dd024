"""``python -m minception.course run DIR``: train the scaled Inception-ResNet-v2 on the student's own code.

1. Each of the student's kernel files that is finished becomes a family of the kernel tier ``student``
   (``ops.kernels.register("student", family, module)``, which runs the family's contract check first). A file
   that is not finished, or breaks its contract, is left out with one line saying why; the reference runs that
   family (a tier without a family falls back to the reference's).
2. The student's ``rmsprop_update``, once it agrees with the library's on a small case, makes the optimizer's
   update (``StudentRMSProp``: the recipe's RMSProp whose per-parameter ``update`` calls it). The student's
   ``InceptionResNetA``, once it has the library block's parameters, replaces the network's IR-A blocks (the
   library block's initial weights are copied into it).
3. ``minception.train.loop.train_step`` trains the network of the training example (Inception-ResNet-v2, width
   0.125, blocks 1,1,1, 32x32 inputs) with ``Recipe.scaled()`` on the synthetic shapes set (no download), in
   the ``student`` tier; then it is evaluated on held-out images, and a summary says whose code ran, and how
   often each of the student's functions was called.
"""
import math
import textwrap
import time
import types
from collections import Counter

import numpy as np

import ops
from autograd import Tensor
from minception import data, models, nn, optim
from minception.models.rules import Rules
from minception.train import Recipe, loop

from .exercises import EXERCISES, FAMILY_FILES, load_student_module

TIER = "student"
WIDTH, BLOCKS = 0.125, (1, 1, 1)
TEST_IMAGES = 500
WIDTH_LIMIT = 100          # columns of every line printed


def _clip(line):
    return line if len(line) <= WIDTH_LIMIT else line[:WIDTH_LIMIT - 3] + "..."


def _function_of(call_text):
    """``"max_pool2d_forward(x: (2, 3, 7, 6) float64, ...)"`` -> ``"max_pool2d_forward"``."""
    return call_text.split("(")[0]


def why_refused(family, report):
    """One line: why the student's ``family`` does not run (from the contract check's report)."""
    for p in report.problems:
        if p.kind == "exception" and "NotImplementedError" in p.message:
            return (f"{family}: not done yet ({_function_of(p.call)} raises NotImplementedError): "
                    f"the reference runs it")
    first = report.problems[0]
    return _clip(f"{family}: breaks its contract, so the reference runs it; {_function_of(first.call)}: "
                 f"{first.message}")


def count_key(family, name):
    """The name a call of the student's function is counted under: ``"im2col"``, ``"conv2d forward"``."""
    return f"{family} {name}" if name in ("forward", "backward") else name


def written_functions(family):
    """The count keys of the functions the student writes for ``family`` (``relu``, ``relu_backward``, ...)."""
    return [count_key(family, f) for e in EXERCISES if e.family == family for f in e.functions]


def counting(module, family, file, counts):
    """An object with the functions of ``family`` from ``module`` (the student's ``file``). The ones the student
    wrote (the exercises' functions) count their calls in ``counts``, e.g. ``counts["im2col"]``,
    ``counts["conv2d forward"]``; the ones the handout gave are passed through."""
    written = {f for e in EXERCISES if e.file == file for f in e.functions}

    def wrap(name):
        function = getattr(module, name)
        if name not in written:
            return function
        key = count_key(family, name)

        def counted(*args, **kwargs):
            counts[key] = counts.get(key, 0) + 1
            return function(*args, **kwargs)
        return counted
    return types.SimpleNamespace(__name__=f"your exercises/{file}",
                                 **{name: wrap(name) for name in ops.kernels.contracts.FUNCTIONS[family]})


def register_student_tier(directory, counts, say=print):
    """Register the student's finished kernel families as the tier ``student``. Returns the families registered
    (in the order of the course); every other family gets one line from ``say`` saying why."""
    if TIER in ops.kernels.registered_tiers():
        with ops.kernels.use("reference"):             # a tier can be removed only while it is not active
            ops.kernels.unregister(TIER)
    mine = []
    for family, file in FAMILY_FILES.items():
        try:
            module = load_student_module(directory, file)
        except Exception as e:                         # the student's file may fail to import in any way
            say(_clip(f"{family}: exercises/{file} cannot be imported ({type(e).__name__}: {e}): "
                      f"the reference runs it"))
            continue
        report = ops.kernels.check(family, module)
        if not report.ok:
            say(why_refused(family, report))
            continue
        ops.kernels.register(TIER, family, counting(module, family, file, counts))
        say(f"{family}: yours (exercises/{file} passes the contract check)")
        mine.append(family)
    counts.clear()                                     # the contract checks' calls are not the training's
    return mine


def student_rmsprop(directory, counts, say=print):
    """The student's ``rmsprop_update`` if it agrees with the library's on a small case, else None (and a line)."""
    try:
        update = load_student_module(directory, "rmsprop.py").rmsprop_update
        rng = np.random.default_rng(7)
        mine = [rng.standard_normal(5), rng.standard_normal(5), np.ones(5), np.zeros(5)]
        library = [a.copy() for a in mine]
        for _ in range(2):
            update(*mine, 0.02, 0.9, 1.0, 0.9, 4e-5, True)
            optim.rmsprop.rmsprop_update(*library, 0.02, 0.9, 1.0, 0.9, 4e-5, True)
    except NotImplementedError:
        say("rmsprop: not done yet (rmsprop_update raises NotImplementedError): the library's update runs")
        return None
    except Exception as e:
        say(_clip(f"rmsprop: rmsprop_update raised {type(e).__name__} ({e}): the library's update runs"))
        return None
    if not all(np.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(mine, library)):
        say("rmsprop: rmsprop_update differs from the library's on a small case: the library's update runs")
        return None

    def counted(*args):
        counts["rmsprop_update"] = counts.get("rmsprop_update", 0) + 1
        update(*args)
    return counted


class StudentRMSProp(optim.RMSProp):
    """The recipe's RMSProp, whose per-parameter update is the student's ``rmsprop_update``."""

    def __init__(self, params, update, **hyperparameters):
        super().__init__(params, fused=False, **hyperparameters)
        self.student_update = update

    def update(self, data, grad, state, weight_decay):
        self.student_update(data, grad, state["ms"], state["mom"], self.lr, self.decay, self.eps, self.momentum,
                            weight_decay, self.eps_inside_sqrt)


def optimizer(recipe, model, update):
    """The recipe's optimizer, or with ``update`` (the student's) a ``StudentRMSProp`` of the same settings."""
    if update is None:
        return recipe.optimizer(model)
    return StudentRMSProp(model.named_parameters(), update, lr=recipe.lr, decay=recipe.rmsprop_decay,
                          eps=recipe.rmsprop_eps, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                          weight_decay_filter=optim.weights_only)


def use_student_blocks(model, directory, say=print):
    """Replace the IR-A blocks of ``model`` by the student's ``InceptionResNetA`` (with the library block's initial
    weights). Returns how many were replaced (0, with a line saying why, when the student's block is not usable)."""
    try:
        block_class = load_student_module(directory, "inception_resnet_a.py").InceptionResNetA
    except Exception as e:
        say(_clip(f"inception_resnet_a: exercises/inception_resnet_a.py cannot be imported ({type(e).__name__}: "
                  f"{e}): the library's block runs"))
        return 0
    replaced = 0
    for name, block in list(model.named_modules()):
        if type(block) is not models.InceptionResNetA:
            continue
        try:
            theirs = block_class(block.out_channels, Rules(WIDTH, small_input=True), 2, scale=block.scale,
                                 relu=block.relu)
            theirs.load_state_dict(block.state_dict())
        except NotImplementedError:
            say("inception_resnet_a: not done yet (InceptionResNetA raises NotImplementedError): the library's "
                "block runs")
            return replaced
        except Exception as e:
            say(_clip(f"inception_resnet_a: your block does not match the library's ({type(e).__name__}: {e}): "
                      f"the library's block runs"))
            return replaced
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, theirs)
        replaced += 1
    return replaced


def synthetic_data(steps, batch_size, test_images):
    """The synthetic shapes set: as many training images as the run reads (at least 500, at most 10,000), and
    ``test_images`` held out."""
    n_train = min(10000, max(500, steps * batch_size))
    return data.load_dataset("synthetic", synthetic_sizes=(n_train, test_images))


def batches(loader):
    """The loader's batches as (Tensor, labels), epoch after epoch."""
    while True:
        for x, y in loader:
            yield Tensor(x), y


def train(directory, steps=200, log_every=None, seed=0, say=print, test_images=TEST_IMAGES):
    """Train on the student's code in ``directory/exercises`` for ``steps`` steps; returns a dict of results
    (``losses``, ``accuracy``, ``families``, ``counts``, ...) after printing the run and its summary."""
    exercises_dir = f"{directory}/exercises"
    counts = Counter()
    say("Your exercise files, checked against the library's kernel contracts (ops.kernels.check):")
    families = register_student_tier(exercises_dir, counts, say)
    update = student_rmsprop(exercises_dir, counts, say)
    recipe = Recipe.scaled()
    loaded = synthetic_data(steps, recipe.batch_size, test_images)
    nn.init.manual_seed(seed)
    model = models.inception_resnet_v2(num_classes=loaded.train.num_classes, width=WIDTH, blocks=BLOCKS,
                                       small_input=True, dropout=recipe.dropout)
    blocks = use_student_blocks(model, exercises_dir, say)
    opt = optimizer(recipe, model, update)
    loader = recipe.train_loader(loaded.train, loaded.mean, loaded.std, seed=seed)
    schedule = recipe.schedule(len(loader))
    tier = TIER if families else "reference"
    log_every = log_every or max(1, steps // 10)
    for line in textwrap.wrap(f"Training Inception-ResNet-v2 (width {WIDTH}, blocks {','.join(map(str, BLOCKS))}, "
                              f"32x32) on {loaded.description}, {steps} steps of {recipe.batch_size}, kernel "
                              f"tier {tier!r}:", WIDTH_LIMIT):
        say(line)
    losses, correct, seen, start = [], 0, 0, time.perf_counter()
    with ops.kernels.use(tier):
        stream = batches(loader)
        for step in range(steps):
            x, y = next(stream)
            result = loop.train_step(model, opt, x, y, lr=schedule(step), label_smoothing=recipe.label_smoothing,
                                     clip_norm=recipe.clip_norm)
            losses.append(result.loss)
            correct, seen = correct + result.correct, seen + len(y)
            if (step + 1) % log_every == 0 or step + 1 == steps:
                say(f"  step {step + 1:>5}/{steps}  loss {np.mean(losses[-log_every:]):.4f}  "
                    f"train accuracy {correct / seen:6.1%}  {time.perf_counter() - start:6.1f} s")
                correct = seen = 0
        test = data.DataLoader(loaded.test, 250, shuffle=False, mean=loaded.mean, std=loaded.std)
        test_loss, accuracy = loop.evaluate(model, ((Tensor(x), y) for x, y in test))
    results = dict(losses=losses, test_loss=test_loss, accuracy=accuracy, families=families,
                   counts=dict(counts), rmsprop=update is not None, blocks=blocks,
                   seconds=time.perf_counter() - start, steps=steps)
    for line in summary(results, loaded.train.num_classes):
        say(line)
    return results


def summary(results, classes):
    """The closing lines: whose code trained the network, how well, and how often each of the student's functions
    ran."""
    losses, families = results["losses"], results["families"]
    k = min(10, max(1, len(losses) // 2))             # the first and last k steps do not overlap
    first, last = np.mean(losses[:k]), np.mean(losses[-k:])
    yours = list(families) + (["rmsprop_update"] if results["rmsprop"] else []) + \
        (["InceptionResNetA"] if results["blocks"] else [])
    who = f"your {', '.join(yours)}" if yours else "the library's reference code (none of yours is finished yet)"
    verb = "trained" if math.isfinite(last) and last < first else "ran"
    lines = textwrap.wrap(f"{who} {verb} an Inception-ResNet-v2: loss {first:.3f} -> {last:.3f} (mean of the "
                          f"first and last {k} steps), test accuracy {results['accuracy']:.1%} (chance "
                          f"{1 / classes:.0%}); {results['steps']} steps in {results['seconds']:.0f} s",
                          WIDTH_LIMIT)
    reference = [e.family for e in EXERCISES if e.family and e.family not in families]
    if reference:
        lines += textwrap.wrap(f"the library's reference ran: {', '.join(dict.fromkeys(reference))}", WIDTH_LIMIT)
    if results["counts"]:
        calls = ", ".join(f"{name} {n:,}" for name, n in sorted(results["counts"].items(), key=lambda kv: -kv[1]))
        lines += textwrap.wrap("calls of your functions: " + calls, WIDTH_LIMIT, subsequent_indent="  ")
    idle = [key for family in families for key in written_functions(family) if not results["counts"].get(key)]
    if idle:
        lines += textwrap.wrap(f"yours, but not called by this network: {', '.join(idle)} (it fuses its ReLUs into "
                               f"batch norm and the residual add, pools by max, and evaluates without a backward)",
                               WIDTH_LIMIT, subsequent_indent="  ")
    if results["blocks"]:
        lines.append(f"your InceptionResNetA built {results['blocks']} block(s) of the network")
    return lines
