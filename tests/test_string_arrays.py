"""Tests of data.string_arrays: the baseline's pickled string arrays are read, and no pickle is ever run."""

import pickle

import numpy as np
import pytest
from numpy.lib import format as npy_format

from data.string_arrays import load_string_array


def _object_array(entries, shape):
    array = np.empty(shape, dtype=object)
    array.reshape(-1)[:] = entries
    return array


def _pickle_of(path):
    """The pickle stream behind a .npy header."""
    with open(path, "rb") as file:
        npy_format.read_array_header_1_0(file) if npy_format.read_magic(file) == (1, 0) else \
            npy_format.read_array_header_2_0(file)
        return file.read()


def _python2_npy(path, entries, shape):
    """An object array of Python 2 ``str`` as Python 2's numpy saved it (the baseline's split files, §2.2):
    a 1.0 header, then protocol 2 with GLOBAL numpy.core.multiarray names and SHORT_BINSTRING elements."""
    def short_string(text):
        data = text.encode("ascii")
        return b"U" + bytes([len(data)]) + data

    shape_tuple = b"(" + b"".join(b"K" + bytes([n]) for n in shape) + b"t"
    stream = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85"
              + short_string("b") + b"\x87R(K\x01" + shape_tuple + b"cnumpy\ndtype\nq\x02"
              + short_string("O8") + b"K\x00K\x01\x87R(K\x03" + short_string("|")
              + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]("
              + b"".join(short_string(e) for e in entries) + b"etb.")
    with open(path, "wb") as file:
        npy_format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": shape})
        file.write(stream)
    return stream


def test_plain_string_arrays(tmp_path):
    np.save(tmp_path / "u.npy", np.array([["a_1", "b_2"]]))
    np.save(tmp_path / "s.npy", np.array([b"c_3", b"d_4"]))
    assert load_string_array(tmp_path / "u.npy").tolist() == [["a_1", "b_2"]]
    loaded = load_string_array(tmp_path / "s.npy")
    assert loaded.dtype.kind == "U" and loaded.tolist() == ["c_3", "d_4"]


@pytest.mark.parametrize("shape", [(3, 1), (3,), (1, 3), (0, 1)])
def test_python3_object_arrays_as_np_save_writes_them(tmp_path, shape):
    entries = ["aaa_3", b"bbb_0", "c_c_9"][:int(np.prod(shape))]
    np.save(tmp_path / "o.npy", _object_array(entries, shape), allow_pickle=True)
    loaded = load_string_array(tmp_path / "o.npy")
    assert loaded.shape == shape and loaded.reshape(-1).tolist() == [e if isinstance(e, str) else e.decode()
                                                                      for e in entries]


def test_python2_object_array_of_the_baseline(tmp_path):
    entries = ["1a2b3c_3", "ffee_0"]
    stream = _python2_npy(tmp_path / "images_list_02958343_train.npy", entries, (2, 1))
    # The hand-written stream is what numpy reconstructs as that array (numpy's own reading of Python 2 files).
    reference = pickle.loads(stream, encoding="latin1")
    assert reference.dtype == object and reference.shape == (2, 1) and reference[:, 0].tolist() == entries
    assert load_string_array(tmp_path / "images_list_02958343_train.npy").tolist() == [[e] for e in entries]


class _WritesMarker:
    """Unpickling it calls open(path, "w"): a file appears if the pickle is run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_crafted_pickle_is_never_run(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "images_list_02958343_train.npy"
    np.save(path, _object_array([_WritesMarker(marker)], (1, 1)), allow_pickle=True)
    with pytest.raises(ValueError, match=r"images_list_02958343_train\.npy.*refers to .*open"):
        load_string_array(path)
    assert not marker.exists()
    pickle.loads(_pickle_of(path))  # the payload is live: any plain unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("content, message", [
    (_object_array([1, "a_1"], (2,)), "not strings"),
    (_object_array([{"a": 1}], (1,)), "not strings"),
    (np.arange(3), "int64 values, not strings"),
])
def test_arrays_that_are_not_strings_are_refused(tmp_path, content, message):
    np.save(tmp_path / "x.npy", content, allow_pickle=True)
    with pytest.raises(ValueError, match=message):
        load_string_array(tmp_path / "x.npy")


def test_a_pickle_that_disagrees_with_its_header_or_is_cut_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", _object_array(["a_1", "b_2"], (2,)), allow_pickle=True)
    stream = _pickle_of(tmp_path / "x.npy")
    for name, shape, body, message in (("shape.npy", (3,), stream, "does not hold the"),
                                       ("cut.npy", (2,), stream[:len(stream) // 2], "not an array of strings"),
                                       ("other.npy", (2,), pickle.dumps([b"a_1", b"b_2"]), "not a numpy array")):
        with open(tmp_path / name, "wb") as file:
            npy_format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": shape})
            file.write(body)
        with pytest.raises(ValueError, match=f"{name}.*{message}"):
            load_string_array(tmp_path / name)


def test_unreadable_files_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="missing.npy"):
        load_string_array(tmp_path / "missing.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="text.npy"):
        load_string_array(tmp_path / "text.npy")
