"""minception.distributed: data-parallel training over MPI.

Two kinds of tests:

- single-process tests (always run): the synchronised batch norm's gradient (world size 1), the model
  conversions, the loader's shards, and that nothing imports mpi4py unless ``mpiexec`` started the process;
- multi-process tests: ``mpiexec -n 2`` runs the worker scripts in ``mpi_workers/`` and the training example,
  each in a subprocess with a timeout (and ``OMP_NUM_THREADS=1``: two ranks on two cores).

The multi-process tests need the ``distributed`` extra (mpi4py, and the MPICH wheel that brings ``mpiexec``).
Without mpi4py they are skipped, with the reason, so that the suite runs without the extra; but when the
environment variable ``CI`` is set (``.ci/run`` sets it and installs the extra) a missing mpi4py or ``mpiexec`` is a
failure, never a silent skip.
"""
import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from autograd import Tensor, gradcheck
from minception import data, distributed, models, nn, optim
from minception.distributed.environment import launcher_size
from minception.train import load_checkpoint, read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS = os.path.join(ROOT, "tests", "minception", "mpi_workers")
EXAMPLE = os.path.join(ROOT, "examples", "train_cifar_scaled.py")
TIMEOUT = 180          # seconds for one mpiexec job (a few seconds normally; generous for a loaded CI machine)


# ------------------------------------------------------------------------------------- finding mpiexec ---
def _find_mpiexec():
    """``mpiexec`` on PATH, or beside this Python (where the mpich wheel installs it), or None."""
    found = shutil.which("mpiexec")
    if found:
        return found
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "mpiexec")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def mpiexec():
    try:
        import mpi4py  # noqa: F401 -- the package only: MPI itself starts with mpi4py.MPI, in the workers
        has_mpi4py = True
    except ImportError:
        has_mpi4py = False
    if not has_mpi4py and not os.environ.get("CI"):
        pytest.skip("mpi4py is not installed: the multi-process tests need the extra "
                    "(pip install -e '.[distributed]'); CI installs it and runs them")
    if not has_mpi4py:
        pytest.fail("CI is set but mpi4py is not installed: .ci/run must install the 'distributed' extra")
    path = _find_mpiexec()
    if path is None:
        pytest.fail("mpi4py is installed but no mpiexec was found (on PATH or beside the Python interpreter); "
                    "install an MPI, e.g. pip install mpich")
    return path


def _clean_env():
    """This environment without a launcher's variables (so a child is never mistaken for a rank), one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "OMPI_", "MV2_", "HYDRA_", "MPI_LOCAL"))}
    env["OMP_NUM_THREADS"] = "1"
    # Open MPI's mpiexec, as containers often have it (MPICH's ignores these): it refuses to start as root
    # unless told twice, and without ssh or rsh it fails even for ranks on this machine unless its ssh launcher
    # is left out (every test runs its ranks here).
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    if shutil.which("ssh") is None and shutil.which("rsh") is None:
        env["OMPI_MCA_plm"] = "^rsh"
    return env


def _run(command, cwd=None, timeout=TIMEOUT):
    """Run ``command`` in its own process group; kill the whole group on timeout. Returns CompletedProcess."""
    proc = subprocess.Popen(command, cwd=cwd, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(command)}\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _ok(result):
    assert result.returncode == 0, f"exit status {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


# ----------------------------------------------------------------------------- single process: no MPI ---
def test_import_and_init_without_a_launcher_never_touch_mpi4py():
    code = ("import sys\n"
            "import minception, minception.train, minception.distributed as d\n"
            "import importlib.util\n"
            "spec = importlib.util.spec_from_file_location('ex', sys.argv[1]); spec.loader.exec_module("
            "importlib.util.module_from_spec(spec))\n"
            "assert 'mpi4py' not in sys.modules, 'imported mpi4py'\n"
            "c = d.init()\n"
            "assert (c.rank, c.size, c.is_main) == (0, 1, True), c\n"
            "assert 'mpi4py' not in sys.modules, 'init() imported mpi4py outside mpiexec'\n"
            "print('clean')\n")
    result = _ok(_run([sys.executable, "-c", code, EXAMPLE], cwd=ROOT, timeout=120))
    assert "clean" in result.stdout


def test_launcher_size_reads_the_launchers_variables():
    assert launcher_size({}) is None
    assert launcher_size({"PMI_SIZE": "4", "PMI_RANK": "1"}) == 4
    assert launcher_size({"OMPI_COMM_WORLD_SIZE": "8"}) == 8
    assert launcher_size({"PMIX_RANK": "0"}) == 0           # a launcher that does not tell the size


@pytest.mark.parametrize("relu", [False, True])
def test_sync_batch_norm_gradcheck_single_process(relu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 3)) * 1.5 + 0.3
    if relu:            # keep BN's output away from the ReLU's kink: outputs near 0 would straddle it
        x[np.abs(x) < 0.05] += 0.2
    comm = distributed.Communicator()
    gamma = Tensor(rng.uniform(0.5, 1.5, 4), requires_grad=True)
    beta = Tensor(rng.uniform(-0.3, 0.3, 4), requires_grad=True)

    def fn(x_, g_, b_):
        return distributed.SyncBatchNorm(comm, 0.1, 1e-3, None, None, relu=relu)(x_, g_, b_)

    assert gradcheck(fn, [Tensor(x, requires_grad=True), gamma, beta])


def test_sync_batch_norm_with_one_rank_is_batch_norm():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 7)) * 2 + 1
    gy = rng.standard_normal(x.shape)
    plain = nn.BatchNorm2d(3).to(dtype=np.float64)
    sync = distributed.SyncBatchNorm2d.from_batch_norm(nn.BatchNorm2d(3).to(dtype=np.float64),
                                                       distributed.Communicator())
    outs = []
    for layer in (plain, sync):
        xt = Tensor(x.copy(), requires_grad=True)
        y = layer(xt, relu=True)
        y.backward(gy)
        outs.append((y.data, xt.grad, layer.weight.grad, layer.bias.grad, layer.running_mean.copy(),
                     layer.running_var.copy(), int(layer.num_batches_tracked)))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    sync.eval()                  # evaluation: running statistics, the same as plain BN
    np.testing.assert_allclose(sync(Tensor(x)).data, plain.eval()(Tensor(x)).data, rtol=1e-12)


def test_sync_batch_norm_conversion_shares_state_and_reaches_every_unit():
    nn.init.manual_seed(0)
    model = models.inception_resnet_v2(num_classes=10, width=0.0625, blocks=(1, 1, 1), small_input=True)
    before = model.state_dict()
    param_ids = [id(p) for p in model.parameters()]
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    distributed.sync_batch_norm(model, distributed.Communicator())
    syncs = [m for m in model.modules() if isinstance(m, distributed.SyncBatchNorm2d)]
    assert len(syncs) == count > 0
    assert all(isinstance(m.bn, distributed.SyncBatchNorm2d) for m in model.modules()
               if isinstance(m, nn.ConvBNReLU))
    assert [id(p) for p in model.parameters()] == param_ids          # the optimizer still holds the right ones
    assert [id(p) for _, p in opt.params] == param_ids
    after = model.state_dict()
    assert list(after) == list(before)
    y = model(Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)))
    assert y.shape == (2, 10) and np.all(np.isfinite(y.data))
    assert any(f.scope for f in [y.creator])      # the graph still records module scopes


class CountingCommunicator(distributed.Communicator):
    """One process that counts its all-reduces (a SyncBatchNorm does one in forward and one in backward)."""

    def __init__(self):
        self.allreduces = 0

    def allreduce_sum_(self, array):
        self.allreduces += 1
        return array


@pytest.mark.parametrize("order", ["sync_then_fuse", "fuse_then_sync"])
def test_sync_batch_norm_reaches_the_fused_heads(order, monkeypatch):
    """``model.fuse()`` (the example fuses) replaces sibling 1x1 units by FusedHeads that run their own batch
    norms after the merged conv: every one of them must synchronise, whichever of the two rewrites came first,
    and the numbers must be those of the plain model (one rank: sync BN is BN)."""
    def build():
        nn.init.manual_seed(0)
        return models.inception_resnet_v2(num_classes=10, width=0.0625, blocks=(1, 1, 1), small_input=True,
                                          dropout=0.0).to(dtype=np.float64)

    reference, model, comm = build(), build(), CountingCommunicator()
    if order == "sync_then_fuse":
        distributed.sync_batch_norm(model, comm)
        model.fuse()
    else:
        model.fuse()
        distributed.sync_batch_norm(model, comm)
    heads = [m for m in model.modules() if isinstance(m, nn.FusedHead)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert heads and all(isinstance(h.bn, distributed.SyncBatchNorm2d) for h in heads)
    assert all(isinstance(m, distributed.SyncBatchNorm2d) for m in norms)
    assert model.state_dict().keys() == reference.state_dict().keys()

    merges = {"n": 0}
    real_merge = nn.fusion.MergedHeads._merge

    def counting_merge(self, *args):
        merges["n"] += 1
        return real_merge(self, *args)

    monkeypatch.setattr(nn.fusion.MergedHeads, "_merge", counting_merge)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 32, 32))
    y, y_ref = model(Tensor(x)), reference(Tensor(x))
    assert merges["n"] > 0                          # the merged-conv path ran ...
    assert comm.allreduces == len(norms)            # ... and every batch norm synchronised, the heads' included
    np.testing.assert_allclose(y.data, y_ref.data, rtol=1e-9, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    y_ref.backward(gy)
    assert comm.allreduces == 2 * len(norms)
    grads = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        np.testing.assert_allclose(grads[name].grad, p.grad, rtol=1e-8, atol=1e-10, err_msg=name)
    state = model.state_dict()
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(state[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def test_sharded_dropout_with_one_rank_is_the_layers_own_stream():
    source = nn.Dropout(0.5, seed=4)
    sharded = distributed.ShardedDropout.from_dropout(source, distributed.Communicator())
    assert sharded.rng_state is source.rng_state          # the same buffer: the stream and its checkpoint key
    plain = nn.Dropout(0.5, seed=4)
    x = np.ones((3, 5), np.float32)
    for _ in range(2):
        np.testing.assert_array_equal(sharded(Tensor(x)).data, plain(Tensor(x)).data)
    np.testing.assert_array_equal(sharded.rng_state, [4, 2])
    model = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5, seed=6))
    keys = list(model.state_dict())
    distributed.shard_dropout(model, distributed.Communicator())
    assert isinstance(model[1], distributed.ShardedDropout) and list(model.state_dict()) == keys


def test_loader_shard_arguments_are_checked():
    images, labels = np.zeros((20, 3, 4, 4), np.uint8), np.arange(20)
    with pytest.raises(ValueError, match="shard"):
        data.DataLoader((images, labels), 4, shard=(2, 2), drop_last=True)
    with pytest.raises(ValueError, match="drop_last"):
        data.DataLoader((images, labels), 4, shard=(0, 2))
    with pytest.raises(ValueError, match="2 shards of 16"):
        data.DataLoader((images, labels), 16, shard=(1, 2), drop_last=True)
    loader = data.DataLoader((images, labels), 4, shard=(1, 2), drop_last=True)
    assert len(loader) == 2 and loader.global_batch_size == 8
    state = loader.state_dict()
    with pytest.raises(ValueError, match="shards"):
        data.DataLoader((images, labels), 4, drop_last=True).load_state_dict(state)


def test_single_process_data_parallel_changes_nothing():
    nn.init.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    dp = distributed.DataParallel(model, distributed.Communicator(), sync_batch_norm=True)
    assert (dp.rank, dp.world_size, dp.is_main, dp.shard) == (0, 1, True, (0, 1))
    model[0].weight.grad = np.ones((2, 3), np.float32)
    dp.average_gradients()
    np.testing.assert_array_equal(model[0].weight.grad, 1.0)
    assert dp.batch_totals(2.5, 3, 4) == (2.5, 3)


# ---------------------------------------------------------------------------- several processes: MPI ---
def test_collectives_with_two_ranks(mpiexec):
    result = _ok(_run([mpiexec, "-n", "2", sys.executable, os.path.join(WORKERS, "collectives.py")]))
    for name in ("gradient_average", "broadcast", "sync_batch_norm", "sharded_dropout", "loader_shards",
                 "on_main_any", "non_finite_stop"):
        assert f"ok {name}" in result.stdout, result.stdout


def test_two_ranks_of_16_follow_one_process_of_32_with_sync_bn(mpiexec, tmp_path):
    worker = os.path.join(WORKERS, "equivalence.py")
    _ok(_run([sys.executable, worker, "--out", str(tmp_path / "one.npz")]))
    _ok(_run([mpiexec, "-n", "2", sys.executable, worker, "--out", str(tmp_path / "two.npz")]))
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        assert one[f"{dtype}/losses"].shape == (10,)
        np.testing.assert_allclose(two[f"{dtype}/losses"], one[f"{dtype}/losses"], rtol=tol, atol=tol,
                                   err_msg=f"{dtype} losses")
        finals = [k for k in one.files if k.startswith(f"{dtype}/final/")]
        assert finals
        moved = 0.0
        for key in finals:
            np.testing.assert_allclose(two[key], one[key], rtol=tol, atol=tol, err_msg=key)
            initial = key.replace("/final/", "/initial/")
            np.testing.assert_array_equal(two[initial], one[initial], err_msg=f"{initial} (broadcast)")
            if one[key].dtype.kind == "f":
                moved = max(moved, float(np.abs(one[key] - one[initial]).max()))
        assert moved > 1e-3          # the runs did train: equal results are not equal non-results


def _example_args(*extra, out="run", batch_size=8):
    return ["--synthetic", "--subset", "48", "--test-subset", "16", "--width", "0.0625", "--blocks", "0,0,0",
            "--batch-size", str(batch_size), "--lr", "0.001", "--sync-bn", "--no-progress", "--no-download",
            "--checkpoint-every", "0", "--log-every", "1", "--out", str(out), *extra]


def _two_folders(mpiexec, folder_0, folder_1, *args):
    """The example as 2 ranks, rank 0 working in ``folder_0`` and rank 1 in ``folder_1`` (an MPMD launch)."""
    command = [mpiexec]
    for i, folder in enumerate((folder_0, folder_1)):
        command += (([":"] if i else []) + ["-n", "1", "-wdir", str(folder), sys.executable, EXAMPLE]
                    + _example_args(*args))
    return _run(command)


def _in_process_example(argv):
    spec = importlib.util.spec_from_file_location("train_cifar_scaled_dist", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = module.main(argv)
    assert code == 0, buf.getvalue()
    return buf.getvalue()


def _arrays(tree, prefix=""):
    """{path: array} of every array in a checkpoint tree."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_arrays(v, f"{prefix}/{k}"))
        return out
    return {prefix: tree} if isinstance(tree, np.ndarray) else {}


def test_example_rank_0_writes_alone_resumes_and_matches_one_process(mpiexec, tmp_path):
    a0, a1 = tmp_path / "a0", tmp_path / "a1"
    for folder in (a0, a1):
        folder.mkdir()
    # 3 steps per epoch (48 images, global batch 16): stop in the middle of epoch 1
    first = _ok(_two_folders(mpiexec, a0, a1, "--max-steps", "2"))
    assert first.stdout.count("global batch 16 = 2 processes x 8, synchronised batch norm") == 1, first.stdout
    assert first.stdout.count("results in") == 1
    assert os.listdir(a1) == [], "rank 1 wrote files"
    assert {"run.json", "last.npz", "train_log.jsonl"} <= set(os.listdir(a0 / "run"))
    assert json.loads((a0 / "run" / "run.json").read_text())["processes"] == 2
    assert [r["step"] for r in read_jsonl(a0 / "run" / "train_log.jsonl")] == [1, 2]   # one writer

    # resume: rank 0 reads the checkpoint, rank 1 (whose folder is empty) receives it; across the epoch end
    second = _ok(_two_folders(mpiexec, a0, a1, "--resume", "--max-steps", "4"))
    assert second.stdout.count("resuming") == 1 and os.listdir(a1) == []
    assert [r["epoch"] for r in read_jsonl(a0 / "run" / "metrics.jsonl")] == [1]
    resumed = load_checkpoint(a0 / "run" / "last.npz")
    assert resumed["position"]["step"] == 4

    # one process with the global batch of 16, without the interruption: with synchronised BN, and dropout
    # masks and crops drawn for the global batch, it is the same run up to float32 rounding (a resume that lost
    # rank 1's generator, loader position or optimizer state would be off by far more)
    single = tmp_path / "single"
    _in_process_example(_example_args("--max-steps", "4", out=single, batch_size=16))
    np.testing.assert_allclose([r["train_loss"] for r in read_jsonl(a0 / "run" / "train_log.jsonl")],
                               [r["train_loss"] for r in read_jsonl(single / "train_log.jsonl")],
                               rtol=1e-5, atol=1e-5)
    alone = load_checkpoint(single / "last.npz")
    assert alone["position"] == resumed["position"]
    # (the optimizer's mean squares hold squared gradients: twice their relative rounding)
    for part, tol in (("model", 1e-5), ("ema", 1e-5), ("optimizer", 1e-4)):
        arrays_alone, arrays_resumed = _arrays(alone[part]), _arrays(resumed[part])
        assert arrays_alone.keys() == arrays_resumed.keys() and arrays_alone
        for key, value in arrays_alone.items():
            np.testing.assert_allclose(arrays_resumed[key], value, rtol=tol, atol=tol, err_msg=f"{part}{key}")


@pytest.mark.gpu
@pytest.mark.parametrize("ranks", [1, 2])
def test_gpu_collectives(mpiexec, ranks):
    """CuPy arrays: NCCL when every rank has its own GPU (1 rank on any GPU machine; 2 ranks with 2 GPUs),
    host memory otherwise; both must give the CPU's numbers."""
    result = _ok(_run([mpiexec, "-n", str(ranks), sys.executable, os.path.join(WORKERS, "gpu_collectives.py")]))
    for name in ("gpu_allreduce", "gpu_gradients", "gpu_sync_batch_norm", "gpu_broadcast"):
        assert f"ok {name}" in result.stdout, result.stdout + result.stderr
    from minception.distributed.nccl import nccl_module
    if ranks == 1 and nccl_module() is not None:     # one rank always has its own GPU: NCCL must be used
        assert "ok gpu_allreduce nccl" in result.stdout, result.stdout + result.stderr


@pytest.mark.gpu
def test_sync_batch_norm_on_the_gpu_single_process():
    import cupy as cp

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    gy = rng.standard_normal(x.shape)
    outs = []
    for sync in (False, True):
        layer = nn.BatchNorm2d(3).to(dtype=np.float64)
        if sync:
            layer = distributed.SyncBatchNorm2d.from_batch_norm(layer, distributed.Communicator())
        layer.to("cuda")
        xt = Tensor(cp.asarray(x), requires_grad=True)
        y = layer(xt, relu=True)
        y.backward(cp.asarray(gy))
        outs.append([cp.asnumpy(a) for a in (y.data, xt.grad, layer.weight.grad, layer.running_var)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_rank_that_raises_ends_the_job(mpiexec):
    result = _run([mpiexec, "-n", "2", sys.executable, os.path.join(WORKERS, "failure.py"), "raise"], timeout=60)
    assert result.returncode != 0
    assert "[rank 1 of 2] failed: RuntimeError: deliberate failure on rank 1" in result.stderr, result.stderr


def test_a_rank_that_exits_with_an_error_while_another_is_stuck_ends_the_job(mpiexec):
    result = _run([mpiexec, "-n", "2", sys.executable, os.path.join(WORKERS, "failure.py"), "status"], timeout=60)
    assert result.returncode != 0
    assert "[rank 1 of 2] stopped with exit status 3" in result.stderr, result.stderr


# ------------------------------------------------------------- every rank fails fast, and agrees or refuses ---
def _one_rank_differs(mpiexec, tmp_path, prefix=(), flags=(), rank=1, timeout=TIMEOUT):
    """The example as 2 ranks (an MPMD launch) where ``rank`` alone runs under ``prefix`` (e.g.
    ``env NAME=value``) with ``flags`` added. ``env`` sets a variable on one rank with any launcher."""
    args = _example_args("--max-steps", "1", out=tmp_path / "run")
    unset = ["env", "-u", "MINCEPTION_KERNELS"]       # both ranks start from the same environment, whatever ours is
    plain, different = [*unset, sys.executable, EXAMPLE, *args], [*unset, *prefix, sys.executable, EXAMPLE, *args,
                                                                   *flags]
    first, second = (plain, different) if rank == 1 else (different, plain)
    return _run([mpiexec, "-n", "1", *first, ":", "-n", "1", *second], timeout=timeout)


@pytest.mark.parametrize("rank", [1, 0])
def test_a_rank_that_fails_while_importing_ends_the_job_with_its_message(mpiexec, tmp_path, rank):
    """A bad MINCEPTION_KERNELS on one rank alone: ``import ops`` fails there, before ``run_or_abort`` is in
    place; the other must not wait for it forever (it did: the launcher does not end a job when one process
    exits with an error)."""
    result = _one_rank_differs(mpiexec, tmp_path, ["env", "MINCEPTION_KERNELS=bogus"], rank=rank, timeout=30)
    assert result.returncode != 0
    assert (f"[rank {rank} of 2] failed: ValueError: environment variable MINCEPTION_KERNELS: unknown kernel tier "
            "'bogus'" in result.stderr), result.stderr


@pytest.mark.parametrize("prefix, flags, message", [
    ((), ("--lr", "-1"), "--lr differs between the processes: 0.001 on rank 0, -1.0 on rank 1"),
    ((), ("--seed", "1"), "--seed differs between the processes: not given on rank 0, 1 on rank 1"),
    (("env", "MINCEPTION_KERNELS=reference"), (),
     "$MINCEPTION_KERNELS differs between the processes: unset on rank 0, 'reference' on rank 1"),
])
def test_ranks_started_with_different_settings_refuse_to_run(mpiexec, tmp_path, prefix, flags, message):
    """A flag or an environment setting that rank 1 alone was given: exit 2 on every rank, naming the setting and
    the ranks (rank 0's settings used to be the only ones checked and used; rank 1's were silently ignored)."""
    result = _one_rank_differs(mpiexec, tmp_path, prefix, flags, timeout=60)
    assert result.returncode == 2, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stderr.strip().splitlines() == [f"train_cifar_scaled.py: error: {message}"], result.stderr
    assert not (tmp_path / "run").exists(), "the run folder was written before the settings were compared"


class _Gathered(distributed.Communicator):
    """A communicator whose ``allgather_object`` answers with the given ranks' objects."""

    def __init__(self, everyone):
        self.size, self.everyone = len(everyone), everyone

    def allgather_object(self, obj):
        return self.everyone


def test_agree_on_settings_compares_type_and_text_and_names_the_ranks():
    same = {"--lr": float("nan"), "--blocks": "1,1,1", "$OMP_NUM_THREADS": None}
    assert distributed.agree_on_settings(_Gathered([same, dict(same)]), same) == same       # nan equals nan
    assert distributed.agree_on_settings(distributed.Communicator(), same) == same           # alone: nothing to do
    everyone = [{"--lr": 0.02, "--seed": 1}, {"--lr": 0.02}, {"--lr": 0.02, "--seed": 1}, {"--lr": 1, "--seed": 1},
                {"--lr": 0.02, "--seed": 1}]
    with pytest.raises(distributed.SettingsDisagree) as caught:
        distributed.agree_on_settings(_Gathered(everyone), everyone[0])
    assert str(caught.value) == ("--lr differs between the processes: 0.02 on ranks 0-2, 4, 1 on rank 3 "
                                 "(and 1 more setting)")
    huge = [{"x": 10 ** 5000}, {"x": "a" * 10 ** 6}, {"x": 3}, {"x": 4}]
    with pytest.raises(ValueError) as caught:
        distributed.agree_on_settings(_Gathered(huge), huge[0])
    assert len(str(caught.value)) <= 160 and "2 other values" in str(caught.value), str(caught.value)
    assert distributed.environment_settings({"MINCEPTION_KERNELS": "fast", "HOME": "x"}) == {
        "$MINCEPTION_KERNELS": "fast", "$MINCEPTION_DATA": None, "$OMP_NUM_THREADS": None}
