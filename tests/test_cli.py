import pytest

from diffusion_course.__main__ import RECIPES, UsageError, load_recipe, main, parse_settings

DEFAULTS = {"steps": 100, "lr": 1e-3, "ema": True, "name": "x"}


def test_settings_are_typed_like_the_defaults():
    got = parse_settings(DEFAULTS, ["--steps", "2e3", "--lr", "3e-4", "--ema", "false", "--name", "y"])
    assert got == {"steps": 2000, "lr": 3e-4, "ema": False, "name": "y"}


@pytest.mark.parametrize("argv, message", [
    (["--stepz", "3"], "unknown setting --stepz; this recipe takes: --steps, --lr"),
    (["--steps"], "--steps needs a value"),
    (["--steps", "many"], "--steps expects a whole number"),
    (["--steps", "1.7"], "--steps expects a whole number"),
    (["steps", "3"], "expected --key value"),
])
def test_bad_settings_say_what_is_expected(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_settings(DEFAULTS, argv)


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(UsageError, match="choose one of " + ", ".join(RECIPES)):
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


def test_train_records_the_commit_the_run_started_from(tmp_path, monkeypatch):
    import itertools
    import types

    from diffusion_course import __main__ as cli
    from diffusion_course import checkpoint
    from diffusion_course.mlp import MLPDenoiser
    commits = itertools.chain(["abc123"], itertools.repeat("abc123-dirty"))   # the tree changes while it trains
    monkeypatch.setattr(checkpoint, "git_commit", lambda: next(commits))

    def run(out, device, steps=1):
        checkpoint.git_commit()                                  # someone edits a file mid-run
        return MLPDenoiser(hidden=8), {"final_loss": 0.5}

    fake = types.SimpleNamespace(NAME="fake", DEFAULTS={"steps": 1}, run=run, __doc__="A fake recipe.")
    monkeypatch.setattr(cli, "load_recipe", lambda name: fake)
    cli.main(["train", "fake", "--out", str(tmp_path / "fake"), "--device", "cpu", "--steps", "3"])
    card = checkpoint.read_card(str(tmp_path / "fake"))
    assert card["git_commit"] == "abc123" and card["settings"] == {"steps": 3}
    assert card["metrics"] == {"final_loss": 0.5} and card["description"] == "A fake recipe."


def test_every_number_a_recipe_takes_has_a_rule():
    from diffusion_course.recipes import RULES
    for name in RECIPES:
        for key, value in load_recipe(name).DEFAULTS.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert key in RULES, f"recipe {name}: --{key} has no entry in recipes.RULES"
