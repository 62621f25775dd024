"""Do minception's released Inception-v4 / Inception-ResNet-v2 compute exactly what timm's do? Print the logit
differences on the same weights and the same inputs (float32, eval mode).

Needs PyTorch and timm, which minception itself never imports; use a separate environment, e.g.

    python -m venv --system-site-packages ~/torchenv && ~/torchenv/bin/pip install torch timm
    ~/torchenv/bin/python bench/compare_timm.py                       # random weights (no download needed)
    ~/torchenv/bin/python bench/compare_timm.py --weights inception_v4=v4.safetensors \\
                                                --weights inception_resnet_v2=irv2.safetensors   # published weights

Without ``--weights`` each timm network gets random weights that make every layer matter: random convolution and
linear weights (timm's init), random BN gamma/beta/biases, and BN running statistics first calibrated on a batch
(so activations stay O(1) through 50+ layers) and then perturbed. timm's state dict is written to a temporary
``.safetensors`` file with minception's NumPy writer and read back by ``load_timm_weights``: the same path a
downloaded checkpoint takes. With ``--weights`` both sides load the given file (timm with its own strict loader).

Inputs: two random images (uniform in [-1, 1]) and one real photo (matplotlib's grace_hopper.jpg, or ``--image``)
preprocessed by minception (whose bytes are first compared with timm's own eval transform).

Reports per network and input, max |logit| (timm, float64) and:
- float32 (the issue's target): max |logit difference| between minception and timm, absolute and relative to max
  |logit|; next to it "timm own": timm's float32 result against timm's float64 result, i.e. the float32 rounding
  noise of this network on this input, which no float32 implementation can beat.
- float64: both sides in float64. Here rounding is ~1e-16 per operation, so any real difference in a layer (a
  kernel order, a padding, an eps, a branch order) stands out by many orders of magnitude: this column is the proof
  that every layer computes the same function.
Verdict: "ok" when float64 agrees (<= --tol64) and float32 agrees within --tol (1e-4), or float32 differs by no
more than twice timm's own float32 error ("float32 rounding"): random networks amplify rounding layer after layer,
trained ones much less. Forward times were taken on a shared, noisy machine: indicative only. On a failure, or with
``--trace``, every block is hooked on both sides and the first one whose output differs is named. Exit status 1 if
anything differs.
"""
import argparse
import copy
import os
import sys
import tempfile
import time

import numpy as np

try:
    import timm
    import torch
except ImportError:  # pragma: no cover - this script is for an environment with torch
    sys.exit("compare_timm.py needs torch and timm (see the module docstring); minception itself needs neither")

from autograd import Tensor, no_grad
from minception import models
from minception.pretrained import load_timm_weights, preprocess, read_weights, save_safetensors

BUILDERS = {"inception_v4": models.inception_v4, "inception_resnet_v2": models.inception_resnet_v2}


# ---------------------------------------------------------------------------------------------- timm side
def randomize_timm(model, calibration, seed):
    """Random weights with sensible activation scales (see the module docstring); in place, returns the model."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None                      # cumulative average: one batch -> exactly its statistics
            bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.5, 1.5, generator=g))
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        model.train()
        model(calibration)
        model.eval()
        for bn in bns:
            bn.momentum = 0.1
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=g) * 0.1 * std)
            bn.running_var.mul_(torch.empty_like(bn.running_var).uniform_(0.8, 1.25, generator=g))
    return model


def timm_model(name, weights, calibration, seed):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    if weights:
        state = {k: torch.from_numpy(v) for k, v in read_weights(weights).items()}
        result = model.load_state_dict(state, strict=False)
        bad = [k for k in result.missing_keys + result.unexpected_keys if not k.endswith("num_batches_tracked")]
        if bad:
            sys.exit(f"{weights} does not fit timm's {name}: {bad[:10]}")
    else:
        randomize_timm(model, calibration, seed)
    return model.eval()


# ---------------------------------------------------------------------------------------------- comparison
def engine_forward(model, x):
    with no_grad():
        return np.asarray(model(Tensor(x)).data)


def trace(engine, reference, x, depth=3):
    """Hook every module up to ``depth`` dots deep on both sides, run ``x`` through both, and return
    ``[(name, max|diff|, max|ref|)]`` in timm's execution order."""
    ours, theirs, order, handles = {}, {}, [], []
    ref_modules = dict(reference.named_modules())
    for name, module in engine.named_modules():
        if not name or name.count(".") >= depth or name not in ref_modules:
            continue
        if name.endswith(".bn"):       # timm's "bn" (BatchNormAct2d) applies the ReLU too; ours leaves it outside
            continue

        def keep_ours(mod, args, out, name=name):
            ours[name] = np.asarray(out.data)

        def keep_theirs(mod, args, out, name=name):
            theirs[name] = out.detach().numpy()
            order.append(name)

        handles.append(module.register_forward_hook(keep_ours))
        handles.append(ref_modules[name].register_forward_hook(keep_theirs))
    try:
        engine_forward(engine, x)
        with torch.no_grad():
            reference(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name in order:
        if name in ours and ours[name].shape == theirs[name].shape:
            d = float(np.abs(ours[name].astype(np.float64) - theirs[name]).max())
            rows.append((name, d, float(np.abs(theirs[name]).max())))
        else:
            rows.append((name, float("nan"), float("nan")))
    return rows


def print_trace(rows, tol):
    print("    layer-by-layer (timm's execution order): module, max|diff|, max|timm output|, relative")
    first_bad = None
    for name, d, s in rows:
        rel = d / max(s, 1e-30) if s == s else float("nan")
        flag = ""
        if not rel <= tol and first_bad is None:
            first_bad, flag = name, "   <-- first difference"
        print(f"      {name:<36s} {d:10.3e} {s:10.3e} {rel:10.3e}{flag}")
    if first_bad:
        print(f"    first module whose output differs: {first_bad}")


def check_preprocessing(photo):
    from PIL import Image
    from timm.data import create_transform, resolve_data_config
    image = Image.open(photo).convert("RGB")
    rows = []
    for name in BUILDERS:
        cfg = resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        theirs = create_transform(**cfg)(image).numpy()[None]
        ours = preprocess(image, name)
        rows.append((name, cfg["crop_pct"], cfg["interpolation"], float(np.abs(theirs - ours).max())))
    return rows


def compare_network(name, source, photo, random_x, rng, args):
    """Run one network both ways in float32 and float64; print the table; return True if it passes."""
    x = np.concatenate([random_x, preprocess(photo, name)])
    labels = ["random 1", "random 2", os.path.basename(photo)]
    calibration = torch.from_numpy(np.concatenate([x, rng.uniform(-1, 1, (2, 3, 299, 299)).astype(np.float32)]))
    t0 = time.perf_counter()
    reference = timm_model(name, source, calibration, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = source
        if path is None:           # timm's state dict -> safetensors (NumPy writer) -> minception's loader
            path = os.path.join(tmp, f"{name}.safetensors")
            save_safetensors({k: v.detach().numpy() for k, v in reference.state_dict().items()}, path)
        engine = BUILDERS[name](variant="released")
        load_timm_weights(engine, path)
    engine.eval()
    setup = time.perf_counter() - t0

    with torch.no_grad():
        t1 = time.perf_counter()
        t32 = reference(torch.from_numpy(x)).numpy()
        t_timm = time.perf_counter() - t1
    t1 = time.perf_counter()
    e32 = engine_forward(engine, x)
    t_engine = time.perf_counter() - t1
    # float64 on both sides: what remains is the difference between the two computations, not rounding
    reference64 = copy.deepcopy(reference).double()
    with torch.no_grad():
        t64 = reference64(torch.from_numpy(x).double()).numpy()
    engine.to(dtype=np.float64)
    e64 = engine_forward(engine, x.astype(np.float64))
    engine.to(dtype=np.float32)

    print(f"\n{name}: weights {'from ' + source if source else 'random (calibrated BN)'}; forward of {len(x)} "
          f"images in float32: timm {t_timm:.2f} s, minception {t_engine:.2f} s (setup {setup:.1f} s; shared machine)")
    print(f"  {'input':<16s} {'max|logit|':>10s} | float32: {'max|dlogit|':>11s} {'relative':>9s} "
          f"{'timm own':>9s} | float64: {'relative':>9s} | top-5  verdict")
    passed = True
    for i, label in enumerate(labels):
        scale = max(float(np.abs(t64[i]).max()), 1e-30)
        d32 = float(np.abs(e32[i].astype(np.float64) - t32[i]).max())
        own = float(np.abs(t32[i] - t64[i]).max()) / scale        # timm's own float32 rounding error
        ours = float(np.abs(e32[i] - t64[i]).max()) / scale
        rel64 = float(np.abs(e64[i] - t64[i]).max()) / scale
        same = list(np.argsort(-e32[i])[:5]) == list(np.argsort(-t32[i])[:5])
        if rel64 > args.tol64:
            verdict = "DIFFERS (float64: a computation differs)"
        elif d32 / scale <= args.tol:
            verdict = "ok"
        elif ours <= 2 * own:
            verdict = "ok: float32 rounding (as large as timm's own)"
        else:
            verdict = "DIFFERS (float32)"
        passed &= verdict.startswith("ok")
        print(f"  {label:<16s} {scale:10.3e} |          {d32:11.3e} {d32 / scale:9.2e} {own:9.2e} "
              f"|           {rel64:9.2e} | {str(same):<5s}  {verdict}")
    if source:
        from minception.pretrained import imagenet_classes
        top = np.argsort(-t32[2])[:3]
        print("  photo, timm's top-3: " + "; ".join(f"{i} {imagenet_classes.class_name(i)}" for i in top))
    if not passed or args.trace:
        structural = float(np.abs(e64 - t64).max()) / max(float(np.abs(t64).max()), 1e-30) > args.tol64
        if structural:
            engine.to(dtype=np.float64)
            print_trace(trace(engine, reference64, x[2:3].astype(np.float64)), args.tol64)
            engine.to(dtype=np.float32)
        else:
            print_trace(trace(engine, reference, x[2:3]), args.tol)
    return passed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS, reverse=True))
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=FILE",
                        help="published (or any timm-format) weights for MODEL; default: random")
    parser.add_argument("--image", help="photo to classify (default: matplotlib's grace_hopper.jpg)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-4, help="float32: allowed max|dlogit| / max|logit|")
    parser.add_argument("--tol64", type=float, default=1e-10, help="float64: allowed max|dlogit| / max|logit|")
    parser.add_argument("--trace", action="store_true", help="always print the layer-by-layer comparison")
    args = parser.parse_args(argv)
    weights = dict(w.split("=", 1) for w in args.weights)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    photo = args.image
    if photo is None:
        import matplotlib.cbook
        photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    print(f"torch {torch.__version__}, timm {timm.__version__}, eval mode; photo: {os.path.basename(photo)}")
    print("preprocessing, minception vs timm's eval transform on the photo:")
    ok = True
    for name, crop, interp, d in check_preprocessing(photo):
        print(f"  {name:<20s} crop_pct {crop:<7} {interp:<8s} max|diff| {d:.3e}")
        ok &= d == 0.0

    rng = np.random.default_rng(args.seed)
    random_x = rng.uniform(-1, 1, size=(2, 3, 299, 299)).astype(np.float32)
    for name in args.models:
        ok &= compare_network(name, weights.get(name), photo, random_x, rng, args)
    print("\nall within tolerance" if ok else "\nSOME OUTPUTS DIFFER (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
