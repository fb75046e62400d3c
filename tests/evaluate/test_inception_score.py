"""IS from logits (known values and OpenAI's formula), the user-weights path, and the honest
"unavailable" without weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pg2_pipeline.evaluate.inception_score import (
    UNAVAILABLE,
    UNAVAILABLE_REASON,
    InceptionLogits,
    InceptionScore,
    Unavailable,
    inception_score,
    inception_score_of_images,
    load_inception_logits,
)


def openai_is(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """OpenAI's inception_score.py on softmax outputs (the published reference formula)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    preds = e / e.sum(axis=1, keepdims=True)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_uniform_logits_score_one():
    s = inception_score(torch.zeros(100, 1008), splits=10)
    assert s == InceptionScore(mean=1.0, std=0.0, splits=10, n=100)


def test_equally_frequent_confident_classes_score_k():
    k, splits = 7, 5
    labels = torch.arange(k).repeat(splits * 3)  # every split holds each class 3 times
    logits = 60.0 * nn.functional.one_hot(labels, k).double()
    s = inception_score([logits[:40], logits[40:]], splits=splits)
    assert s.mean == pytest.approx(k, rel=1e-9) and s.std == pytest.approx(0.0, abs=1e-9)


def test_matches_openai_formula_on_uneven_splits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (103, 20))  # 103 rows: splits of 10 and 11
    got = inception_score(torch.from_numpy(logits), splits=10)
    want_mean, want_std = openai_is(logits, 10)
    assert got.mean == pytest.approx(want_mean, rel=1e-10) and got.std == pytest.approx(want_std, rel=1e-8)


def test_bad_logits_fail_loudly():
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.zeros(5, 3), splits=10)
    with pytest.raises(ValueError, match="no batches"):
        inception_score([])
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        inception_score([torch.zeros(4, 3), torch.zeros(4, 5)], splits=2)


def test_without_weights_the_result_is_unavailable():
    assert load_inception_logits(None) is UNAVAILABLE
    images = [torch.zeros(4, 3, 128, 64, dtype=torch.uint8)]
    result = inception_score_of_images(images, None)
    assert isinstance(result, Unavailable)
    assert result.reason == "unavailable: no Inception logits weights" == UNAVAILABLE_REASON == str(result)


class _TinyClassifier(nn.Module):
    """A stand-in for user weights: (N, 3, 299, 299) in [-1, 1) -> (N, 5) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, 299, 299)
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class _Softmaxed(nn.Module):
    """A wrong user file: probabilities instead of logits."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _TinyClassifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x), dim=1)


# torch 2.13 marks TorchScript deprecated; user Inception weights exist as TorchScript files
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _save(module: nn.Module, path) -> str:
    torch.manual_seed(0)
    torch.jit.script(module.eval()).save(str(path))
    return str(path)


def test_user_weights_run_end_to_end(tmp_path):
    path = _save(_TinyClassifier(), tmp_path / "user_inception.pt")
    rng = np.random.default_rng(1)
    batches = [torch.from_numpy(rng.integers(0, 256, (6, 3, 128, 64), dtype=np.uint8)) for _ in range(2)]
    net = load_inception_logits(path)
    assert isinstance(net, InceptionLogits)
    logits = net(batches[0])
    assert logits.shape == (6, 5)
    s = inception_score_of_images(batches, path, splits=3)
    want = inception_score([net(b) for b in batches], splits=3)
    assert isinstance(s, InceptionScore) and s == want and s.mean >= 1.0 and s.n == 12
    masks = [torch.zeros(6, 1, 128, 64, dtype=torch.bool) for _ in batches]
    masked = inception_score_of_images(batches, net, mask_batches=masks, splits=3)  # mask-IS
    assert masked.mean == pytest.approx(1.0)  # all-black images: one distribution, IS 1


def test_missing_invalid_or_wrong_weights_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_inception_logits(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not torchscript")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_inception_logits(garbage)
    probs = _save(_Softmaxed(), tmp_path / "probs.pt")
    with pytest.raises(ValueError, match="probs.pt.*probabilities"):
        load_inception_logits(probs)(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
