import subprocess
import sys

import pytest
import torch
import yaml

import lenet1.engine.stock

from lenet1.engine import exact, make_engine
from lenet1.engine.stock import SGD
from lenet1.loss import make_loss
from lenet1.model import build_model
from lenet1.config.learning import TrainParams
from lenet1.train import Split, TrainingDiverged, fit, learning_rates
from tests.helpers import ROOT


def train_params(**changes):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    params.update(epochs=2, batch_size=8, lr=0.05, schedule="constant")
    params.update(changes)
    return TrainParams(**params)


def tiny_split(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator))


@pytest.mark.parametrize("variant", ["paper", "full"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("engine", ["exact", "stock"])
def test_training_steps_lower_the_loss_on_a_small_batch(variant, loss, engine):
    model = build_model(variant, 0)
    loss_fn = make_loss(loss, model)
    data = tiny_split(16)
    chosen = make_engine(engine, model, loss, data.inputs, data.labels)
    before = loss_fn(model(data.inputs), data.labels).item()
    for _ in range(10):
        chosen.train_step(data.inputs, data.labels, 0.05, 0.0)
    assert loss_fn(model(data.inputs), data.labels).item() < before


def test_sgd_is_p_minus_lr_times_gradient_plus_weight_decay():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    param.grad = torch.tensor([0.5, 0.25])
    SGD([("weight", param)], lr=0.1, weight_decay=0.01).step()
    expected = torch.tensor([1.0, -2.0]) - (torch.tensor([0.5, 0.25]) + torch.tensor([1.0, -2.0]) * 0.01) * 0.1
    assert torch.equal(param.detach(), expected)


def test_diverging_training_stops_with_an_error_naming_the_lr():
    train, val = tiny_split(64, 0), tiny_split(32, 1)
    with pytest.raises(TrainingDiverged, match=r"the loss is nan; lower train.lr \(now 1e\+38\)"):
        fit(train_params(lr=1e38, deterministic=False), train, val, log=lambda line: None)


@pytest.mark.parametrize(
    "optimizer, way_out",
    [
        ("sgd", r"lower train.lr \(now 100.0\)$"),
        ("sdlm", r"lower train.lr \(now 100.0\) or raise train.mu \(now 0.0001\)"),
    ],
)
def test_a_finite_but_absurd_loss_is_divergence_not_a_result(optimizer, way_out):
    train, val = tiny_split(64, 0), tiny_split(32, 1)
    with pytest.raises(
        TrainingDiverged, match=r"epoch 1: the loss is [\d.e+]+, more than 100 times a guess's \(2.3\); " + way_out
    ):
        fit(train_params(lr=100.0, mu=0.0001, optimizer=optimizer, batch_size=1), train, val, log=lambda line: None)


def test_sdlm_above_batch_1_says_what_it_computes():
    train, val = tiny_split(64, 0), tiny_split(32, 1)
    lines: list[str] = []
    fit(train_params(optimizer="sdlm", batch_size=16, epochs=1, lr=0.001), train, val, log=lines.append)
    assert lines[0].startswith("train: note: SDLM is defined per pattern (batch 1); at batch 16")
    lines.clear()
    fit(train_params(optimizer="sdlm", batch_size=1, epochs=1, lr=0.001), train, val, log=lines.append)
    assert not lines[0].startswith("train: note")


def test_same_seeds_give_identical_weights_and_other_seeds_differ():
    train, val = tiny_split(64, 0), tiny_split(32, 1)
    first = fit(train_params(), train, val, log=lambda line: None)
    second = fit(train_params(), train, val, log=lambda line: None)
    third = fit(train_params(seed=5), train, val, log=lambda line: None)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert first.history == second.history
    assert not all(
        torch.equal(a, c) for a, c in zip(first.model.state_dict().values(), third.model.state_dict().values())
    )


def test_fit_keeps_the_best_validation_epoch():
    train, val = tiny_split(64, 0), tiny_split(32, 1)
    result = fit(train_params(epochs=4, lr=0.5), train, val, log=lambda line: None)
    accuracies = [row["val_accuracy"] for row in result.history]
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    outputs, _ = make_engine("exact", result.model, "cross_entropy", val.inputs, val.labels).evaluate(
        val.inputs, val.labels, 16
    )
    assert (outputs.argmax(1) == val.labels).float().mean().item() == max(accuracies)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]


@pytest.mark.parametrize("engine", ["exact", "stock"])
@pytest.mark.parametrize("variant, loss", [("full", "cross_entropy"), ("paper", "mse")])
def test_train_epoch_reports_loss_and_accuracy_of_what_it_saw(engine, variant, loss):
    model = build_model(variant, 0)
    data = tiny_split(40)
    chosen = make_engine(engine, model, loss, data.inputs, data.labels)
    seen = chosen.train_epoch(
        data.inputs, data.labels, torch.randperm(40, generator=torch.Generator().manual_seed(0)), 40, 0.0, 0.0
    )
    outputs = model(data.inputs)
    expected_loss = make_loss(loss, model)(outputs, data.labels).item()
    expected_accuracy = (outputs.argmax(1) == data.labels).float().mean().item()
    assert seen[0] == pytest.approx(expected_loss, rel=1e-5) and seen[1] == pytest.approx(expected_accuracy)


@pytest.mark.parametrize(
    "schedule, expected",
    [("constant", [1.0, 1.0, 1.0, 1.0]), ("step", [1.0, 1.0, 0.5, 0.5]), ("cosine", [1.0, 0.8535534, 0.5, 0.1464466])],
)
def test_schedules(schedule, expected):
    assert learning_rates(schedule, 1.0, epochs=4, step_size=2, gamma=0.5) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("epochs", [1, 2, 7, 8, 12, 30])
@pytest.mark.parametrize("lr", [0.5, 0.3, 0.07])
def test_learning_rates_are_torchs_schedulers_to_the_last_bit(epochs, lr):
    def torch_rates(make):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        scheduler, rates = make(optimizer), []
        for _ in range(epochs):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return rates

    schedulers = torch.optim.lr_scheduler
    assert learning_rates("cosine", lr, epochs, 5, 0.5) == torch_rates(
        lambda o: schedulers.CosineAnnealingLR(o, T_max=epochs)
    )
    assert learning_rates("step", lr, epochs, 3, 0.7) == torch_rates(
        lambda o: schedulers.StepLR(o, step_size=3, gamma=0.7)
    )
    assert learning_rates("constant", lr, epochs, 5, 0.5) == torch_rates(
        lambda o: schedulers.ConstantLR(o, factor=1.0, total_iters=0)
    )


@pytest.mark.parametrize("variant", ["full", "paper"])
@pytest.mark.parametrize("deterministic", [True, False])
def test_each_epoch_steps_with_its_scheduled_lr(monkeypatch, variant, deterministic):
    seen, exact_train, stock_step = [], exact.train, lenet1.engine.stock.StockEngine.train_step

    def record_exact(layout, inputs, labels, order, batch_size, lr, weight_decay, rates=None):
        if order is not None:  # not the probe's step
            seen.extend([lr] * -(-len(order) // batch_size))  # one lr per step of the call
        return exact_train(layout, inputs, labels, order, batch_size, lr, weight_decay, rates)

    monkeypatch.setattr(exact, "train", record_exact)
    monkeypatch.setattr(
        lenet1.engine.stock.StockEngine,
        "train_step",
        lambda self, *args: (seen.append(args[2]), stock_step(self, *args))[1],
    )
    result = fit(
        train_params(
            variant=variant,
            epochs=3,
            batch_size=32,
            schedule="step",
            step_size=1,
            gamma=0.5,
            deterministic=deterministic,
        ),
        tiny_split(64, 0),
        tiny_split(32, 1),
        log=lambda line: None,
    )
    assert seen == [0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]  # two steps of 32 digits per epoch
    assert [row["lr"] for row in result.history] == [0.05, 0.025, 0.0125]


def test_training_does_not_import_torch_dynamo():
    script = (
        "import sys; from tests.test_train import tiny_split, train_params; "
        "from lenet1.train import fit; "
        "fit(train_params(), tiny_split(64, 0), tiny_split(32, 1), log=lambda line: None); "
        "print('torch._dynamo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def test_mse_targets_are_plus_minus_one():
    model = build_model("paper", 0)
    # outputs whose squashed value is exactly +1 for the label and -1 elsewhere give zero loss
    target = torch.full((1, 10), -1.0)
    target[0, 3] = 1.0
    outputs = torch.atanh(target / 1.7159) * 1.5
    assert make_loss("mse", model)(outputs, torch.tensor([3])).item() == pytest.approx(0.0, abs=1e-10)


def test_unknown_loss_and_schedule():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_loss("hinge", build_model("full", 0))
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        learning_rates("linear", 1.0, 2, 1, 0.5)
