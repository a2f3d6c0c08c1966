import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture
def mnist_root():
    """The folder with the offline MNIST test split (CI: ../shared/data); skip if absent."""
    root = os.environ.get("DIFFUSION_COURSE_DATA") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    if not root or not any(Path(root).rglob("t10k-images-idx3-ubyte*")):
        pytest.skip("offline MNIST not available (set DIFFUSION_COURSE_DATA)")
    return Path(root)
