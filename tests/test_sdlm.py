"""Stochastic diagonal Levenberg-Marquardt (train.optimizer: sdlm): the curvature's definition
(lenet1/curvature.py), the exact engine's curvature pass against it, the per-weight steps, the paper's
eta schedule, and the narrow build that trains at batch 1 with the bits of the wide one."""

import pytest
import torch

from lenet1 import curvature
from lenet1.engine import libraries, make_engine
from lenet1.model import build_model
from lenet1.train import fit, learning_rates
from tests.test_train import tiny_split, train_params

CASES = [("full", "cross_entropy"), ("full", "mse"), ("paper", "cross_entropy"), ("paper", "mse")]


def digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1, torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("variant, loss", CASES)
def test_the_engines_curvature_is_the_definitions(variant, loss):
    inputs, labels = digits(37)  # 37: four full groups of 8 and a part
    model = build_model(variant, 1, "lecun98")
    got = make_engine("exact", model, loss, inputs, labels).curvature(inputs, labels)
    want = curvature.diagonal(model, loss, inputs, labels)
    assert got.keys() == want.keys() == dict(model.named_parameters()).keys()
    for name, value in want.items():
        assert (value > 0).all(), name  # a sum of squares times positive slopes
        error = (got[name] - value).abs().max() / value.abs().max()
        assert error < 1e-5, (name, error.item())


def test_the_output_biases_curvature_is_cross_entropys_exact_hessian_diagonal():
    """For the output layer of cross-entropy the Gauss-Newton diagonal drops nothing: p_k (1 - p_k)."""
    inputs, labels = digits(5)
    model = build_model("paper", 2).double()
    h4 = model.states(inputs.double())["H4"].flatten(1).detach()

    def loss_of(bias: torch.Tensor) -> torch.Tensor:
        z = h4 @ model.out.weight.detach().T + bias
        return torch.nn.functional.cross_entropy(z, labels, reduction="sum") / len(labels)

    hessian = torch.autograd.functional.hessian(loss_of, model.out.bias.detach())
    got = curvature.diagonal(model.float(), "cross_entropy", inputs, labels)["out.bias"]
    assert torch.allclose(got, hessian.diagonal(), rtol=1e-5, atol=0)


def test_the_paper_loss_scale_and_mu_set_the_rates():
    h = {"w": torch.tensor([0.0, 0.98], dtype=torch.float64)}
    assert curvature.step_rates(h, 0.02, "mse")["w"].tolist() == pytest.approx([500.0, 10.0])
    assert curvature.step_rates(h, 0.02, "cross_entropy")["w"].tolist() == pytest.approx([50.0, 1.0])


def test_the_lecun98_schedule_is_the_papers_eta():
    want = [0.0005] * 2 + [0.0002] * 3 + [0.0001] * 3 + [0.00005] * 4 + [0.00001] * 3
    assert learning_rates("lecun98", 0.0005, 15, 1, 1.0) == pytest.approx(want, rel=1e-12)


def sdlm_steps(variant: str, loss: str, batch_size: int, steps: int, engine: str = "exact") -> torch.nn.Module:
    inputs, labels = digits(batch_size * steps + 64, 1)
    model = build_model(variant, 3, "lecun98")
    if engine == "stock":
        model = model.double()
        inputs = inputs.double()
    chosen = make_engine(engine, model, loss, inputs.float(), labels)
    rates = curvature.step_rates(chosen.curvature(inputs[:64], labels[:64]), 0.02, loss)
    for start in range(64, 64 + batch_size * steps, batch_size):
        chosen.train_step(inputs[start : start + batch_size], labels[start : start + batch_size], 0.0005, 0.0, rates)
    return model


@pytest.mark.parametrize("variant, loss", [("paper", "mse"), ("full", "cross_entropy")])
def test_sdlm_in_the_engine_follows_float64_stock_torch(variant, loss):
    exact_model, stock_model = sdlm_steps(variant, loss, 1, 40), sdlm_steps(variant, loss, 1, 40, "stock")
    start = build_model(variant, 3, "lecun98")
    for (name, got), want, before in zip(exact_model.named_parameters(), stock_model.parameters(), start.parameters()):
        moved = (want - before.double()).abs().max()
        assert moved > 0, name
        assert (got.double() - want).abs().max() <= 1e-3 * moved, name


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("optimizer", ["sgd", "sdlm"])
def test_the_narrow_build_gives_the_wide_builds_bits(monkeypatch, batch_size, optimizer):
    def weights() -> list[torch.Tensor]:
        inputs, labels = digits(60, 4)
        model = build_model("paper", 5, "lecun98")
        chosen = make_engine("exact", model, "mse", inputs, labels)
        rates = curvature.step_rates(chosen.curvature(inputs, labels), 0.02, "mse") if optimizer == "sdlm" else None
        chosen.train_epoch(inputs, labels, torch.arange(60).flip(0), batch_size, 0.001, 0.0, rates)
        return [p.detach().clone() for p in model.parameters()]

    narrow = weights()
    monkeypatch.setattr(libraries, "NARROW_BELOW", 1)  # the wide build at every batch size
    wide = weights()
    assert libraries.library_for(batch_size) is libraries.load()
    assert all(torch.equal(a, b) for a, b in zip(narrow, wide))


def test_a_sdlm_run_records_its_effective_rates():
    params = train_params(
        variant="paper",
        loss="mse",
        optimizer="sdlm",
        init="lecun98",
        schedule="lecun98",
        lr=0.0005,
        batch_size=1,
        epochs=2,
    )
    result = fit(params, tiny_split(64, 0), tiny_split(32, 1), log=lambda line: None)
    first = result.history[0]
    assert 0 < first["rate_min"] < first["rate_max"] <= 0.0005 / 0.02
    plain = fit(train_params(), tiny_split(64, 0), tiny_split(32, 1), log=lambda line: None)
    assert "rate_min" not in plain.history[0]
