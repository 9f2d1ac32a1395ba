"""The network people edit is the network that trains: edits of lenet1/model.py are either trained faithfully
by the exact engine or refused before training starts, never silently ignored.

Each mutation edits a copy of the project, then runs its train stage on small generated digits, as
`dvc exp run` would after the same edit.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from lenet1.data.split import write_splits
from lenet1.engine import ExactEngine, StockEngine, exact
from lenet1.engine.layout import Layout, LayoutError
from lenet1.engine.probe import EngineMismatch
from lenet1.model import ARCHITECTURES, Architecture, LeNet1, build_model
from tests.helpers import ROOT, write_params

REFUSAL = "train: error: deterministic mode refuses LeNet-1"
WAY_OUT = "set train.deterministic: false to train the edit with stock PyTorch kernels"
STEEPER_SQUASH = (
    "        return self.architecture.amplitude * torch.tanh(self.architecture.slope * x)",
    "        return self.architecture.amplitude * torch.tanh(2 * self.architecture.slope * x)",
)
SCALED_OUTPUT = (
    '        return {**hidden, "output": self.out(h4.flatten(1))}',
    '        return {**hidden, "output": 1.5 * self.out(h4.flatten(1))}',
)


def edited_project(tmp_path, edit: tuple[str, str] | None, deterministic: bool, variant: str = "full"):
    """A copy of the project with ``edit`` applied to lenet1/model.py, small prepared digits and params."""
    project = tmp_path / "project"
    for folder in ("lenet1", "stages"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        model_py = project / "lenet1" / "model.py"
        text = model_py.read_text()
        assert text.count(edit[0]) == 1, "the mutation no longer applies: update it to the model code"
        model_py.write_text(text.replace(*edit))
    rng = np.random.default_rng(0)
    splits = {
        name: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.int64))
        for name, n in (("train", 96), ("val", 32), ("test", 32))
    }
    write_splits(splits, project / "data" / "prepared")
    write_params(project, train={"variant": variant, "epochs": 1, "batch_size": 16, "deterministic": deterministic})
    return project


def train_stage(project) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stages.train"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, LENET1_THREADS="1", PYTHONPATH=str(project)),
    )


def trained_weights(project) -> list[torch.Tensor]:
    return list(torch.load(project / "models" / "lenet1.pt", weights_only=True)["state_dict"].values())


def assert_refused_and_nothing_written(result, project):
    assert result.returncode == 1, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(REFUSAL) and WAY_OUT in first, result.stderr
    assert not (project / "models").exists() and not (project / "metrics").exists()


def test_an_unedited_model_trains_in_both_modes(tmp_path):
    for deterministic in (True, False):
        project = edited_project(tmp_path / str(deterministic), None, deterministic)
        result = train_stage(project)
        assert result.returncode == 0, result.stderr
        assert (project / "models" / "lenet1.pt").exists()


def test_a_changed_squash_is_refused_in_deterministic_mode_and_trained_in_fast_mode(tmp_path):
    refused = edited_project(tmp_path / "exact", STEEPER_SQUASH, deterministic=True)
    assert_refused_and_nothing_written(train_stage(refused), refused)
    edited, plain = (
        edited_project(tmp_path / name, edit, deterministic=False)
        for name, edit in (("edited", STEEPER_SQUASH), ("plain", None))
    )
    assert train_stage(edited).returncode == 0 and train_stage(plain).returncode == 0
    assert not all(torch.equal(a, b) for a, b in zip(trained_weights(edited), trained_weights(plain)))


def test_an_extra_scale_on_the_output_layer_is_refused(tmp_path):
    project = edited_project(tmp_path, SCALED_OUTPUT, deterministic=True, variant="paper")
    result = train_stage(project)
    assert_refused_and_nothing_written(result, project)
    assert "outputs differ from float64 autograd" in result.stderr


def test_a_different_h3_table_for_paper_is_trained_faithfully(monkeypatch):
    table = ((0, 2),) * 6 + ((1, 3),) * 5 + ((0, 1, 2, 3),)  # not Table 1: other pairs, and 26 kernels, not 20
    monkeypatch.setitem(ARCHITECTURES, "paper", Architecture(table, True, 1.7159, 2 / 3))
    model, reference = build_model("paper", 3), build_model("paper", 3).double()
    assert model.h3.weight.shape == (26, 5, 5)
    generator = torch.Generator().manual_seed(0)
    inputs, labels = (
        torch.rand(48, 1, 28, 28, generator=generator) * 2 - 1,
        torch.randint(0, 10, (48,), generator=generator),
    )
    engine, stock = ExactEngine(model, "mse", inputs, labels), StockEngine(reference, "mse")
    for start in range(0, 48, 16):
        engine.train_step(inputs[start : start + 16], labels[start : start + 16], 0.2, 0.0)
        stock.train_step(inputs[start : start + 16].double(), labels[start : start + 16], 0.2, 0.0)
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(got.double(), want, rtol=0, atol=1e-5), name


def test_a_squash_described_as_data_is_trained_faithfully(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "full", Architecture(ARCHITECTURES["full"].h3_table, False, 1.0, 2.0))
    model = build_model("full", 1)
    generator = torch.Generator().manual_seed(1)
    inputs, labels = (
        torch.rand(16, 1, 28, 28, generator=generator) * 2 - 1,
        torch.randint(0, 10, (16,), generator=generator),
    )
    ExactEngine(model, "cross_entropy", inputs, labels)  # the probe passes: tanh(2x) is described, not coded


def test_weights_of_the_wrong_shape_are_refused_at_the_boundary():
    model = build_model("full", 1)
    model.out = torch.nn.Linear(192, 11)
    with pytest.raises(LayoutError, match=r"expects out.weight of shape \(10, 192\), this model's is \(11, 192\)"):
        Layout.of(model, "cross_entropy")


def test_the_c_side_checks_the_layout_too():
    model = build_model("full", 1)
    weights = Layout.of(model, "cross_entropy")
    weights.sizes[4] = 25 * 20  # W3 as if 20 kernels, with the header's 48
    with pytest.raises(LayoutError, match="the C engine refused the layout"):
        exact.forward(weights, torch.zeros(2, 1, 28, 28))
    weights = Layout.of(model, "cross_entropy")
    weights.header[1] = 2  # another engine version
    with pytest.raises(LayoutError, match="refused the layout"):
        exact.forward(weights, torch.zeros(2, 1, 28, 28))


def test_the_probe_catches_a_wrong_gradient(monkeypatch):
    model = build_model("paper", 2)
    generator = torch.Generator().manual_seed(2)
    inputs, labels = torch.rand(16, 1, 28, 28, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    real_train = exact.train

    def wrong_train(layout, *args):
        before = layout.weights[2].detach().clone()
        losses, logits = real_train(layout, *args)
        with torch.no_grad():  # h2.coefficient moved 1% further than its gradient says
            layout.weights[2].copy_(before + (layout.weights[2] - before) * 1.01)
        return losses, logits

    monkeypatch.setattr(exact, "train", wrong_train)
    with pytest.raises(EngineMismatch, match="its gradient of h2.coefficient differs"):
        ExactEngine(model, "mse", inputs, labels)


def test_every_variant_is_an_architecture_the_torch_module_and_the_engine_share():
    for variant in ARCHITECTURES:
        assert LeNet1(variant).architecture is ARCHITECTURES[variant]


def test_the_probe_accepts_a_saturated_network():
    """A run whose units all saturated (SDLM at a too large step did this) is still the definition: its
    gradients fall below the float32 rounding of its weights, which the probe must allow for."""
    model = build_model("paper", 1, "lecun98")
    with torch.no_grad():  # every output squashed to -1.7159, where its slope is 0 to float32 precision
        model.out.bias.fill_(-12.0)
    generator = torch.Generator().manual_seed(3)
    inputs, labels = (
        torch.rand(16, 1, 28, 28, generator=generator) * 2 - 1,
        torch.randint(0, 10, (16,), generator=generator),
    )
    ExactEngine(model, "mse", inputs, labels)  # raises EngineMismatch if refused
