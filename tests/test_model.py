import pytest
import torch

from lenet1.pipeline.checkpoint import load_model, save_model
from lenet1.engine.stock import StockEngine
from lenet1.model import FULL_PARAMETERS, PAPER_PARAMETERS, LeNet1, build_model, count_parameters
from lenet1.tools.structure import connections, units

# Table 1, p. 400 of LeCun et al. (NIPS 2, 1990), maps numbered from 1: H3 map -> the H2 maps it reads.
PAPER_TABLE_1 = {
    1: {1},
    2: {1, 2},
    3: {1, 2},
    4: {2},
    5: {1, 2},
    6: {1, 2},
    7: {3},
    8: {3, 4},
    9: {3, 4},
    10: {4},
    11: {3, 4},
    12: {3, 4},
}


def measured_h3_inputs(model: LeNet1) -> dict[int, set[int]]:
    """Which H2 maps each H3 map depends on, from gradients of the built layer (not its table)."""
    h2 = torch.randn(1, 4, 12, 12, requires_grad=True)
    h3 = model.h3(h2)
    found = {}
    for out in range(h3.shape[1]):
        (grad,) = torch.autograd.grad(h3[0, out].sum(), h2, retain_graph=True)
        found[out + 1] = {inp + 1 for inp in range(4) if grad[0, inp].abs().sum() > 0}
    return found


def test_paper_h3_connections_are_table_1():
    assert measured_h3_inputs(build_model("paper", 0)) == PAPER_TABLE_1


def test_the_measurement_sees_a_different_table():
    model = build_model("full", 0)
    assert measured_h3_inputs(model) == {out: {1, 2, 3, 4} for out in range(1, 13)}


def test_parameter_counts_match_the_paper_and_the_full_reading():
    assert count_parameters(build_model("paper", 0)) == PAPER_PARAMETERS == 2578
    assert count_parameters(build_model("full", 0)) == FULL_PARAMETERS == 3246


def test_paper_totals_from_the_structure():
    # p. 402: "4,635 units, 98,442 connections, and 2,578 independent parameters".
    model = build_model("paper", 0)
    assert connections(model) == {"h1": 59904, "h2": 2880, "h3": 32768, "h4": 960, "out": 1930}
    assert sum(connections(model).values()) == 98442
    assert units(model) == 4635


@pytest.mark.parametrize("variant", ["paper", "full"])
def test_layer_shapes(variant):
    model = build_model(variant, 0)
    x = torch.zeros(2, 1, 28, 28)
    h1 = model.h1(x)
    assert h1.shape == (2, 4, 24, 24)
    h2 = model.h2(h1)
    assert h2.shape == (2, 4, 12, 12)
    h3 = model.h3(h2)
    assert h3.shape == (2, 12, 8, 8)
    assert model.h4(h3).shape == (2, 12, 4, 4)
    assert model(x).shape == (2, 10)


def test_same_seed_same_initial_weights_and_different_seed_differs():
    a, b, c = build_model("full", 3), build_model("full", 3), build_model("full", 4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown LeNet-1 variant 'lenet5'"):
        LeNet1("lenet5")


def test_no_modern_layers():
    for variant in ("paper", "full"):
        kinds = {type(m).__name__ for m in build_model(variant, 0).modules()}
        assert not kinds & {"ReLU", "BatchNorm2d", "Dropout", "MaxPool2d"}


def test_saved_model_loads_back(tmp_path):
    model = build_model("paper", 5)
    save_model(tmp_path / "m.pt", model, {"variant": "paper", "loss": "mse"}, 3, StockEngine(model, "mse"))
    loaded, params, engine = load_model(tmp_path / "m.pt")
    assert params == {"variant": "paper", "loss": "mse", "input": "mnist28"} and engine == "stock"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    plain = (tmp_path / "m.pt").read_bytes()  # MNIST's own digits: not recorded, so a default model keeps its bytes
    save_model(tmp_path / "m.pt", model, {"variant": "paper", "loss": "mse"}, 3, StockEngine(model, "mse"), "paper16")
    assert load_model(tmp_path / "m.pt")[1]["input"] == "paper16" and (tmp_path / "m.pt").read_bytes() != plain


FULL_HEADER = {
    "format": 3,
    "engine": "exact",
    "engine_version": 3,
    "architecture": {"h3_table": [[0, 1, 2, 3]] * 12, "trainable_subsampling": False, "amplitude": 1.0, "slope": 1.0},
}
FULL_PARAMS = {"variant": "full", "loss": "cross_entropy"}
NAN_WEIGHTS = {**build_model("full", 0).state_dict(), "out.bias": torch.full((10,), float("nan"))}


@pytest.mark.parametrize(
    "content, message",
    [
        ({"state_dict": {}, "params": {"variant": "paper"}}, "model format 1, this code reads format 3"),
        ([1, 2, 3], "not a model file written by the train stage"),
        ({**FULL_HEADER, "state_dict": {}, "params": {"variant": "lenet5"}}, "unknown variant 'lenet5'"),
        ({**FULL_HEADER, "state_dict": {}, "params": {"variant": "full"}}, "unknown loss None"),
        ({**FULL_HEADER, "state_dict": {}, "params": {"variant": "full", "loss": "hinge"}}, "unknown loss 'hinge'"),
        ({**FULL_HEADER, "engine": "gpu", "state_dict": {}, "params": FULL_PARAMS}, "unknown engine 'gpu'"),
        (
            {**FULL_HEADER, "architecture": {}, "state_dict": {}, "params": FULL_PARAMS},
            "made by another LeNet-1 'full'",
        ),
        (
            {
                **FULL_HEADER,
                "state_dict": {**build_model("full", 0).state_dict(), "h1.weight": torch.zeros(3)},
                "params": FULL_PARAMS,
            },
            r"do not fit LeNet-1 'full': h1.weight is \(3,\), expected \(4, 1, 5, 5\)",
        ),
        ({**FULL_HEADER, "state_dict": NAN_WEIGHTS, "params": FULL_PARAMS}, "out.bias holds NaN or infinite weights"),
    ],
)
def test_foreign_or_old_model_files_are_refused_with_the_fix(tmp_path, content, message):
    torch.save(content, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=message) as err:
        load_model(tmp_path / "m.pt")
    assert "dvc repro -f -s train" in str(err.value)


@pytest.mark.parametrize("variant", ["full", "paper"])
def test_lecun98_init_is_uniform_in_2_4_over_each_units_fan_in(variant):
    from lenet1.architecture import ARCHITECTURES

    model, default = build_model(variant, 3, "lecun98"), build_model(variant, 3)
    fan_ins = {"h1": [25] * 4, "h3": [25 * len(inputs) for inputs in ARCHITECTURES[variant].h3_table]}
    for name, fans in fan_ins.items():
        layer = getattr(model, name)
        for out, fan_in in enumerate(fans):
            kernels = [k for k, o in enumerate(layer.kernel_map) if o == out]
            weights = layer.weight.view(len(layer.kernel_map), -1)[kernels] if not layer.dense else layer.weight[out]
            assert weights.abs().max() <= 2.4 / fan_in and abs(layer.bias[out]) <= 2.4 / fan_in
        assert layer.weight.abs().max() > 0.8 * 2.4 / max(fans)  # the full range is used, not a smaller one
    assert model.out.weight.abs().max() <= 2.4 / 192 < default.out.weight.abs().max()
    # The same random draws, scaled: the seed alone decides the pattern.
    ratio = model.out.weight / default.out.weight
    assert torch.allclose(ratio, torch.full_like(ratio, (2.4 / 192) * 192**0.5))
