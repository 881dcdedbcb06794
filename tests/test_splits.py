"""Tests of data.splits: exact counts, disjoint deterministic ratio splits, the baseline's split files."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data import splits


def test_parse_ratio():
    assert splits.parse_ratio("50/50") == {"train": 50, "test": 50}
    assert splits.parse_ratio("70/10/20") == {"train": 70, "val": 10, "test": 20}
    assert splits.parse_ratio("some/dir") is None
    with pytest.raises(ValueError, match="no positive weight"):
        splits.parse_ratio("0/0")


@pytest.mark.parametrize("n, spec, expected", [
    (5, "50/50", {"train": 3, "test": 2}),            # 2.5 / 2.5: the tie goes to train
    (4, "50/50", {"train": 2, "test": 2}),
    (10, "70/10/20", {"train": 7, "val": 1, "test": 2}),
    (7, "70/10/20", {"train": 5, "val": 1, "test": 1}),  # 4.9 / 0.7 / 1.4: remainders .9, .7 win
    (1, "70/10/20", {"train": 1, "val": 0, "test": 0}),
    (0, "50/50", {"train": 0, "test": 0}),
])
def test_split_counts_golden(n, spec, expected):
    assert splits.split_counts(n, splits.parse_ratio(spec)) == expected


@given(n=st.integers(0, 500), weights=st.lists(st.integers(0, 100), min_size=2, max_size=3)
       .filter(lambda w: sum(w) > 0))
def test_split_counts_exact_and_fair(n, weights):
    named = dict(zip(splits.SPLIT_NAMES_2 if len(weights) == 2 else splits.SPLIT_NAMES_3, weights))
    counts = splits.split_counts(n, named)
    assert sum(counts.values()) == n
    for name, w in named.items():
        assert abs(counts[name] - n * w / sum(weights)) < 1.0


def test_ratio_split_disjoint_exact_deterministic():
    ids = [f"model{i:03d}" for i in range(37)]
    weights = splits.parse_ratio("70/10/20")
    out = splits.ratio_split(ids, weights, seed=0, category="chair")
    assert {k: len(v) for k, v in out.items()} == splits.split_counts(37, weights)
    assert sorted(sum(out.values(), [])) == ids  # disjoint and complete
    assert splits.ratio_split(ids[::-1], weights, seed=0, category="chair") == out  # order-free
    assert splits.ratio_split(ids, weights, seed=1, category="chair") != out
    assert splits.ratio_split(ids, weights, seed=0, category="car") != out
    with pytest.raises(ValueError, match="duplicate"):
        splits.ratio_split(ids + ids[:1], weights, seed=0, category="chair")


def _write_split_file(path, entries):
    array = np.empty((len(entries), 1), dtype=object)
    array[:, 0] = entries
    np.save(path, array, allow_pickle=True)


def test_read_split_files(tmp_path):
    _write_split_file(tmp_path / "images_list_03001627_train.npy", ["aaa_3", "bbb_0"])
    _write_split_file(tmp_path / "images_list_03001627_test.npy", [b"ccc_9"])
    _write_split_file(tmp_path / "images_list_02958343_train.npy", ["ddd_1"])
    assert splits.read_split_files(tmp_path, "03001627") == {"train": [("aaa", 3), ("bbb", 0)],
                                                            "test": [("ccc", 9)]}
    with pytest.raises(ValueError, match="no split file"):
        splits.read_split_files(tmp_path, "02691156")


@pytest.mark.parametrize("train, test, message", [
    (["aaa_x"], ["bbb_1"], "'aaa_x' is not"),
    (["aaa_1"], ["aaa_2"], "model aaa already listed in images_list_03001627_train.npy"),
])
def test_read_split_files_rejects_bad_files(tmp_path, train, test, message):
    _write_split_file(tmp_path / "images_list_03001627_train.npy", train)
    _write_split_file(tmp_path / "images_list_03001627_test.npy", test)
    with pytest.raises(ValueError, match=message):
        splits.read_split_files(tmp_path, "03001627")


class _WritesMarker:
    """Unpickling it calls open(path, "w"): a file appears if the pickle is run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_crafted_split_file_is_refused_and_never_run(tmp_path):
    """A split file whose pickle would create a file: refused with the file's name, and the file never
    appears (np.load(..., allow_pickle=True) would run it)."""
    marker = tmp_path / "marker"
    _write_split_file(tmp_path / "images_list_03001627_train.npy", ["aaa_3", _WritesMarker(marker)])
    with pytest.raises(ValueError, match=r"images_list_03001627_train\.npy.*refers to"):
        splits.read_split_files(tmp_path, "03001627")
    assert not marker.exists()


def test_stable_hash_is_fixed():
    # SHA-256("car") starts 2b 29 61 a4 31 b2 3c 90; read little endian. Changing the hash would move
    # every split and every seed of a data set, so it is pinned.
    assert splits.stable_hash("car") == 0x903CB231A461292B
