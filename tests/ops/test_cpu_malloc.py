"""``ops.kernels.cpu.tune_malloc``: the malloc settings are applied once, by the fast CPU tier's first convolution
(never on import, never by the reference tier), can be turned off with ``MINCEPTION_SYSTEM_MALLOC=1``, and really
stop the page faults of a repeated large allocation (checked in a fresh process, with ``resource.getrusage``)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import resource, sys
import numpy as np
if sys.argv[1] == "tune":
    from ops.kernels.cpu import tune_malloc
    applied = tune_malloc()
    assert tune_malloc() == applied                      # idempotent
elif sys.argv[1] == "import":                            # import everything, run nothing
    import ops, minception.models
    applied = False
else:                                                    # a training step, in the tier named by argv[1]
    import ops
    from autograd import Tensor
    from minception import models, optim
    from ops.kernels.cpu import conv2d as cpu_conv2d
    cpu_conv2d.MIN_THREADED_MACS = 0
    rng = np.random.default_rng(0)
    model = models.inception_resnet_v2(num_classes=3, width=0.0625, small_input=True)
    opt = optim.RMSProp(model.named_parameters(), lr=0.01)
    x = Tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    with ops.kernels.use(sys.argv[1]):
        ops.softmax_cross_entropy(model(x), np.array([0, 1, 2, 0])).backward()
        opt.step()
    applied = "kept for reuse" in ops.kernels.describe("fast")
a = np.ones(4 << 20); del a                              # 32 MB, touched then freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = np.ones(4 << 20); del a
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(applied, faults)
"""


def run(env_value=None, mode="tune"):
    env = dict(os.environ)
    env.pop("MINCEPTION_SYSTEM_MALLOC", None)
    if env_value is not None:
        env["MINCEPTION_SYSTEM_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_blocks_are_reused_without_page_faults():
    applied, faults = run()
    if not applied:
        pytest.skip("this libc has no mallopt (not glibc)")
    off, faults_off = run("1")
    assert not off
    # glibc's defaults fault the pages of every new 32 MB block again (4 KB pages, or 2 MB ones where NumPy's
    # huge-page advice is taken); with the settings the freed block is reused
    assert faults * 5 < faults_off, f"{faults} minor faults with the settings, {faults_off} without"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_the_fast_cpu_tier_tunes_malloc_at_its_first_convolution():
    """A plain training loop in the fast tier gets the settings without asking (describe() says so), and
    ``MINCEPTION_SYSTEM_MALLOC=1`` keeps glibc's defaults."""
    applied, faults = run()
    if not applied:
        pytest.skip("this libc has no mallopt (not glibc)")
    fast, faults_fast = run(mode="fast")
    assert fast and faults_fast * 5 < run("1")[1], f"{faults_fast} minor faults after a fast-tier step"
    fast_off, faults_off = run("1", mode="fast")
    assert not fast_off and faults * 5 < faults_off, f"{faults_off} faults with MINCEPTION_SYSTEM_MALLOC=1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
@pytest.mark.parametrize("mode", ["import", "reference"])
def test_importing_and_the_reference_tier_leave_malloc_alone(mode):
    applied, faults = run()
    if not applied:
        pytest.skip("this libc has no mallopt (not glibc)")
    _, faults_library = run(mode=mode)
    assert faults * 5 < faults_library, f"{faults_library} minor faults after {mode}, {faults} when tuned"
