"""The feature cache (evaluate/feature_cache.py): keys follow content and protocol, a hit returns
the same statistics, per-image entries are reused, and a corrupt or foreign file is reported and
recomputed — never trusted. A cheap deterministic extractor stands in for Inception here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pg2_pipeline.evaluate.feature_cache import ImageStore, cached_call, image_digests, real_stats, set_key
from pg2_pipeline.evaluate.fid import FID_PROTOCOL

D = 6


class Extractor:
    """(B, 3, H, W) uint8 -> (B, 6) features: channel means and standard deviations; counts images."""

    def __init__(self, protocol: str = "test-features v1"):
        self.protocol, self.seen = protocol, 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += len(images)
        x = images.float()
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def batches(n: int = 20, seed: int = 0, size=(16, 8)) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (n, 3, *size), dtype=np.uint8))
    return [images[i : i + 8] for i in range(0, n, 8)]


def same_stats(a, b) -> bool:
    return a.n == b.n and torch.equal(a.mean, b.mean) and torch.equal(a.scatter, b.scatter)


def test_miss_then_hit_gives_the_same_statistics(tmp_path):
    extractor = Extractor()
    first, info = real_stats(batches(), extractor, tmp_path)
    assert info.status == "miss" and info.images == 20 and info.computed_images == 20 and extractor.seen == 20
    assert (tmp_path / f"real-{info.key}.npz").is_file() and first.protocol == FID_PROTOCOL
    again, hit = real_stats(batches(), extractor, tmp_path)
    assert hit.status == "hit" and hit.key == info.key and extractor.seen == 20  # nothing recomputed
    assert same_stats(again, first)
    # the key is the multiset of images: another order or batching is the same set
    images = torch.cat(batches())
    shuffled = [images[torch.randperm(20, generator=torch.Generator().manual_seed(1))]]
    _, permuted = real_stats(shuffled, extractor, tmp_path)
    assert permuted.status == "hit" and permuted.key == info.key
    # a callable giving fresh iterables works as a source too (read twice on a miss)
    _, called = real_stats(lambda: iter(batches(seed=5)), Extractor(), tmp_path)
    assert called.status == "miss" and called.images == 20


def test_key_changes_with_content_and_protocol(tmp_path):
    base = batches()
    key = set_key(np.concatenate([image_digests(b) for b in base]), "p")
    changed = [b.clone() for b in base]
    changed[1][3, 0, 5, 5] ^= 1  # one pixel of one image, one grey level
    assert set_key(np.concatenate([image_digests(b) for b in changed]), "p") != key
    assert set_key(np.concatenate([image_digests(b) for b in base]), "p2") != key
    assert set_key(np.concatenate([image_digests(b) for b in base[:2]]), "p") != key  # fewer images
    # the same pixels at another shape are other images
    flat = base[0].reshape(8, 3, 8, 16)
    assert (image_digests(flat) != image_digests(base[0])).any(axis=1).all()
    _, a = real_stats(base, Extractor("net A"), tmp_path)
    _, b = real_stats(base, Extractor("net B"), tmp_path)
    assert a.status == b.status == "miss" and a.key != b.key
    with pytest.raises(ValueError, match="uint8"):
        image_digests(base[0].float())


def test_corrupt_or_foreign_entries_are_recomputed_with_a_message(tmp_path):
    messages: list[str] = []
    extractor = Extractor()
    first, info = real_stats(batches(), extractor, tmp_path, log=messages.append)
    path = tmp_path / f"real-{info.key}.npz"
    data = bytearray(path.read_bytes())
    at = data.find(first.scatter.numpy().tobytes())
    assert at > 0
    data[at + 17] ^= 0x10  # one flipped bit inside the stored covariance: still a valid npz
    path.write_bytes(bytes(data))
    again, redo = real_stats(batches(), extractor, tmp_path, log=messages.append)
    assert redo.status == "miss" and "ignored" in redo.note and extractor.seen == 40
    assert len(messages) == 1 and str(path) in messages[0] and "recomputing" in messages[0]
    assert same_stats(again, first)  # recomputed (deterministic extractor) and rewritten
    assert real_stats(batches(), extractor, tmp_path)[1].status == "hit"

    path.write_bytes(b"not an npz")  # truncated / garbage
    assert real_stats(batches(), extractor, tmp_path, log=messages.append)[1].status == "miss"
    assert "unreadable" in messages[-1]

    # another set's file under this set's name: the key stored inside does not match
    _, other = real_stats(batches(seed=3), extractor, tmp_path)
    (tmp_path / f"real-{other.key}.npz").replace(path)
    stats, foreign = real_stats(batches(), extractor, tmp_path, log=messages.append)
    assert foreign.status == "miss" and "key" in messages[-1] and same_stats(stats, first)

    # same images and key, but featured under another protocol string inside the file
    _, mine = real_stats(batches(seed=4), Extractor("net A"), tmp_path)
    other_protocol = real_stats(batches(seed=4), Extractor("net B"), tmp_path)[1]
    (tmp_path / f"real-{other_protocol.key}.npz").replace(tmp_path / f"real-{mine.key}.npz")
    assert real_stats(batches(seed=4), Extractor("net A"), tmp_path, log=messages.append)[1].status == "miss"
    assert "protocol" in messages[-1]


def test_per_image_store_reuses_real_images_across_sets_and_runs(tmp_path):
    extractor = Extractor()
    store = ImageStore(tmp_path, "test", extractor.protocol, D)
    _, first = real_stats(batches(n=16), extractor, tmp_path, store=store)
    assert first.computed_images == 16 and store.save() == 16
    # a larger set sharing the first 16 images: only the new ones are computed
    store = ImageStore(tmp_path, "test", extractor.protocol, D)
    assert len(store) == 16
    stats, bigger = real_stats(batches(n=24), extractor, tmp_path, store=store)
    assert bigger.status == "miss" and bigger.computed_images == 8 and extractor.seen == 24
    plain, _ = real_stats(batches(n=24), Extractor(), None)
    torch.testing.assert_close(stats.mean, plain.mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(stats.scatter, plain.scatter, rtol=1e-9, atol=1e-9)

    # cached_call: rows in the store come from it, only the others are computed, in one call
    images = torch.cat(batches(n=24))
    store = ImageStore(tmp_path, "test", extractor.protocol, D)  # the 16 saved; the last 8 were never saved
    counter = Extractor()
    out = cached_call(counter, images, store)
    assert counter.seen == 8 and store.reused == 16
    torch.testing.assert_close(out, Extractor()(images))
    # lookups see the file as loaded, not this run's additions (what a sharded run relies on)
    assert not store.get(image_digests(images[16:]))[0].any()


def test_a_corrupt_image_store_is_ignored_with_a_message_and_replaced(tmp_path):
    extractor, messages = Extractor(), []
    store = ImageStore(tmp_path, "test", extractor.protocol, D)
    cached_call(extractor, torch.cat(batches()), store)
    store.save()
    store.path.write_bytes(store.path.read_bytes()[:100])
    fresh = ImageStore(tmp_path, "test", extractor.protocol, D, log=messages.append)
    assert len(fresh) == 0 and "ignoring" in messages[0] and str(fresh.path) in messages[0]
    cached_call(extractor, torch.cat(batches()), fresh)
    assert fresh.save() == 20 and len(ImageStore(tmp_path, "test", extractor.protocol, D)) == 20
    # another protocol never reads this file (another name), nor a file of another dimension
    assert len(ImageStore(tmp_path, "test", "other", D)) == 0
    wrong_dim = ImageStore(tmp_path, "test", extractor.protocol, D + 1, log=messages.append)
    assert len(wrong_dim) == 0 and "shape" in messages[-1]


def test_a_replacing_store_holds_the_latest_run_only_and_is_read_beside_the_main_one(tmp_path):
    extractor, images = Extractor(), torch.cat(batches(n=24))
    digests = image_digests(images)
    latest = ImageStore(tmp_path, "latest", extractor.protocol, D, replace=True)
    latest.put(digests[:8], extractor(images[:8]).numpy())
    assert latest.save() == 8
    latest = ImageStore(tmp_path, "latest", extractor.protocol, D, replace=True)
    latest.put(digests[8:12], extractor(images[8:12]).numpy())
    latest.save()  # the next run's outputs replace the earlier run's: the file never grows
    latest = ImageStore(tmp_path, "latest", extractor.protocol, D)
    assert len(latest) == 4 and latest.get(digests[8:12])[0].all() and not latest.get(digests[:8])[0].any()

    # scoring: rows from the main store or the latest outputs are not computed again; only new
    # ones are, and they go to the main store (the read-only one is never written)
    main = ImageStore(tmp_path, "main", extractor.protocol, D)
    main.put(digests[:4], extractor(images[:4]).numpy())
    main.save()
    main, counter = ImageStore(tmp_path, "main", extractor.protocol, D), Extractor()
    latest = ImageStore(tmp_path, "latest", extractor.protocol, D)
    out = cached_call(counter, images[:16], main, also=latest)
    assert counter.seen == 8 and (main.reused, latest.reused, main.computed) == (4, 4, 8)
    torch.testing.assert_close(out, Extractor()(images[:16]))

    empty = ImageStore(tmp_path, "latest", extractor.protocol, D, replace=True)
    assert empty.save() == 0 and not empty.path.exists()  # a run with no outputs leaves none of an earlier one
