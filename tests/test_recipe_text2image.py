"""The text2image recipe end to end at toy size: it trains, resumes, evaluates, and its checkpoint loads
into the pipeline by name."""
import json

import pytest
import torch

from diffusion_course import shapes
from diffusion_course.checkpoint import save_checkpoint
from diffusion_course.clip import CLIP
from diffusion_course.pipeline import TextToImage
from diffusion_course.recipes import text2image
from diffusion_course.text import Tokenizer
from diffusion_course.vae import VAE


def test_a_tiny_run_trains_evaluates_and_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(text2image, "REALISM_DRAWS", 2)                  # the least FD allows, for speed
    monkeypatch.setattr(text2image, "REALISM_N", 260)
    torch.manual_seed(0)
    tok = Tokenizer(shapes.vocabulary(partial=True))
    save_checkpoint(tmp_path / "clip", CLIP(tok.config["vocab"], embed_dim=8, text_dim=8, text_depth=1, heads=2,
                                             width=8, image_dim=8))
    save_checkpoint(tmp_path / "vae", VAE(width=8, enc_blocks=1, dec_blocks=1))
    settings = dict(steps=3, batch_size=4, channels=8, text_encoder=str(tmp_path / "clip"), vae=str(tmp_path / "vae"),
                    eval_n=4, eval_steps=2)
    model, metrics = text2image.run(out=str(tmp_path / "t2i"), device="cpu", **settings)
    assert metrics["resumed_from_step"] == 0 and metrics["final_loss"] > 0
    for name in ("heldout_single", "heldout_pairs", "partial"):
        m = metrics[name]
        assert m["n_prompts"] == 4 and m["num_inference_steps"] == 2 and m["guidance_scale"] == 4.0
        assert 0 <= m["scores"]["count"]["rate"] <= 1
    assert metrics["heldout_pairs"]["scores"]["binding"]["n"] > 0
    assert metrics["judge_on_real_scenes"]["scene"]["rate"] > 0.9
    r = metrics["realism"]
    assert (r["n"], r["draws"]) == (260, 2) and r["fd_floor"] > 0
    json.dumps(metrics)                                                   # a card holds plain JSON
    save_checkpoint(tmp_path / "t2i", model, {"settings": dict(text2image.DEFAULTS, **settings)})
    pipe = TextToImage.from_pretrained(str(tmp_path / "t2i"))
    assert pipe("a red shape", num_inference_steps=2).shape == (1, 3, 64, 64)
    again, _ = text2image.run(out=str(tmp_path / "t2i"), device="cpu", **dict(settings, steps=4))   # continues
    assert not torch.equal(next(again.parameters()), next(model.parameters()))


def test_generate_command_writes_the_grid_it_reports(tmp_path, capsys):
    from diffusion_course.__main__ import main
    torch.manual_seed(0)
    tok = Tokenizer(shapes.vocabulary(partial=True))
    clip = CLIP(tok.config["vocab"], embed_dim=8, text_dim=8, text_depth=1, heads=2, width=8, image_dim=8)
    save_checkpoint(tmp_path / "clip", clip)
    save_checkpoint(tmp_path / "vae", VAE(width=8, enc_blocks=1, dec_blocks=1))
    unet = text2image.make_unet(8, channels=8)
    save_checkpoint(tmp_path / "t2i", unet, {"settings": {"text_encoder": str(tmp_path / "clip"),
                                                           "vae": str(tmp_path / "vae")}})
    main(["generate", "a red circle left of a blue square", "--negative", "something green", "--steps", "2",
          "--n", "2", "--checkpoint", str(tmp_path / "t2i"), "--out", str(tmp_path / "grid")])
    assert f"wrote {tmp_path / 'grid.png'}: 2 pictures" in capsys.readouterr().out
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as e:
        main(["generate", "a red circel", "--steps", "2", "--checkpoint", str(tmp_path / "t2i"), "--out",
              str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown word 'circel'" in err and "did you mean 'circle'" in err


def test_the_joint_recipe_trains_the_text_encoder_too_and_loads_both(tmp_path):
    """text2image_joint: the text encoder learns (its weights move from CLIP's), is saved beside the
    U-Net, and from_pretrained reads the pair; the frozen recipe leaves CLIP's text tower as it was."""
    from diffusion_course.__main__ import main
    from diffusion_course.checkpoint import load_model
    torch.manual_seed(0)
    tok = Tokenizer(shapes.vocabulary(partial=True))
    save_checkpoint(tmp_path / "clip", CLIP(tok.config["vocab"], embed_dim=8, text_dim=8, text_depth=1, heads=2,
                                             width=8, image_dim=8))
    save_checkpoint(tmp_path / "vae", VAE(width=8, enc_blocks=1, dec_blocks=1))
    args = ["--steps", "3", "--batch_size", "4", "--channels", "8", "--text_encoder", str(tmp_path / "clip"),
            "--vae", str(tmp_path / "vae"), "--eval_n", "0"]
    main(["train", "text2image_joint", "--out", str(tmp_path / "joint")] + args)
    main(["train", "text2image", "--out", str(tmp_path / "frozen")] + args)
    start = load_model(str(tmp_path / "clip")).text
    joint, frozen = (TextToImage.from_pretrained(str(tmp_path / n)) for n in ("joint", "frozen"))
    moved = lambda pipe: any(not torch.equal(a, b) for a, b in                               # noqa: E731
                             zip(pipe.text_encoder.state_dict().values(), start.state_dict().values()))
    assert moved(joint) and not moved(frozen)
    assert json.loads((tmp_path / "joint.json").read_text())["recipe"] == "text2image_joint"
    assert joint("a red shape", num_inference_steps=2).shape == (1, 3, 64, 64)


def test_the_pixel_recipe_denoises_pictures_with_the_same_pipeline(tmp_path):
    """text2image_pixels: no painter (PixelSpace), a U-Net on 64x64x3 pictures; the pipeline loads it by
    name, and img2img / inpainting work on the pictures directly (outside the mask: the input, exactly)."""
    from diffusion_course.__main__ import main
    from diffusion_course.pipeline import PixelSpace
    torch.manual_seed(0)
    tok = Tokenizer(shapes.vocabulary(partial=True))
    save_checkpoint(tmp_path / "clip", CLIP(tok.config["vocab"], embed_dim=8, text_dim=8, text_depth=1, heads=2,
                                             width=8, image_dim=8))
    main(["train", "text2image_pixels", "--out", str(tmp_path / "px"), "--steps", "2", "--batch_size", "2",
          "--channels", "8", "--text_encoder", str(tmp_path / "clip"), "--eval_n", "0"])
    pipe = TextToImage.from_pretrained(str(tmp_path / "px"))
    assert isinstance(pipe.vae, PixelSpace) and pipe.unet.config["in_channels"] == 3
    assert pipe.unet.config["attention_levels"] == [2, 3] or pipe.unet.config["attention_levels"] == (2, 3)
    image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., :16, :16] = 1
    out = pipe("a red shape", image=image, mask=mask, strength=0.5, num_inference_steps=2)
    assert torch.allclose(out[..., 16:, :], image[..., 16:, :], atol=1e-6)      # untouched outside the mask
    assert not torch.allclose(out[..., :16, :16], image[..., :16, :16], atol=1e-2)
