"""The MNIST classifier recipe: a tiny end-to-end run, the checkpoint round trip, and the held-out split."""
import torch

from diffusion_course.checkpoint import load_model, save_checkpoint
from diffusion_course.recipes import classifier


def test_tiny_run_end_to_end(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_DATA", str(mnist_root))
    out = str(tmp_path / "mnist_classifier")
    model, metrics = classifier.run(out, torch.device("cpu"), steps=3, batch_size=4, width=8)
    assert model.config == {"width": 8, "num_classes": 10, "dropout": 0.1}
    assert metrics["heldout_n"] == 1000 and metrics["train_n"] == 9000
    assert 0.0 <= metrics["heldout_accuracy"] <= 1.0 and "9000-9999" in metrics["heldout_split"]
    save_checkpoint(out, model, {"settings": {"steps": 3}}, half=classifier.HALF)
    back = load_model(out)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(back(x), model.eval()(x))
