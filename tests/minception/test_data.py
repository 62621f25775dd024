"""Synthetic image set, batch transforms and the DataLoader (shuffling, drop_last, exact resume)."""
import numpy as np
import pytest

from minception import data
from minception.data import DataLoader, ImageSet, make_synthetic


# ------------------------------------------------------------------------------------------- synthetic ---
@pytest.fixture(scope="module")
def synth():
    return make_synthetic(n_train=200, n_test=50, seed=3)


def test_synthetic_structure(synth):
    train, test = synth
    assert isinstance(train, ImageSet)
    assert train.images.shape == (200, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (50, 3, 32, 32)
    assert train.labels.dtype == np.int64 and train.labels.min() == 0 and train.labels.max() == 9
    assert len(train.class_names) == 10 and train.class_names == test.class_names
    assert train.images.std() > 30                       # not blank images


def test_synthetic_deterministic_and_seeded(synth):
    train, test = synth
    again_train, again_test = make_synthetic(n_train=200, n_test=50, seed=3)
    np.testing.assert_array_equal(again_train.images, train.images)
    np.testing.assert_array_equal(again_test.labels, test.labels)
    other, _ = make_synthetic(n_train=200, n_test=50, seed=4)
    assert not np.array_equal(other.images, train.images)
    _, test_alone = make_synthetic(n_train=10, n_test=50, seed=3)    # test set independent of n_train
    np.testing.assert_array_equal(test_alone.images, test.images)


def test_synthetic_class_balance():
    train, test = make_synthetic(n_train=200, n_test=23, seed=0)
    assert np.all(np.bincount(train.labels, minlength=10) == 20)
    counts = np.bincount(test.labels, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 23


def test_synthetic_colour_says_nothing_about_class(synth):
    # nearest class-mean on the average colour of an image must be near chance (10%): shape carries the class
    train, test = make_synthetic(n_train=500, n_test=300, seed=1)
    feat = lambda s: s.images.reshape(len(s), 3, -1).mean(axis=2)
    centroids = np.stack([feat(train)[train.labels == c].mean(axis=0) for c in range(10)])
    pred = np.argmin(((feat(test)[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == test.labels).mean() < 0.25


def test_imageset_checks_and_subsets(synth):
    train, _ = synth
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(train.images.astype(np.float32), train.labels, train.class_names)
    with pytest.raises(ValueError, match="labels"):
        ImageSet(train.images, train.labels[:5], train.class_names)
    sub = train.balanced_subset(3, seed=0)
    assert len(sub) == 30 and np.all(np.bincount(sub.labels) == 3)
    assert len(train.subset(slice(0, 7))) == 7


# ------------------------------------------------------------------------------------------ transforms ---
def batch(n=6, c=3, h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(1, 256, size=(n, c, h, w), dtype=np.uint8)


def test_random_crop_keeps_shape_and_is_a_window_of_the_padded_image():
    x = batch()
    p = 2
    out = data.random_crop(x, p, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.zeros((6, 3, 5 + 2 * p, 7 + 2 * p), np.uint8)
    padded[:, :, p:-p, p:-p] = x
    offsets = set()
    for n in range(6):       # exactly one window position of the padded image matches (inputs are never 0)
        hits = [(oy, ox) for oy in range(2 * p + 1) for ox in range(2 * p + 1)
                if np.array_equal(out[n], padded[n, :, oy:oy + 5, ox:ox + 7])]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 1                                   # not the same window for every image
    np.testing.assert_array_equal(data.random_crop(x, 0, np.random.default_rng(0)), x)


def test_random_crop_offsets_cover_the_range():
    x = batch(n=400, c=1, h=3, w=3)
    out = data.random_crop(x, 1, np.random.default_rng(5))
    # a shift right/down by one puts zeros in the first row/column, a shift left/up in the last
    assert 0 < np.mean(out[:, 0, 0, :].min(axis=1) == 0) < 1 and 0 < np.mean(out[:, 0, :, 2].min(axis=1) == 0) < 1
    with pytest.raises(ValueError, match=r"random_crop.*\(N, C, H, W\)"):
        data.random_crop(x[0], 1, np.random.default_rng(0))


def test_random_flip_is_exact_mirror():
    x = batch(n=200)
    out = data.random_flip(x, np.random.default_rng(1))
    mirrored = np.array([np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x)])
    same = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(mirrored ^ same)
    assert 70 < mirrored.sum() < 130
    np.testing.assert_array_equal(data.random_flip(x, np.random.default_rng(1), p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(data.random_flip(x, np.random.default_rng(1), p=0.0), x)


def test_transforms_seeded_determinism():
    x = batch(n=50, h=8, w=8)
    aug = data.standard_augmentation(padding=4)
    a = aug(x, np.random.default_rng(7))
    b = aug(x, np.random.default_rng(7))
    c = aug(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape


def test_normalize_and_channel_stats():
    x = batch(n=4, c=3)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    out = data.normalize(x, mean, std)
    assert out.dtype == np.float32
    expected = (x / 255.0 - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.normalize(x, None, None), x / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="normalize.*3 channels"):
        data.normalize(x, (0.5,), (0.5,))
    m, s = data.channel_stats(x, chunk=3)
    np.testing.assert_allclose(m, x.mean(axis=(0, 2, 3)) / 255)
    np.testing.assert_allclose(s, x.std(axis=(0, 2, 3)) / 255)
    with pytest.raises(ValueError, match="uint8"):
        data.channel_stats(x.astype(np.float32))
    z = data.normalize(x, m, s)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)


# ---------------------------------------------------------------------------------------------- loader ---
def indexed(n=10):
    """Images whose pixels spell their index, labels = index, so a batch shows which samples it holds."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 3, 4, 4)).copy()
    return images, np.arange(n)


def test_loader_batches_dtypes_and_every_index_once_per_epoch():
    images, labels = indexed(10)
    loader = DataLoader((images, labels), batch_size=4, mean=None, std=None, seed=0)
    assert len(loader) == 3
    orders = []
    for _ in range(3):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [4, 4, 2]
        x, y = batches[0]
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (4, 3, 4, 4) and x.flags.c_contiguous
        seen = np.concatenate([y for _, y in batches])
        assert sorted(seen) == list(range(10))
        for xb, yb in batches:
            np.testing.assert_allclose(xb * 255, images[yb], atol=1e-4)
        orders.append(seen)
    assert loader.epoch == 3
    assert not np.array_equal(orders[0], orders[1])          # reshuffled each epoch


def test_loader_drop_last_and_no_shuffle():
    images, labels = indexed(10)
    loader = DataLoader((images, labels), batch_size=4, shuffle=False, drop_last=True, mean=None, std=None)
    assert len(loader) == 2
    assert [y.tolist() for _, y in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="no batch"):
        DataLoader((images, labels), batch_size=11, drop_last=True)
    with pytest.raises(ValueError, match="labels"):
        DataLoader((images, labels[:3]), batch_size=2)


def test_loader_seeds_and_generator():
    images, labels = indexed(20)
    first = lambda ld: next(iter(ld))[1].tolist()
    assert first(DataLoader((images, labels), 5, seed=1)) == first(DataLoader((images, labels), 5, seed=1))
    assert first(DataLoader((images, labels), 5, seed=1)) != first(DataLoader((images, labels), 5, seed=2))
    a = DataLoader((images, labels), 5, seed=np.random.default_rng(9))
    b = DataLoader((images, labels), 5, seed=np.random.default_rng(9))
    assert a.seed == b.seed and first(a) == first(b)


def test_loader_resume_mid_epoch_gives_identical_batches(synth, tmp_path):
    train, _ = synth
    make = lambda: DataLoader(train, batch_size=16, drop_last=True, transform=data.standard_augmentation(),
                              seed=11)
    reference = make()
    expected = [b for _ in range(2) for b in reference]          # two whole epochs

    run = make()
    got = list(run)                                                # one epoch...
    it = iter(run)
    got += [next(it) for _ in range(5)]                            # ...and five batches of the next
    np.savez(tmp_path / "loader.npz", **run.state_dict())          # through a checkpoint file
    z = np.load(tmp_path / "loader.npz")
    resumed = make()
    resumed.load_state_dict({k: z[k].item() for k in z.files})
    assert resumed.epoch == 1
    for b in resumed:
        got.append(b)
    assert len(got) == len(expected)
    for (xa, ya), (xb, yb) in zip(expected, got):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(resumed.batch(0, 3)[0], expected[3][0])     # random access agrees too


def test_loader_left_early_after_last_batch_moves_to_next_epoch():
    images, labels = indexed(8)
    loader = DataLoader((images, labels), batch_size=4, mean=None, std=None)
    for i, _ in enumerate(loader):
        if i == 1:
            break                            # the epoch's last batch was served, the loop left before its end
    assert [len(y) for _, y in loader] == [4, 4]
    assert loader.epoch == 2


def test_loader_state_mismatch():
    images, labels = indexed(8)
    sd = DataLoader((images, labels), batch_size=4).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader((images, labels), batch_size=2).load_state_dict(sd)
