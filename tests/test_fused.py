"""The fused C step computes LeNet-1 'full' with cross-entropy, and its bits do not depend on threads or SIMD."""
import math
import platform

import pytest
import torch
from torch.nn import functional as F

from lenet1 import fused
from lenet1.errors import InputError
from lenet1.model import build_model
from lenet1.train import SGD, make_loss, predict, train_step


def batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 1, 28, 28, generator=generator) * 4 - 2, torch.randint(0, 10, (size,), generator=generator)


def reference_step(model, inputs, labels, lr, weight_decay):
    """The same step in float64 with autograd and stock kernels: the outputs, loss and new weights."""
    reference = build_model("full", 1, exact=False).double()
    reference.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    outputs = reference(inputs.double())
    loss = F.cross_entropy(outputs, labels)
    loss.backward()
    new = {name: p - lr * (p.grad + weight_decay * p) for name, p in reference.named_parameters()}
    return outputs.detach(), loss.item(), {name: value.detach() for name, value in new.items()}


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_step_matches_float64_autograd(weight_decay):
    model = build_model("full", 3)
    inputs, labels = batch(21)  # not a multiple of the 8 images per group
    outputs, loss, new = reference_step(model, inputs, labels, 0.5, weight_decay)
    fused_loss, fused_outputs = fused.train_step(model, inputs, labels, 0.5, weight_decay)
    assert torch.allclose(fused_outputs.double(), outputs, rtol=0, atol=1e-5)
    assert fused_loss.item() == pytest.approx(loss, rel=1e-6)
    for name, param in model.named_parameters():
        assert torch.allclose(param.double(), new[name], rtol=0, atol=1e-6), name


def test_forward_matches_float64_and_the_exact_torch_model():
    model = build_model("full", 4)
    inputs, _ = batch(13, seed=1)
    reference = build_model("full", 4, exact=False).double()
    assert torch.allclose(fused.forward(model, inputs).double(), reference(inputs.double()), rtol=0, atol=1e-5)
    assert torch.allclose(fused.forward(model, inputs), model(inputs), rtol=0, atol=1e-5)  # numerics.py's exact path


def weights_after_steps(threads: int, steps: int = 5) -> list[torch.Tensor]:
    torch.set_num_threads(threads)
    model = build_model("full", 1)
    for step in range(steps):
        inputs, labels = batch(17 + 8 * step, seed=step)
        fused.train_step(model, inputs, labels, 0.3, 0.001)
    return [p.detach().clone() for p in model.parameters()]


def test_same_bits_for_any_thread_count():
    before = torch.get_num_threads()
    try:
        runs = [weights_after_steps(threads) for threads in (1, 2, 3, 5)]
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


def test_an_image_gets_the_same_outputs_in_any_batch():
    model = build_model("full", 2)
    inputs, _ = batch(19, seed=2)
    whole = fused.forward(model, inputs)
    assert torch.equal(torch.cat([fused.forward(model, inputs[i : i + 1]) for i in range(19)]), whole)
    assert torch.equal(fused.forward(model, inputs.flip(0)).flip(0), whole)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 builds one copy per instruction set")
def test_baseline_sse2_code_gives_the_bits_of_this_cpus_copy(monkeypatch):
    model, baseline = build_model("full", 5), build_model("full", 5)
    inputs, labels = batch(24, seed=3)
    fused.train_step(model, inputs, labels, 0.5, 0.0)
    monkeypatch.setattr(fused, "EXTRA_FLAGS", ("-DLENET1_BASELINE_ONLY",))
    assert fused.library() is not fused.build(())
    fused.train_step(baseline, inputs, labels, 0.5, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), baseline.parameters()))


def test_train_step_and_predict_use_the_fused_code_only_where_it_applies(monkeypatch):
    calls = []
    monkeypatch.setattr(fused, "train_step", lambda *args: calls.append("step") or (torch.tensor(0.0), torch.zeros(4, 10)))
    monkeypatch.setattr(fused, "forward", lambda model, inputs: calls.append("forward") or torch.zeros(len(inputs), 10))
    inputs, labels = batch(4)
    full = build_model("full", 1)
    train_step(full, inputs, labels, SGD(full.parameters(), 0.1), make_loss("cross_entropy", full))
    predict(full, inputs, 2)
    assert calls == ["step", "forward", "forward"]
    calls.clear()
    for model, loss in [(build_model("paper", 1), "cross_entropy"), (build_model("full", 1, exact=False), "cross_entropy"),
                        (build_model("full", 1), "mse")]:
        train_step(model, inputs, labels, SGD(model.parameters(), 0.1), make_loss(loss, model))
    assert calls == []  # the MSE model's validation outputs would still be fused: they do not depend on the loss
    torch_sgd = torch.optim.SGD(full.parameters(), lr=0.1)
    train_step(full, inputs, labels, torch_sgd, make_loss("cross_entropy", full))
    assert calls == []


def test_no_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fused.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs a C compiler.*apt install gcc"):
        fused.compiler()


def test_a_label_outside_0_to_9_fails_and_leaves_the_weights():
    model = build_model("full", 1)
    before = [p.detach().clone() for p in model.parameters()]
    inputs, labels = batch(9)
    labels[8] = 10
    with pytest.raises(InputError, match="label outside 0-9"):
        fused.train_step(model, inputs, labels, 0.5, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.skipif(" fma" not in (open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""),
                    reason="needs an x86-64 CPU with FMA")
def test_fused_multiply_adds_would_change_the_bits(monkeypatch):
    """The control for the test above: contracting a * b + c into one rounding does change the weights, so
    -ffp-contract=off is what keeps them, and comparing two builds can catch it."""
    model, contracted = build_model("full", 5), build_model("full", 5)
    inputs, labels = batch(24, seed=3)
    fused.train_step(model, inputs, labels, 0.5, 0.0)
    monkeypatch.setattr(fused, "EXTRA_FLAGS", ("-DLENET1_BASELINE_ONLY", "-mfma", "-ffp-contract=fast"))
    fused.train_step(contracted, inputs, labels, 0.5, 0.0)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), contracted.parameters()))


def test_more_threads_than_the_c_code_starts_give_the_same_outputs():
    model = build_model("full", 6)
    inputs, _ = batch(1000, seed=4)  # 125 groups of 8: more than the 64 threads the C code starts at most
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(100)
        many = fused.forward(model, inputs)
        torch.set_num_threads(1)
        one = fused.forward(model, inputs)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(many, one)


def test_a_caller_flushing_subnormals_to_zero_changes_nothing():
    """torch.set_flush_denormal(True) sets the CPU to flush tiny floats to 0; the C code sets it back while it runs."""
    def step() -> list[torch.Tensor]:
        model = build_model("full", 7)
        with torch.no_grad():  # output 0 ahead by 95: the others' probabilities e^-95, their gradients below 1e-38
            model.out.weight.mul_(0.01)
            model.out.bias.copy_(torch.tensor([95.0] + [0.0] * 9))
        inputs, labels = batch(16, seed=5)
        fused.train_step(model, inputs, labels, 0.5, 0.0)
        return [p.detach().clone() for p in model.parameters()]

    plain = step()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        flushed = step()
    finally:
        torch.set_flush_denormal(False)
    assert all(torch.equal(a, b) for a, b in zip(plain, flushed))


def test_a_nan_weight_gives_a_nan_loss_so_training_stops():
    model = build_model("full", 1)
    with torch.no_grad():
        model.h1.weight[0, 0, 0, 0] = float("nan")  # reaches the loss only through H1's tanh and everything after
    inputs, labels = batch(8)
    loss, _ = fused.train_step(model, inputs, labels, 0.1, 0.0)
    assert math.isnan(loss.item())


def test_labels_must_match_the_images():
    model = build_model("full", 1)
    inputs, labels = batch(8)
    with pytest.raises(ValueError, match="expected 8 labels"):
        fused.train_step(model, inputs, labels[:7], 0.1, 0.0)


def test_an_epoch_in_one_call_equals_its_steps_one_by_one():
    inputs, labels = batch(70, seed=6)
    order = torch.randperm(70, generator=torch.Generator().manual_seed(1))[:61]  # 3 batches of 24, the last 13
    whole, stepped = build_model("full", 8), build_model("full", 8)
    loss, accuracy = fused.train_epoch(whole, inputs, labels, order, 24, 0.3, 0.001)
    total, correct = torch.zeros((), dtype=torch.float64), 0
    for start in range(0, 61, 24):
        chosen = order[start : start + 24]
        step_loss, outputs = fused.train_step(stepped, inputs[chosen], labels[chosen], 0.3, 0.001)
        total += step_loss * len(chosen)  # as lenet1.train.train_epoch sums
        correct += int((outputs.argmax(1) == labels[chosen]).sum())
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), stepped.parameters()))
    assert (loss, accuracy) == (total.item() / 61, correct / 61)
