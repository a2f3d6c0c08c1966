import gzip

import numpy as np
import pytest
import torch

from diffusion_course.data import load_mnist, read_idx


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_parses_the_header(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", images, 2051)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    write_idx(tmp_path / "bad.gz", np.zeros((2, 2)), 1234)
    with pytest.raises(ValueError, match="magic number 1234"):
        read_idx(tmp_path / "bad.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write((2051).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in (5, 2, 2)) + b"\0" * 7)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short.gz")


def test_loads_the_offline_test_split(mnist_root):
    x, y = load_mnist("test", root=mnist_root, download=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    # the class counts of the official MNIST test split
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    raw, _ = load_mnist("test", root=mnist_root, download=False, raw=True)
    assert raw.shape == (10000, 28, 28) and raw.dtype == torch.uint8
    torch.testing.assert_close(raw[:5].float() / 127.5 - 1, x[:5, 0])


def test_env_variable_is_searched(monkeypatch, mnist_root):
    monkeypatch.setenv("DIFFUSION_COURSE_DATA", str(mnist_root))
    x, _ = load_mnist("test", download=False)
    assert len(x) == 10000


def test_empty_folder_fails_clearly_naming_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*DIFFUSION_COURSE_DATA"):
        load_mnist("test", download=False)
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        load_mnist("test", root=tmp_path)


def test_unknown_split():
    with pytest.raises(ValueError, match="expected 'train' or 'test'"):
        load_mnist("validation")
