import pytest

from diffusion_course.__main__ import RECIPES, load_recipe, main, parse_settings

DEFAULTS = {"steps": 100, "lr": 1e-3, "ema": True, "name": "x"}


def test_settings_are_typed_like_the_defaults():
    got = parse_settings(DEFAULTS, ["--steps", "2e3", "--lr", "3e-4", "--ema", "false", "--name", "y"])
    assert got == {"steps": 2000, "lr": 3e-4, "ema": False, "name": "y"}


@pytest.mark.parametrize("argv, message", [
    (["--stepz", "3"], "unknown setting --stepz; this recipe takes: --steps, --lr"),
    (["--steps"], "--steps needs a value"),
    (["--steps", "many"], "--steps expects a int"),
    (["steps", "3"], "expected --key value"),
])
def test_bad_settings_say_what_is_expected(argv, message):
    with pytest.raises(SystemExit, match=message):
        parse_settings(DEFAULTS, argv)


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(SystemExit, match="choose one of " + ", ".join(RECIPES)):
        load_recipe("imagenet")


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_has_the_contract(name):
    recipe = load_recipe(name)
    assert isinstance(recipe.NAME, str) and isinstance(recipe.DEFAULTS, dict) and callable(recipe.run)
    assert recipe.__doc__.strip()
    assert "steps" in recipe.DEFAULTS and not {"out", "device"} & set(recipe.DEFAULTS)


def test_defaults_are_the_keyword_defaults_of_run():
    from diffusion_course.recipes import defaults

    def run(out, device, steps=10, lr=1e-3, *, name="x"):
        pass
    assert defaults(run) == {"steps": 10, "lr": 1e-3, "name": "x"}


def test_recipes_command_lists_defaults(capsys):
    main(["recipes"])
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES)
