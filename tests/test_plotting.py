import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from diffusion_course import show_images
from diffusion_course.plotting import to_grid_layout


@pytest.mark.parametrize("shape, n", [((4, 3, 8, 9), 4), ((4, 8, 9, 3), 4), ((3, 8, 9), 1), ((8, 9, 3), 1),
                                      ((8, 9), 1), ((2, 1, 8, 9), 2), ((5, 8, 9), 5), ((2, 4, 8, 8), 2)])
def test_layouts_become_bhwc(shape, n):
    x = to_grid_layout(torch.rand(shape))
    assert x.shape[0] == n and x.shape[1:3] in ((8, 9), (8, 8)) and x.shape[3] in (1, 3)


def test_value_ranges_are_mapped_to_unit_interval():
    def tile(a):  # a 2x2 pattern repeated into a 4x4 image
        return np.tile(np.asarray(a), (2, 2))
    minus_one_to_one = torch.tensor(tile([[-1.0, 0.0], [0.5, 1.0]]))
    np.testing.assert_allclose(to_grid_layout(minus_one_to_one)[0, ..., 0], tile([[0, 0.5], [0.75, 1.0]]))
    unit = torch.tensor(tile([[0.0, 0.25], [0.5, 1.0]]))
    np.testing.assert_allclose(to_grid_layout(unit)[0, ..., 0], unit.numpy())
    uint8 = tile(np.array([[0, 255], [51, 102]], dtype=np.uint8))
    np.testing.assert_allclose(to_grid_layout(uint8)[0, ..., 0], tile([[0, 1], [0.2, 0.4]]), atol=1e-6)


def test_show_images_draws_one_axis_per_image_with_titles():
    fig = show_images(torch.rand(5, 1, 6, 6), titles=list("abcde"), nrow=3, title="five", show=False)
    axes = fig.get_axes()
    assert len(axes) == 6 and [a.get_title() for a in axes[:5]] == list("abcde")
    assert fig._suptitle.get_text() == "five"
    plt.close(fig)


@pytest.mark.parametrize("bad", [torch.rand(2, 3), torch.rand(2, 2, 2, 2, 2), torch.rand(4, 5, 6, 7)])
def test_show_images_names_accepted_shapes_on_bad_input(bad):
    with pytest.raises(ValueError, match=r"accepts \(B, C, H, W\)"):
        show_images(bad, show=False)


def test_show_images_rejects_nan_and_title_mismatch_and_non_arrays():
    with pytest.raises(ValueError, match="NaN"):
        show_images(torch.full((5, 5), float("nan")), show=False)
    with pytest.raises(ValueError, match="one title per image"):
        show_images(torch.rand(2, 1, 4, 4), titles=["a"], show=False)
    with pytest.raises(TypeError, match="expects a torch tensor"):
        show_images("picture.png", show=False)


def test_web_slider_keeps_one_frame_per_combination_and_restores_the_backend():
    from diffusion_course.plotting import web_slider
    backend = plt.get_backend()
    calls = []

    def draw(sigma, seed=0):               # draws the way a live widget callback does, plt.show() included
        calls.append((sigma, seed))
        show_images(torch.full((1, 1, 8, 8), sigma), title=f"{sigma} {seed}")

    w = web_slider(draw, sigma=[0.1, 1.0, 10.0], seed=[0, 1], fmt={"sigma": "{:.1f}", "seed": "{}"})
    assert calls == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1), (10.0, 0), (10.0, 1)]   # row-major, as the page's JS
    assert len(w.frames) == 6 and len(set(w.frames)) == 6 and all(f.startswith("data:image/png;base64,") for f in w.frames)
    assert repr(w) == "WebSlider over sigma (3: 0.1 .. 10.0), seed (2: 0 .. 1): 6 frames"
    page = w._repr_html_()
    assert page.count('type="range"') == 2 and 'max="2"' in page and 'max="1"' in page and w.frames[0] in page
    assert plt.get_backend() == backend and not plt.get_fignums()


def test_web_slider_bad_calls_say_what_to_do():
    from diffusion_course.plotting import web_slider
    with pytest.raises(ValueError, match="at least one control"):
        web_slider(lambda: None)
    with pytest.raises(ValueError, match="non-empty list"):
        web_slider(lambda sigma: None, sigma=[])
    with pytest.raises(ValueError, match="drew no matplotlib figure"):
        web_slider(lambda sigma: None, sigma=[1.0])
