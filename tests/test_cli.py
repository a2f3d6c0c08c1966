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


def test_evaluate_rewrites_only_the_metrics_and_records_who_measured(tmp_path, monkeypatch, capsys):
    import types

    from diffusion_course import __main__ as cli
    from diffusion_course import checkpoint
    from diffusion_course.mlp import MLPDenoiser
    out = str(tmp_path / "fake")
    model = MLPDenoiser(hidden=8)
    checkpoint.save_checkpoint(out, model, {"recipe": "fake", "settings": {"steps": 3, "eval_n": 5},
                                            "metrics": {"final_loss": 0.5, "samples": {"fd": 9.0}}})
    made = checkpoint.read_card(out)
    got = {}

    def reevaluate(m, where, **settings):
        got.update(settings, where=where, weights=m.state_dict())
        return {"samples": {"fd": 1.0}}

    fake = types.SimpleNamespace(NAME="fake", DEFAULTS={"steps": 1, "eval_n": 7}, run=None, reevaluate=reevaluate)
    monkeypatch.setattr(cli, "load_recipe", lambda name: fake)
    monkeypatch.setattr(checkpoint, "git_commit", lambda: "def456")
    cli.main(["evaluate", "fake", "--out", out, "--device", "cpu"])
    card = checkpoint.read_card(out)
    assert got["steps"] == 3 and got["eval_n"] == 7 and got["where"] == out     # the recipe's new eval default
    assert all((got["weights"][k] == v).all() for k, v in model.state_dict().items())
    assert card["metrics"] == {"final_loss": 0.5, "samples": {"fd": 1.0}}
    assert card["settings"] == {"steps": 3, "eval_n": 7}
    assert card["git_commit"] == made["git_commit"] and card["created"] == made["created"]   # how it was made
    assert card["evaluation"]["git_commit"] == "def456" and "evaluate fake" in card["evaluation"]["command"]
    # a training setting cannot be changed by evaluate; a recipe without reevaluate says how to re-make
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "fake", "--out", out, "--steps", "9"])
    assert "unknown setting --steps; this recipe takes: --eval_n" in capsys.readouterr().err
    del fake.reevaluate
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "fake", "--out", out])
    assert "train fake --overwrite" in capsys.readouterr().err


def test_evaluate_refuses_a_checkpoint_of_another_recipe(tmp_path, capsys):
    from diffusion_course import checkpoint
    from diffusion_course.mlp import MLPDenoiser
    out = str(tmp_path / "other")
    checkpoint.save_checkpoint(out, MLPDenoiser(hidden=8), {"recipe": "clip", "settings": {}})
    with pytest.raises(SystemExit):
        main(["evaluate", "mnist", "--out", out])
    assert "made by recipe 'clip', not 'mnist'" in capsys.readouterr().err
