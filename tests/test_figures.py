"""The plot stage's figures: matplotlib PNGs with the same bytes on every run and machine, drawn without torch,
and a missing or damaged input is one clear line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.draw_figures import draw, made_up_data
from tests.helpers import ROOT

ARM64 = Path(os.environ.get("ARM64_ENV", Path.home() / "emu-arm64"))
FIGURE_WHEELS = ARM64 / "site-figures"  # .ci/run installs the pinned matplotlib's aarch64 wheels there


def png_text_chunks(data: bytes) -> list[bytes]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file, read from its chunk structure."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    return chunks


def test_figures_are_byte_stable_and_carry_no_version_or_date(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert draw(tmp_path / "a") == draw(tmp_path / "b")
    for png in (tmp_path / "a").glob("*.png"):
        assert png_text_chunks(png.read_bytes()) == [], png.name


def test_misclassified_digits_are_drawn_in_their_grey_levels(tmp_path):
    from PIL import Image

    from lenet1 import figures

    digit = np.zeros((28, 28), dtype=int)
    digit[:, 14:] = 255  # right half ink
    figures.misclassified([{"label": 3, "predicted": 8, "image": digit.tolist()}], tmp_path / "m.png")
    pixels = np.asarray(Image.open(tmp_path / "m.png").convert("L"))
    assert pixels.min() == 0 and (pixels == 255).mean() > 0.5  # black ink on white paper
    figures.misclassified([], tmp_path / "none.png")  # no error: a title alone
    assert Image.open(tmp_path / "none.png").height < 100


def plot_stage(cwd: Path) -> subprocess.CompletedProcess:
    check = "import runpy, sys; runpy.run_module('stages.plot', run_name='__main__')"
    code = f"import sys, atexit; atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr)); {check}"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def write_inputs(folder: Path) -> None:
    data = made_up_data()
    (folder / "plots").mkdir()
    (folder / "data" / "figures").mkdir(parents=True)
    (folder / "plots" / "train_history.csv").write_text(  # no validation split; SDLM's rates, some as 8e-06
        "epoch,train_loss,train_accuracy,rate_min\n"
        + "".join(f"{r['epoch']},{r['train_loss']},{r['train_accuracy']},8e-06\n" for r in data["history"])
    )
    (folder / "plots" / "test_predictions.csv").write_text(
        "actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in zip(data["actual"], data["predicted"]))
    )
    (folder / "data" / "figures" / "unit_states.json").write_text(json.dumps(data["states"]))
    (folder / "data" / "figures" / "misclassified.json").write_text(json.dumps(data["wrong"]))


def test_the_plot_stage_draws_four_pngs_without_torch(tmp_path):
    write_inputs(tmp_path)
    result = plot_stage(tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "False", result.stderr
    names = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert names == ["confusion.png", "feature_maps.png", "learning_curves.png", "misclassified.png"]


@pytest.mark.parametrize("damage", ["missing", "not json"])
def test_a_missing_or_damaged_input_is_one_line_and_nothing_is_drawn(tmp_path, damage):
    write_inputs(tmp_path)
    states = tmp_path / "data" / "figures" / "unit_states.json"
    states.unlink() if damage == "missing" else states.write_text("{half")
    result = plot_stage(tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("plot: error: data/figures/unit_states.json is") and "dvc repro" in lines[0]
    assert not (tmp_path / "plots" / "feature_maps.png").exists()


@pytest.mark.slow
def test_the_same_png_bytes_on_emulated_arm64(tmp_path):
    """matplotlib's aarch64 build (other compilers, fused multiply-adds) draws the same pixels and bytes."""
    if not (ARM64 / "python").exists() or not (FIGURE_WHEELS / "matplotlib").exists():
        message = f"the arm64 environment {ARM64} with matplotlib in {FIGURE_WHEELS} (.ci/run installs both)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} is missing")
        pytest.skip(f"{message} is missing")
    script = str(ROOT / "tests" / "draw_figures.py")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{FIGURE_WHEELS}", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    arm64 = subprocess.run(
        [str(ARM64 / "python"), script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert arm64.returncode == 0, arm64.stderr
    (tmp_path / "native").mkdir()
    assert json.loads(arm64.stdout) == draw(tmp_path / "native")
