"""Nearest-neighbour lists of OURS-NN: file format and the k nearest embeddings (data/knn_list.py, baseline §2.7)."""

import numpy as np
import pytest

import data.knn_list as nb

KEYS = ["1a2b_0", "1a2b_3", "ffee_9", "c0de_12"]


def test_load_byte_string_list_like_the_baseline(tmp_path):
    table = np.array([[b"1a2b_0", b"ffee_9", b"c0de_12"], [b"ffee_9", b"1a2b_0", b"1a2b_3"]])
    np.save(tmp_path / "knn_list_03001627.npy", table)
    loaded = nb.load_knn_list(tmp_path / "knn_list_03001627.npy")
    assert loaded.tolist() == [["1a2b_0", "ffee_9", "c0de_12"], ["ffee_9", "1a2b_0", "1a2b_3"]]
    assert nb.parse_key(loaded[1, 2]) == ("1a2b", 3)


def test_load_unicode_and_pickled_string_lists(tmp_path):
    np.save(tmp_path / "knn.npy", np.array([["m_1_2", "other_4", "third_0"]]))  # underscores inside an id
    loaded = nb.load_knn_list(tmp_path / "knn.npy")
    assert loaded.tolist() == [["m_1_2", "other_4", "third_0"]]
    assert nb.parse_key(loaded[0, 0]) == ("m_1", 2)
    table = np.empty((1, 3), dtype=object)
    table[0] = [b"m_1_2", "other_4", b"third_0"]
    np.save(tmp_path / "pickled.npy", table, allow_pickle=True)  # read without running the pickle
    assert nb.load_knn_list(tmp_path / "pickled.npy").tolist() == [["m_1_2", "other_4", "third_0"]]


class _WritesMarker:
    """Unpickling it calls open(path, "w"): a file appears if the pickle is run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_crafted_list_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "marker"
    table = np.empty((1, 2), dtype=object)
    table[0] = ["a_1", _WritesMarker(marker)]
    np.save(tmp_path / "knn.npy", table, allow_pickle=True)
    with pytest.raises(ValueError, match=r"load_knn_list: .*knn\.npy.*refers to"):
        nb.load_knn_list(tmp_path / "knn.npy")
    assert not marker.exists()


def test_bad_lists_raise_clear_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.array([b"a_1", b"b_2"]))
    with pytest.raises(ValueError, match="flat.npy.*shape"):
        nb.load_knn_list(tmp_path / "flat.npy")
    np.save(tmp_path / "bad.npy", np.array([[b"a_1", b"noview"]]))
    with pytest.raises(ValueError, match="noview"):
        nb.load_knn_list(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="cannot read"):
        nb.load_knn_list(tmp_path / "missing.npy")


def test_knn_from_embeddings_l2_golden():
    emb = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert nb.knn_from_embeddings(emb, 2, metric="l2").tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]


def test_knn_from_embeddings_cosine_golden():
    angles = np.deg2rad([0.0, 10.0, 90.0, 100.0])
    emb = np.stack([np.cos(angles), np.sin(angles)], -1) * [[1.0], [5.0], [0.1], [2.0]]   # norms ignored
    assert nb.knn_from_embeddings(emb, 2).tolist() == [[1, 2], [0, 2], [3, 1], [2, 1]]


def test_knn_excludes_self_even_with_duplicates():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert nb.knn_from_embeddings(emb, 1).tolist() == [[1], [0], [0]]


def test_knn_blocks_equal_one_block(monkeypatch):
    emb = np.random.default_rng(0).normal(size=(11, 5))
    whole = nb.knn_from_embeddings(emb, 4, metric="l2")
    monkeypatch.setattr(nb, "_KNN_ROWS_PER_BLOCK", 3)
    np.testing.assert_array_equal(nb.knn_from_embeddings(emb, 4, metric="l2"), whole)
    brute = np.argsort(np.linalg.norm(emb[:, None] - emb[None], axis=-1) + np.diag([np.inf] * 11), axis=1)
    np.testing.assert_array_equal(whole, brute[:, :4])


def test_knn_list_round_trip(tmp_path):
    table = np.array([["1a2b_0", "1a2b_3", "ffee_9"], ["ffee_9", "1a2b_3", "1a2b_0"]])
    nb.save_knn_list(tmp_path / "knn.npy", table)
    assert np.load(tmp_path / "knn.npy").dtype.kind == "S"                 # bytes, as the baseline
    np.testing.assert_array_equal(nb.load_knn_list(tmp_path / "knn.npy"), table)
