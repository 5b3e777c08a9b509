"""ShardSet (both layouts, every error case) and eval_windows, on tiny shards written in tmp_path."""
import json
import warnings

import numpy as np
import pytest
from batches import windows_and_groups

import data.shards as shards
from data.shards import ShardSet, eval_windows, spread_indices
from errors import UsageError


def write_shards(root, groups, dtype="uint16", meta=True, vocab_size=4096, eos_id=0):
    """groups: {name: {split: 1-D int array}}; writes raw .bin files (+ meta.json)."""
    root.mkdir(parents=True, exist_ok=True)
    counts = {}
    for g, splits in groups.items():
        (root / g).mkdir(exist_ok=True)
        counts[g] = {}
        for split, arr in splits.items():
            np.asarray(arr, dtype=dtype).tofile(root / g / f"{split}.bin")
            counts[g][split] = int(len(arr))
    if meta:
        (root / "meta.json").write_text(json.dumps({
            "format": "aioli-shards", "version": 1, "tokenizer": "t", "vocab_size": vocab_size,
            "dtype": dtype, "eos_id": eos_id, "groups": counts,
        }))
    return root


def three_splits(n, offset=0):
    return {s: np.arange(offset + i * n, offset + (i + 1) * n) % 60000 for i, s in enumerate(("train", "val", "test"))}


@pytest.fixture
def prepared(tmp_path):
    # meta order (cc before c4) is deliberately not alphabetical
    return write_shards(tmp_path / "prep", {"cc": three_splits(100), "c4": three_splits(80, 1000)})


def test_open_meta_layout(prepared):
    s = ShardSet.open(prepared)
    assert s.groups == ["cc", "c4"] and s.meta["format"] == "aioli-shards"
    assert s.dtype == np.uint16 and s.vocab_size == 4096 and s.eos_id == 0
    t = s.tokens("c4", "train")
    assert isinstance(t, np.memmap) and t.ndim == 1 and len(t) == 80 and not t.flags.writeable
    assert t is s.tokens("c4", "train")  # cached
    np.testing.assert_array_equal(t, np.arange(1000, 1080))
    assert s.has_split("cc", "val") and not s.has_split("cc", "extra")
    assert s.num_windows("cc", "train", 16) == 6


def test_requested_order_and_string(prepared):
    assert ShardSet.open(prepared, groups=["c4", "cc"]).groups == ["c4", "cc"]
    assert ShardSet.open(prepared, groups="c4,cc").groups == ["c4", "cc"]
    assert ShardSet.open(prepared, groups=["c4"]).groups == ["c4"]


def test_uint32_meta(tmp_path):
    root = write_shards(tmp_path / "u32", {"a": {"train": np.arange(70000, 70100)}}, dtype="uint32")
    s = ShardSet.open(root)
    assert s.dtype == np.uint32 and s.tokens("a", "train")[0] == 70000


def test_headerless_layout_warns_once(tmp_path, monkeypatch):
    root = write_shards(tmp_path / "paper", {"wikipedia": three_splits(64), "arxiv": three_splits(64)}, meta=False)
    monkeypatch.setattr(shards, "_warned_headerless", False)
    with pytest.warns(UserWarning, match="uint16"):
        s = ShardSet.open(root)
    assert s.meta is None and s.vocab_size is None and s.eos_id is None and s.dtype == np.uint16
    assert s.groups == ["arxiv", "wikipedia"]  # sorted sub-directories
    assert s.num_windows("arxiv", "test", 32) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second open in the same process stays silent
        ShardSet.open(root, groups=["wikipedia"])


def test_sources_feed_the_sampler(prepared):
    from data.sampler import MixtureSampler

    src = ShardSet.open(prepared).sources("train", 16)
    assert list(src) == ["cc", "c4"]
    x, g = windows_and_groups(MixtureSampler(src, 16, 4, seed=0).next_batch())
    assert x.shape == (4, 16) and x.dtype == np.int64


def test_error_missing_root(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        ShardSet.open(tmp_path / "nope")


def test_error_empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="neither meta.json"):
        ShardSet.open(tmp_path / "empty")


def test_error_missing_group_lists_available(prepared):
    with pytest.raises(UsageError, match=r"github.*available: cc, c4"):
        ShardSet.open(prepared, groups=["cc", "github"])


def test_error_duplicate_group(prepared):
    with pytest.raises(UsageError, match="twice"):
        ShardSet.open(prepared, groups=["cc", "cc"])


def test_error_missing_split(tmp_path):
    root = write_shards(tmp_path / "p", {"a": {"train": np.arange(64)}})
    s = ShardSet.open(root)
    with pytest.raises(UsageError, match=r"val\.bin is missing"):
        s.tokens("a", "val")


def test_error_too_short_for_a_window(prepared):
    s = ShardSet.open(prepared)
    with pytest.raises(UsageError, match=r"train\.bin has 80 tokens.*--context_length 128"):
        s.num_windows("c4", "train", 128)
    with pytest.raises(UsageError, match="smaller --context_length"):
        s.sources("train", 128)


def test_error_size_not_multiple_of_dtype(tmp_path, monkeypatch):
    root = write_shards(tmp_path / "p", {"a": {"train": np.arange(64)}}, meta=False)
    with open(root / "a" / "train.bin", "ab") as fh:
        fh.write(b"\x01")
    monkeypatch.setattr(shards, "_warned_headerless", True)  # the warning has its own test
    s = ShardSet.open(root)
    with pytest.raises(UsageError, match="129 bytes, not a multiple of 2"):
        s.tokens("a", "train")


def test_error_meta_count_mismatch(tmp_path):
    root = write_shards(tmp_path / "p", {"a": {"train": np.arange(64)}})
    np.arange(32, dtype=np.uint16).tofile(root / "a" / "train.bin")
    with pytest.raises(UsageError, match="holds 32 tokens but meta.json says 64"):
        ShardSet.open(root).tokens("a", "train")


def test_error_corrupt_meta(tmp_path):
    root = write_shards(tmp_path / "p", {"a": {"train": np.arange(64)}})
    (root / "meta.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot read"):
        ShardSet.open(root)


def test_eval_windows():
    tokens = np.arange(100, dtype=np.uint16)
    w = eval_windows(tokens, 16)
    assert w.shape == (6, 16) and w.dtype == np.int64
    np.testing.assert_array_equal(w[2], np.arange(32, 48))
    assert eval_windows(tokens, 16, max_windows=50).shape == (6, 16)
    assert eval_windows(tokens, 200).shape == (0, 200)
    # bounded: windows from the middle of equal strides over the whole split, never the first n
    np.testing.assert_array_equal(eval_windows(tokens, 16, max_windows=2), np.stack([w[1], w[4]]))
    np.testing.assert_array_equal(eval_windows(tokens, 16, max_windows=3), np.stack([w[0], w[2], w[4]]))


def test_spread_indices_cover_the_split():
    for total in (1, 7, 100, 1001):
        for n in (1, 2, 3, 10, 64):
            idx = spread_indices(total, n)
            assert len(idx) == min(n, total) and len(set(idx.tolist())) == len(idx)  # distinct
            assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < total
            if n < total:  # one index in each of n equal strides: the whole split is sampled
                stride = total / n
                np.testing.assert_array_equal(np.floor(idx / stride), np.arange(n))
    np.testing.assert_array_equal(spread_indices(10, None), np.arange(10))


def test_shardset_windows(prepared):
    s = ShardSet.open(prepared)
    w = s.windows("cc", "test", 32, max_windows=2)  # 3 windows in the split: the middle of each half
    np.testing.assert_array_equal(w, np.stack([np.arange(200, 232), np.arange(264, 296)]))
