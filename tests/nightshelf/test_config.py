import pytest

from nightshelf.config import load_config


def test_defaults_load_and_home_comes_from_environment(tmp_path):
    cfg = load_config(environ={"NIGHTSHELF_HOME": str(tmp_path)})
    assert cfg.home == tmp_path.resolve()
    assert cfg.scoring.top_n == 20
    assert cfg.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"


def test_environment_overrides_are_typed(tmp_path):
    cfg = load_config(environ={"NIGHTSHELF_HOME": str(tmp_path),
                               "NIGHTSHELF__SCORING__TOP_N": "7",
                               "NIGHTSHELF__FEATURES__WINDOWS_DAYS": "[2, 5]"})
    assert cfg.scoring.top_n == 7
    assert cfg.features.windows_days == [2, 5]


def test_file_overrides_and_unknown_keys_are_named(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  epochs: 3\n")
    assert load_config(good, environ={}).model.epochs == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  topn: 3\n")
    with pytest.raises(ValueError, match=r"config scoring: unknown key\(s\) \['topn'\]"):
        load_config(bad, environ={})


def test_bad_value_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="config scoring.top_n"):
        load_config(environ={"NIGHTSHELF__SCORING__TOP_N": "many"})
