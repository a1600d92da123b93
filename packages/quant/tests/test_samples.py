"""Sample files: the one reader and writer of input codes that verify, deploy and campaigns share."""

from __future__ import annotations

import numpy as np
import pytest

from ctnn.quant import SampleFileError, read_arrays, read_codes, write_samples


def test_codes_round_trip_with_labels_and_indices(tmp_path):
    codes = np.arange(12, dtype=np.int8).reshape(3, 4)
    path = write_samples(tmp_path / "sub" / "s.npz", codes, labels=[1, 0, 2], indices=np.array([7, 3, 9]))
    arrays = read_arrays(path)
    assert list(arrays) == ["codes", "labels", "indices"]
    assert arrays["codes"].dtype == np.int8 and np.array_equal(arrays["codes"], codes)
    assert arrays["labels"].tolist() == [1, 0, 2] and arrays["indices"].tolist() == [7, 3, 9]
    assert np.array_equal(read_codes(path), codes)
    npy = write_samples(tmp_path / "c.npy", codes, labels=[1, 0, 2])  # a .npy holds the codes alone
    assert list(read_arrays(npy)) == ["codes"] and np.array_equal(read_codes(npy), codes)


def test_which_array_holds_the_codes(tmp_path):
    a, b = np.zeros((2, 3), np.int8), np.ones((2, 3), np.int8)
    np.savez(tmp_path / "named.npz", x=a, codes=b)
    assert np.array_equal(read_codes(tmp_path / "named.npz", name="x"), a)  # the input's own name first
    assert np.array_equal(read_codes(tmp_path / "named.npz"), b)
    np.savez(tmp_path / "alone.npz", anything=a)
    assert np.array_equal(read_codes(tmp_path / "alone.npz", name="x"), a)
    np.savez(tmp_path / "two.npz", p=a, q=b)
    with pytest.raises(SampleFileError, match=r"two\.npz: an \.npz of box bounds needs an array named "
                       r"'x' or 'codes'; it holds \['p', 'q'\]"):  # fmt: skip
        read_codes(tmp_path / "two.npz", "box bounds", name="x")


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    with pytest.raises(SampleFileError, match=r"junk\.npz: cannot read a \.npy or \.npz of samples"):
        read_arrays(tmp_path / "junk.npz", "samples")
    with pytest.raises(SampleFileError, match=r"gone\.npy: cannot read"):
        read_codes(tmp_path / "gone.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))  # a pickle: never loaded
    with pytest.raises(SampleFileError, match=r"obj\.npy: cannot read .*allow_pickle"):
        read_codes(tmp_path / "obj.npy")
    with pytest.raises(SampleFileError, match=r"c\.csv: expected a \.npy \(codes\) or \.npz"):
        write_samples(tmp_path / "c.csv", np.zeros(3))
    assert not (tmp_path / "c.csv").exists()
