"""MixtureSampler: exact composition, multinomial mode, alignment, epochs across weight changes,
determinism and exact resume from state_dict."""
import json

import numpy as np
import pytest
from batches import windows_and_groups

from data.sampler import MixtureSampler
from errors import UsageError

L = 8


def make_sources(sizes, L=L, tail=3):
    """Group j holds windows whose tokens encode (j, window index): token = j*10000 + position, so
    every window tells which group and which window it came from. `tail` extra tokens are dropped."""
    return {f"g{j}": (j * 10000 + np.arange(n * L + tail)).astype(np.uint16) for j, n in enumerate(sizes)}


def window_ids(x, gids):
    """(group, window index) of every row; asserts the row is exactly tokens[i*L:(i+1)*L]."""
    group = x[:, 0] // 10000
    pos = x[:, 0] % 10000
    np.testing.assert_array_equal(group, gids)
    assert np.all(pos % L == 0)
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(L))
    return pos // L


def roundtrip(state):
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("weights,B", [
    ([0.75] + [0.25 / 6] * 6, 8),           # Aioli probe, k=7, focal share 0.75
    ([0.25 / 6] * 3 + [0.75] + [0.25 / 6] * 3, 8),
    ([0.5, 0.25, 0.25], 8),
    ([0.625, 0.375], 8),
    ([0.1, 0.2, 0.3, 0.4], 5),
    ([0.01, 0.99], 16),
    ([0.0, 0.3, 0.7, 0.0], 3),
    ([1 / 3, 1 / 3, 1 / 3], 7),
])
def test_exact_composition_per_batch_and_long_run(weights, B):
    k = len(weights)
    s = MixtureSampler(make_sources([20] * k), L, B, seed=1, weights=weights)
    w = s.weights
    cum = np.zeros(k)
    for n in range(1, 301):
        _, gids = windows_and_groups(s.next_batch())
        c = np.bincount(gids, minlength=k)
        assert c.sum() == B
        assert np.all(np.abs(c - w * B) < 1)             # each batch within 1 window of w*B
        assert np.all(c[w == 0] == 0)                     # zero weight: never drawn
        cum += c
        assert np.all(np.abs(cum - w * B * n) < 1 + 1e-9)  # long run within 1 window of w*N


def test_exact_counts_known_answers():
    s = MixtureSampler(make_sources([30] * 3), L, 8, seed=0, weights=[0.5, 0.25, 0.25])
    for _ in range(5):
        np.testing.assert_array_equal(np.bincount(s.next_batch()["group_ids"], minlength=3), [4, 2, 2])
    s7 = MixtureSampler(make_sources([30] * 7), L, 8, seed=0, weights=[18, 1, 1, 1, 1, 1, 1])  # focal 0.75
    counts = np.array([np.bincount(s7.next_batch()["group_ids"], minlength=7) for _ in range(3)])
    assert np.all(counts[:, 0] == 6)
    np.testing.assert_array_equal(counts[:, 1:].sum(axis=0), np.ones(6))  # 2 extras rotate over 3 batches


def test_exact_long_run_random_weights():
    rng = np.random.default_rng(0)
    for trial in range(20):
        k, B = int(rng.integers(2, 8)), int(rng.integers(1, 20))
        s = MixtureSampler(make_sources([5] * k), L, B, seed=trial, weights=rng.dirichlet(np.ones(k) * 0.5))
        w, cum = s.weights, np.zeros(k)
        for n in range(1, 201):
            cum += s.exact_counts()
            assert np.all(np.abs(cum - w * B * n) < 1 + 1e-9)


def test_multinomial_matches_weights_and_exact_override():
    w = np.array([0.6, 0.3, 0.1])
    s = MixtureSampler(make_sources([50] * 3), L, 8, seed=3, sampling="multinomial", weights=w)
    counts = np.array([np.bincount(s.next_batch()["group_ids"], minlength=3) for _ in range(1500)])
    n = counts.sum()
    freq = counts.sum(axis=0) / n
    assert np.all(np.abs(freq - w) < 4 * np.sqrt(w * (1 - w) / n))
    assert np.any(np.abs(counts - w * 8) >= 1)   # i.i.d. draws: batch composition varies
    for _ in range(20):
        c = np.bincount(s.next_batch(exact=True)["group_ids"], minlength=3)
        assert np.all(np.abs(c - w * 8) < 1)
    s.set_weights([0, 1, 1])
    assert np.all(np.concatenate([s.next_batch()["group_ids"] for _ in range(50)]) != 0)


def test_windows_aligned_and_tail_dropped():
    s = MixtureSampler(make_sources([7, 3, 11], tail=5), L, 6, seed=2, weights=[1, 2, 3])
    for _ in range(40):
        x, gids = windows_and_groups(s.next_batch())
        assert x.dtype == np.int64 and x.shape == (6, L) and gids.dtype == np.int64
        ids = window_ids(x, gids)
        assert np.all(ids < np.array([7, 3, 11])[gids])  # the tail is never a window


def test_memmap_source(tmp_path):
    path = tmp_path / "train.bin"
    (np.arange(10 * L + 3) % 60000).astype(np.uint16).tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    x, _ = windows_and_groups(MixtureSampler({"a": mm}, L, 4, seed=0).next_batch())
    np.testing.assert_array_equal(x % L, np.tile(np.arange(L), (4, 1)))


def test_memmap_fds_are_closed_with_the_sampler(tmp_path):
    """The pread fds of file-backed groups do not outlive the sampler (many samplers per process)."""
    import gc
    import os

    path = tmp_path / "train.bin"
    np.arange(10 * L, dtype=np.uint16).tofile(path)
    s = MixtureSampler({"a": np.memmap(path, dtype=np.uint16, mode="r")}, L, 4, seed=0)
    fd = s._files[0][0]
    os.fstat(fd)  # open while the sampler lives
    del s
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_epochs_cover_every_window_across_weight_changes():
    sizes = [13, 29, 7]
    s = MixtureSampler(make_sources(sizes), L, 5, seed=4, weights=[0.2, 0.5, 0.3])
    seen = {j: [] for j in range(3)}
    for step in range(120):
        if step == 17:
            s.set_weights([0.7, 0.1, 0.2])   # mid-epoch for every group
        if step == 61:
            s.set_weights([0.1, 0.1, 0.8])
        x, gids = windows_and_groups(s.next_batch())
        for j, i in zip(gids, window_ids(x, gids)):
            seen[int(j)].append(int(i))
    for j, n in enumerate(sizes):
        ids = seen[j]
        full, rest = divmod(len(ids), n)
        assert full >= 2
        for e in range(full):   # each complete epoch: every window exactly once
            assert sorted(ids[e * n:(e + 1) * n]) == list(range(n))
        assert len(set(ids[full * n:])) == rest   # the running epoch: no repeats
        assert s.epochs[f"g{j}"] == full
    assert sum(s.windows_drawn.values()) == 120 * 5


def test_small_group_wraps_inside_one_batch():
    s = MixtureSampler(make_sources([1, 2]), L, 8, seed=0, weights=[0.75, 0.25])
    x, gids = windows_and_groups(s.next_batch())
    ids = window_ids(x, gids)
    assert np.all(ids[gids == 0] == 0) and s.epochs == {"g0": 6, "g1": 1}


def test_seeds_and_names():
    def stream(seed, names=("a", "b")):
        src = dict(zip(names, make_sources([40, 40]).values()))
        s = MixtureSampler(src, L, 4, seed=seed, sampling="multinomial")
        return np.concatenate([s.next_batch()["input_ids"] for _ in range(10)])

    np.testing.assert_array_equal(stream(0), stream(0))
    assert not np.array_equal(stream(0), stream(1))
    assert not np.array_equal(stream(0), stream(0, names=("c", "d")))


@pytest.mark.parametrize("sampling", ["exact", "multinomial"])
def test_state_roundtrip_resumes_identical_stream(sampling):
    sizes = [5, 17, 9]

    def fresh():
        return MixtureSampler(make_sources(sizes), L, 6, seed=7, sampling=sampling, weights=[0.2, 0.3, 0.5])

    def script(s, start, stop, out):
        for step in range(start, stop):
            if step == 11:
                s.set_weights([0.6, 0.1, 0.3])
            if step == 23:
                s.set_weights([0.0, 0.5, 0.5])
            x, g = windows_and_groups(s.next_batch(exact=(step % 4 == 0)))
            out.append((x, g))

    ref = []
    script(fresh(), 0, 40, ref)
    # resume points: mid-epoch (3), after wraps (9), just after a weight change (12), late (30)
    for cut in (3, 9, 12, 30):
        a = fresh()
        head = []
        script(a, 0, cut, head)
        state = roundtrip(a.state_dict())
        b = fresh()
        b.load_state_dict(state)
        assert b.state_dict() == state
        tail = []
        script(b, cut, 40, tail)
        for (x, g), (rx, rg) in zip(head + tail, ref):
            np.testing.assert_array_equal(x, rx)
            np.testing.assert_array_equal(g, rg)
    assert any(e > 0 for e in b.epochs.values())


def test_state_mismatch_is_refused():
    a = MixtureSampler(make_sources([5, 5]), L, 4, seed=0)
    b = MixtureSampler(make_sources([5, 6]), L, 4, seed=0)
    with pytest.raises(UsageError, match="num_windows"):
        b.load_state_dict(a.state_dict())
    c = MixtureSampler(make_sources([5, 5]), L, 4, seed=1)
    with pytest.raises(UsageError, match="seed"):
        c.load_state_dict(a.state_dict())


def test_bad_inputs():
    with pytest.raises(UsageError, match="fewer than one window"):
        MixtureSampler({"a": np.arange(20), "b": np.arange(5)}, 8, 2, seed=0)
    with pytest.raises(UsageError, match="--sampling"):
        MixtureSampler(make_sources([3]), L, 2, seed=0, sampling="iid")
    s = MixtureSampler(make_sources([3, 3]), L, 2, seed=0)
    for bad in ([1.0], [1.0, np.nan], [1.0, -0.5], [0.0, 0.0]):
        with pytest.raises(ValueError):
            s.set_weights(bad)
    s.set_weights([3, 1])
    np.testing.assert_allclose(s.weights, [0.75, 0.25])


def test_batch_is_the_shared_mapping():
    """Window batches have the shape every batch has (data.bundle): input_ids, labels (-100 = not
    scored; windows score every token, so labels equal input_ids) and group_ids."""
    batch = MixtureSampler(make_sources([3, 2]), L, 4, seed=0).next_batch()
    assert set(batch) == {"input_ids", "labels", "group_ids"}
    assert batch["input_ids"].shape == (4, L) and batch["input_ids"].dtype == np.int64
    np.testing.assert_array_equal(batch["labels"], batch["input_ids"])
    assert batch["group_ids"].shape == (4,) and set(batch["group_ids"].tolist()) <= {0, 1}
