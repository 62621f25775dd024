"""Output shapes of every stage, at 299x299 (the paper's 35 -> 17 -> 8) and with small_input at 32x32
(32 -> 16 -> 8); every parameter gets a gradient. Full-size (width 1) forwards are marked slow.
"""
import time

import numpy as np
import pytest

import ops
from autograd import Tensor, no_grad
from minception import models
from minception.models import Rules

BUILDERS = {
    "v4-paper": lambda **kw: models.inception_v4(**kw),
    "v4-released": lambda **kw: models.inception_v4(variant="released", **kw),
    "ir-v1": lambda **kw: models.inception_resnet_v1(**kw),
    "ir-v2-paper": lambda **kw: models.inception_resnet_v2(**kw),
    "ir-v2-released": lambda **kw: models.inception_resnet_v2(variant="released", **kw),
}


def expected_channels(name, width):
    """Channels at the end of each stage, from the paper's numbers and the width rule."""
    ch = Rules(width).channels
    if name.startswith("v4"):
        stem = ch(192) + 2 * ch(96)
        a = 4 * ch(96)
        red_a = ch(384) + ch(256) + a
        b = ch(384) + 2 * ch(256) + ch(128)
        red_b = ch(192) + ch(320) + b
        return dict(stem=stem, inception_a=a, reduction_a=red_a, inception_b=b, reduction_b=red_b,
                    inception_c=6 * ch(256))
    if name == "ir-v1":
        stem = ch(256)
        red_a = ch(384) + ch(256) + stem
        red_b = ch(384) + 2 * ch(256) + red_a
    elif name == "ir-v2-paper":
        stem = ch(192) + 2 * ch(96)
        red_a = ch(384) + ch(384) + stem
        red_b = ch(384) + ch(288) + ch(320) + red_a
    else:
        stem = ch(96) + ch(64) + ch(96) + ch(64)
        red_a = ch(384) + ch(384) + stem
        red_b = ch(384) + ch(288) + ch(320) + red_a
    shapes = dict(stem=stem, inception_resnet_a=stem, reduction_a=red_a, inception_resnet_b=red_a,
                  reduction_b=red_b, inception_resnet_c=red_b)
    if name == "ir-v2-released":
        shapes["conv2d_7b"] = ch(1536)
    return shapes


def run_with_stage_shapes(model, x):
    """Forward ``x`` and record the output shape at the end of each stage (``model.stage_ends``)."""
    shapes, handles = {}, []
    modules = dict(model.named_modules())
    for stage, path in model.stage_ends.items():
        def record(module, args, output, stage=stage):
            shapes[stage] = output.shape
        handles.append(modules[path].register_forward_hook(record))
    try:
        y = model(x)
    finally:
        for h in handles:
            h.remove()
    return y, shapes


def check_stages(name, model, y, shapes, batch, grids, num_classes, width):
    channels = expected_channels(name, width)
    assert set(shapes) == set(channels)
    for stage, c in channels.items():
        grid = grids[0] if stage in ("stem", "inception_a", "inception_resnet_a") else \
            grids[1] if stage in ("reduction_a", "inception_b", "inception_resnet_b") else grids[2]
        assert shapes[stage] == (batch, c, grid, grid), f"{name}: {stage}"
    assert y.shape == (batch, num_classes)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_stage_shapes_at_299(name):
    """The paper's grids (35, 17, 8) at a reduced width: shapes only depend on width through the channel rule."""
    width = 0.125
    model = BUILDERS[name](num_classes=7, width=width, blocks=(1, 1, 1)).eval()
    x = Tensor(np.random.default_rng(0).standard_normal((1, 3, 299, 299)).astype(np.float32))
    with no_grad():
        y, shapes = run_with_stage_shapes(model, x)
    check_stages(name, model, y, shapes, batch=1, grids=(35, 17, 8), num_classes=7, width=width)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_stage_channels_at_width_1(name):
    """The spec's channel counts at width 1 (no forward: the blocks' bookkeeping, checked against real
    forwards by the other tests)."""
    model = BUILDERS[name](blocks=(1, 1, 1))
    modules = dict(model.named_modules())
    got = {stage: modules[path].out_channels if hasattr(modules[path], "out_channels") else
           modules[path].conv.out_channels for stage, path in model.stage_ends.items()}
    want = expected_channels(name, 1.0)
    assert got == want
    assert want["inception_c" if name.startswith("v4") else "inception_resnet_c"] == \
        {"v4-paper": 1536, "v4-released": 1536, "ir-v1": 1792, "ir-v2-paper": 2144, "ir-v2-released": 2080}[name]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_small_input_shapes_and_every_parameter_gets_a_gradient(name):
    width = 0.125
    model = BUILDERS[name](num_classes=10, width=width, blocks=(1, 1, 1), small_input=True)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    y, shapes = run_with_stage_shapes(model, x)
    check_stages(name, model, y, shapes, batch=2, grids=(32, 16, 8), num_classes=10, width=width)
    loss = ops.softmax_cross_entropy(y, np.array([3, 7]))
    loss.backward()
    no_grad_params = [n for n, p in model.named_parameters() if p.grad is None or not np.abs(p.grad).max() > 0]
    assert no_grad_params == []
    assert all(p.grad.shape == p.shape and np.isfinite(p.grad).all() for p in model.parameters())


def test_released_variant_runs_with_more_c_blocks_and_no_a_blocks():
    model = models.inception_resnet_v2(variant="released", num_classes=3, width=0.0625, blocks=(0, 1, 2),
                                       small_input=True).eval()
    with no_grad():
        y = model(Tensor(np.ones((1, 3, 32, 32), np.float32)))
    assert y.shape == (1, 3) and len(model.repeat) == 0 and len(model.repeat_2) == 1


def test_eval_mode_is_deterministic_and_dropout_only_acts_in_training():
    model = models.inception_resnet_v1(num_classes=5, width=0.0625, blocks=(1, 1, 1), small_input=True,
                                       dropout=0.5)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32))
    model.eval()
    with no_grad():
        a, b = model(x).data, model(x).data
    np.testing.assert_array_equal(a, b)


def test_summary_reads_like_the_paper():
    model = models.inception_resnet_v2(num_classes=10, width=0.0625, blocks=(1, 1, 1), small_input=True)
    table = model.summary((1, 3, 32, 32), print_fn=None)
    for name in ("stem", "mixed_5a", "inception_resnet_a_1", "reduction_a", "inception_resnet_b_1",
                 "reduction_b", "inception_resnet_c_1", "head.fc"):
        assert name in table
    assert f"{model.num_parameters():,}" in table


# ---------------------------------------------------------------------------------------------- full size
@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILDERS))
def test_full_size_forward_at_299(name):
    """One float32 forward of the full network (width 1, default blocks), batch 1, in eval mode."""
    model = BUILDERS[name]().eval()
    x = Tensor(np.random.default_rng(3).standard_normal((1, 3, 299, 299)).astype(np.float32))
    start = time.perf_counter()
    with no_grad():
        y, shapes = run_with_stage_shapes(model, x)
    seconds = time.perf_counter() - start
    print(f"\n{name}: full forward at 299x299, batch 1, float32: {seconds:.1f} s")
    check_stages(name, model, y, shapes, batch=1, grids=(35, 17, 8), num_classes=1000, width=1.0)
    assert y.dtype == np.float32 and np.isfinite(y.data).all()
