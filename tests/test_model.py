import pytest
import torch

from lenet1.model import FULL_PARAMETERS, H3_INPUTS, PAPER_PARAMETERS, LeNet1, build_model, count_parameters


def test_parameter_counts_match_the_paper_and_the_full_reading():
    assert count_parameters(build_model("paper", 0)) == PAPER_PARAMETERS == 2578
    assert count_parameters(build_model("full", 0)) == FULL_PARAMETERS == 3246


def test_paper_h3_table_has_twenty_connections_and_every_h2_map_feeds_five():
    assert len(H3_INPUTS) == 12
    assert sum(len(inputs) for inputs in H3_INPUTS) == 20
    assert all(sum(m in inputs for inputs in H3_INPUTS) == 5 for m in range(4))


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


def test_paper_h3_ignores_unconnected_maps():
    layer = build_model("paper", 0).h3
    x = torch.randn(1, 4, 12, 12)
    changed = x.clone()
    changed[:, 3] += 1.0  # H2 map 3 feeds only the H3 maps whose table entry contains 3
    delta = (layer(changed) - layer(x)).abs().amax(dim=(0, 2, 3))
    for out, inputs in enumerate(H3_INPUTS):
        assert (delta[out] > 0) == (3 in inputs), out


def test_same_seed_same_initial_weights_and_different_seed_differs():
    a, b, c = build_model("full", 3), build_model("full", 3), build_model("full", 4)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown LeNet-1 variant 'lenet5'"):
        LeNet1("lenet5")


def test_no_modern_layers():
    for variant in ("paper", "full"):
        kinds = {type(m).__name__ for m in build_model(variant, 0).modules()}
        assert not kinds & {"ReLU", "BatchNorm2d", "Dropout", "MaxPool2d"}
