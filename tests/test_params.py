import copy
from pathlib import Path

import pytest
import yaml

from lenet1.config.params import ParamsError, load_section, read_params, validate as validate_sections
from lenet1.config.learning import TrainParams
from stages.validate import SECTIONS

ROOT = Path(__file__).resolve().parents[1]


def validate(raw):
    return validate_sections(raw, SECTIONS, complete=True)


def load_params(path):
    return validate(read_params(path))


@pytest.fixture
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid():
    loaded = load_params(ROOT / "params.yaml")
    assert loaded["split"].val_size == 10000
    assert isinstance(loaded["train"].lr, float) and isinstance(loaded["download"].sources, tuple)


def test_every_committed_key_has_a_rule_and_every_rule_a_committed_key():
    from dataclasses import fields

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        assert list(raw[section]) == [field.name for field in fields(cls)], section


def test_a_stage_loads_only_its_section(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["split"]["val_size"] = -1  # another stage's problem: the validate stage reports it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert load_section(tmp_path / "params.yaml", "train", TrainParams).lr == raw["train"]["lr"]
    with pytest.raises(ParamsError, match="split.val_size"):
        load_params(tmp_path / "params.yaml")


def test_params_are_read_only_and_typos_fail_at_once():
    import dataclasses

    loaded = load_params(ROOT / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded["train"].lr = 0.1
    with pytest.raises(AttributeError):
        loaded["train"].lrr  # noqa: B018 (the attribute access is the test)


def test_the_code_implements_every_choice_the_schema_allows():
    import pytest as _pytest

    from lenet1.data.inputs import prepare
    from lenet1.architecture import VARIANTS
    from lenet1.loss import make_loss
    from lenet1.model import LeNet1
    from lenet1.model import build_model
    from lenet1.config.data import INPUTS
    from lenet1.config.learning import INITS, LOSSES, SCHEDULES
    from lenet1.train import learning_rates
    import numpy as np

    for variant in VARIANTS:
        LeNet1(variant)
    for loss in LOSSES:
        make_loss(loss, LeNet1("full"))
    for init in INITS:
        build_model("paper", 1, init)
    for schedule in SCHEDULES:
        learning_rates(schedule, 1.0, 2, 1, 0.5)
    for kind in INPUTS:
        prepare(np.zeros((1, 28, 28), dtype=np.uint8), kind)
    with _pytest.raises(ValueError):
        LeNet1("lenet5")


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "lr", -0.1, "train.lr"),
        ("train", "lr", "fast", "train.lr"),
        ("train", "batch_size", 0, "train.batch_size"),
        ("train", "batch_size", 1.5, "train.batch_size"),
        ("train", "epochs", True, "train.epochs"),  # YAML true must not pass as 1
        ("train", "variant", "lenet5", "train.variant"),
        ("train", "schedule", "linear", "train.schedule"),
        ("train", "loss", "hinge", "train.loss"),
        ("train", "deterministic", "yes", "train.deterministic"),
        ("train", "optimizer", "adam", "train.optimizer"),
        ("train", "mu", 0, "train.mu"),
        ("train", "mu", -0.02, "train.mu"),
        ("split", "input", "bogus", "split.input"),
        ("split", "val_size", -1, "split.val_size"),
        ("split", "val_size", 60000, "split.val_size"),
        ("split", "val_size", 100.5, "split.val_size"),
        ("download", "sources", ["mirrors", "ftp"], "download.sources"),
        ("download", "sources", [], "download.sources"),
        ("download", "timeout", 0, "download.timeout"),
    ],
)
def test_bad_value_names_the_key(params, section, key, value, expected):
    params[section][key] = value
    with pytest.raises(ParamsError, match=f"bad value for '{expected}'"):
        validate(params)


def test_unknown_key_is_an_error(params):
    params["train"]["lrr"] = 0.1  # what `dvc exp run -S train.lrr=0.1` adds
    with pytest.raises(ParamsError, match=r"unknown key 'train\.lrr'"):
        validate(params)


def test_unknown_section_and_missing_key(params):
    bad = copy.deepcopy(params)
    bad["trian"] = {"lr": 0.1}
    del bad["train"]["epochs"]
    with pytest.raises(ParamsError) as raised:
        validate(bad)
    assert "unknown section 'trian'" in str(raised.value)
    assert "missing key 'train.epochs'" in str(raised.value)


def test_integer_accepted_where_a_float_is_expected(params):
    params["train"]["lr"] = 1
    assert validate(params)["train"].lr == 1.0


def test_unreadable_file(tmp_path):
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "utf16.yaml").write_text((ROOT / "params.yaml").read_text(), encoding="utf-16")
    with pytest.raises(ParamsError, match="not UTF-8 text; save it as UTF-8"):
        load_params(tmp_path / "utf16.yaml")
    (tmp_path / "listkey.yaml").write_text("train:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(ParamsError, match="not valid YAML: a key must be a plain name, not a list"):
        load_params(tmp_path / "listkey.yaml")


@pytest.mark.parametrize(
    "text, number",
    [
        ("lr: 1e-05", 1e-05),
        ("lr: 1e-5", 1e-5),
        ("lr: 1.0e-5", 1e-5),
        ("lr: 5E-3", 0.005),
        ("lr: 0.001", 0.001),
        ("lr: 1", 1.0),
    ],
)
def test_a_float_param_in_any_yaml_or_python_spelling(params, text, number):
    """DVC's -S train.lr=0.00001 writes `lr: 1e-05`, which YAML 1.1 (PyYAML) reads as text: still a number."""
    params["train"]["lr"] = yaml.safe_load(text)["lr"]
    assert validate(params)["train"].lr == number


@pytest.mark.parametrize("value", ["fast", "nan", "inf", "1e-5x", True])
def test_text_that_is_not_a_finite_number_is_still_an_error(params, value):
    params["train"]["lr"] = value
    with pytest.raises(ParamsError, match=r"bad value for 'train.lr'"):
        validate(params)


def test_the_validate_stage_imports_neither_torch_nor_numpy():
    # It runs before every experiment: importing torch or numpy would add their import time to each one.
    import subprocess
    import sys

    from tests.helpers import ROOT

    check = "import sys, stages.validate; print('torch' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False"
