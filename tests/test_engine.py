"""The exact engine computes LeNet-1 as lenet1/model.py defines it (both variants, both losses), and its bits
do not depend on threads, SIMD width or the caller's floating-point mode."""

import math
import platform

import pytest
import torch

from lenet1.engine import ExactEngine, build, libraries
from lenet1.engine.probe import reference_step
from lenet1.errors import InputError
from lenet1.model import build_model

CASES = [("full", "cross_entropy"), ("full", "mse"), ("paper", "cross_entropy"), ("paper", "mse")]


def batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 1, 28, 28, generator=generator) * 4 - 2, torch.randint(0, 10, (size,), generator=generator)


def engine(model, loss="cross_entropy"):
    inputs, labels = batch(16, seed=9)
    return ExactEngine(model, loss, inputs, labels)


@pytest.mark.parametrize("variant, loss", CASES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_step_matches_float64_autograd(variant, loss, weight_decay):
    model = build_model(variant, 3)
    inputs, labels = batch(21)  # not a multiple of the 8 images per group
    before = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    outputs, want_loss, new = reference_step(model, loss, inputs, labels, 0.5)
    got_loss, got_outputs = engine(model, loss).train_step(inputs, labels, 0.5, weight_decay)
    assert torch.allclose(got_outputs.double(), outputs, rtol=0, atol=1e-5)
    assert got_loss.item() == pytest.approx(want_loss, rel=1e-6)
    for name, param in model.named_parameters():
        want = new[name] - 0.5 * weight_decay * before[name]
        assert torch.allclose(param.double(), want, rtol=0, atol=1e-6), name


@pytest.mark.parametrize("variant, loss", [("full", "cross_entropy"), ("paper", "mse")])
def test_the_avx512_build_gives_the_8_lane_builds_bits(monkeypatch, variant, loss):
    """Forced on any CPU (without AVX-512, GCC computes each 16-lane vector in halves)."""
    size = libraries.AVX512_LANES * torch.get_num_threads() + 5  # a group of 16 per thread, and one of 5
    inputs, labels = batch(3 * size, seed=4)

    def run(wide: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        monkeypatch.setattr(libraries, "avx512", lambda: wide)
        assert (libraries.library_for(size) is libraries.load(libraries.AVX512_FLAGS)) == wide
        model = build_model(variant, 5)
        chosen = engine(model, loss)
        chosen.train_epoch(inputs, labels, torch.arange(3 * size).flip(0), size, 0.1, 0.0)
        return [p.detach().clone() for p in model.parameters()], chosen.predict(inputs, len(inputs))

    (wide_weights, wide_outputs), (weights, outputs) = run(True), run(False)
    assert all(torch.equal(a, b) for a, b in zip(wide_weights, weights))
    assert torch.equal(wide_outputs, outputs)


@pytest.mark.parametrize("size", [21, 3])  # the 8-lane build's vector update and the narrow build's
def test_a_step_with_per_weight_rates_matches_float64_autograd(size):
    model = build_model("full", 5)
    inputs, labels = batch(size, seed=2)
    generator = torch.Generator().manual_seed(7)
    rates = {name: torch.rand(p.shape, generator=generator) * 1.5 + 0.5 for name, p in model.named_parameters()}
    before = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    _, _, new = reference_step(model, "cross_entropy", inputs, labels, 0.5)
    engine(model).train_step(inputs, labels, 0.5, 0.0, rates)
    for name, param in model.named_parameters():
        want = before[name] + (new[name] - before[name]) * rates[name].double()
        assert torch.allclose(param.double(), want, rtol=0, atol=2e-6), name


@pytest.mark.parametrize("variant, loss", CASES)
def test_outputs_losses_and_unit_states_match_float64(variant, loss):
    model = build_model(variant, 4)
    inputs, labels = batch(13, seed=1)
    chosen = engine(model, loss)
    reference = build_model(variant, 4).double()
    with torch.no_grad():
        want = reference.states(inputs.double())
    got = chosen.states(inputs)
    assert set(got) == set(want)
    for name in want:
        assert torch.allclose(got[name].double(), want[name], rtol=0, atol=1e-5), name
    outputs, mean_loss = chosen.evaluate(inputs, labels, 5)
    assert torch.equal(outputs, got["output"])
    assert mean_loss == pytest.approx(reference_step(model, loss, inputs, labels, 0.0)[1], rel=1e-6)


def weights_after_steps(threads: int, variant: str, loss: str, steps: int = 5) -> list[torch.Tensor]:
    torch.set_num_threads(threads)
    model = build_model(variant, 1)
    chosen = engine(model, loss)
    for step in range(steps):
        inputs, labels = batch(17 + 8 * step, seed=step)
        chosen.train_step(inputs, labels, 0.3, 0.001)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("variant, loss", CASES)
def test_same_bits_for_any_thread_count(variant, loss):
    before = torch.get_num_threads()
    try:
        runs = [weights_after_steps(threads, variant, loss) for threads in (1, 2, 3, 5)]
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


@pytest.mark.parametrize("variant", ["full", "paper"])
def test_an_image_gets_the_same_outputs_in_any_batch(variant):
    chosen = engine(build_model(variant, 2))
    inputs, _ = batch(19, seed=2)
    whole = chosen.predict(inputs, 19)
    assert torch.equal(torch.cat([chosen.predict(inputs[i : i + 1], 1) for i in range(19)]), whole)
    assert torch.equal(chosen.predict(inputs.flip(0), 7).flip(0), whole)


def steps_with_flags(monkeypatch, flags, variant="full", loss="cross_entropy"):
    model = build_model(variant, 5)
    inputs, labels = batch(24, seed=3)
    monkeypatch.setattr(build, "EXTRA_FLAGS", flags)
    engine(model, loss).train_step(inputs, labels, 0.5, 0.0)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 builds one copy per instruction set")
@pytest.mark.parametrize("variant, loss", CASES)
def test_baseline_sse2_code_gives_the_bits_of_this_cpus_copy(monkeypatch, variant, loss):
    loaded = steps_with_flags(monkeypatch, (), variant, loss)  # this CPU's instruction set only (target_flags)
    baseline = steps_with_flags(monkeypatch, ("-DLENET1_BASELINE_ONLY",), variant, loss)
    assert build.library() is not build.build(())
    assert all(torch.equal(a, b) for a, b in zip(loaded, baseline))
    monkeypatch.setattr(libraries, "target_flags", lambda: ())  # one copy per instruction set, chosen when loaded
    cloned = steps_with_flags(monkeypatch, (), variant, loss)
    assert all(torch.equal(a, b) for a, b in zip(cloned, baseline))


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 compiles for this CPU's instruction set")
def test_the_loaded_build_is_compiled_for_this_cpus_instruction_set_only():
    target = {"AVX512": '-DLENET1_TARGET="avx512f"', "AVX2": '-DLENET1_TARGET="avx2"'}.get(
        torch.backends.cpu.get_cpu_capability(), "-DLENET1_BASELINE_ONLY"
    )
    assert libraries.target_flags() == (target,)
    assert libraries.library_for(16) is build.library((target,))


def test_no_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs a C compiler.*apt install gcc"):
        build.compiler()


def test_a_cc_that_does_not_exist_is_named(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(InputError, match="CC='/nonexistent/cc' is not a C compiler"):
        build.compiler()


def test_a_label_outside_0_to_9_fails_and_leaves_the_weights():
    model = build_model("full", 1)
    chosen = engine(model)
    before = [p.detach().clone() for p in model.parameters()]
    inputs, labels = batch(9)
    labels[8] = 10
    with pytest.raises(InputError, match="label outside 0-9"):
        chosen.train_step(inputs, labels, 0.5, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.skipif(
    " fma" not in (open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""),
    reason="needs an x86-64 CPU with FMA",
)
def test_fused_multiply_adds_would_change_the_bits(monkeypatch):
    """The control for the test above: contracting a * b + c into one rounding does change the weights, so
    -ffp-contract=off is what keeps them, and comparing two builds can catch it."""
    plain = steps_with_flags(monkeypatch, ())
    contracted = steps_with_flags(monkeypatch, ("-DLENET1_BASELINE_ONLY", "-mfma", "-ffp-contract=fast"))
    assert not all(torch.equal(a, b) for a, b in zip(plain, contracted))


def test_more_threads_than_the_c_code_starts_give_the_same_outputs():
    chosen = engine(build_model("full", 6))
    inputs, _ = batch(1000, seed=4)  # 125 groups of 8: more than the 64 threads the C code starts at most
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(100)
        many = chosen.predict(inputs, 1000)
        torch.set_num_threads(1)
        one = chosen.predict(inputs, 1000)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(many, one)


def test_a_caller_flushing_subnormals_to_zero_changes_nothing():
    """torch.set_flush_denormal(True) sets the CPU to flush tiny floats to 0; the C code sets it back while it runs."""

    def step() -> list[torch.Tensor]:
        model = build_model("full", 7)
        chosen = engine(model)
        with torch.no_grad():  # output 0 ahead by 95: the others' probabilities e^-95, their gradients below 1e-38
            model.out.weight.mul_(0.01)
            model.out.bias.copy_(torch.tensor([95.0] + [0.0] * 9))
        inputs, labels = batch(16, seed=5)
        chosen.train_step(inputs, labels, 0.5, 0.0)
        return [p.detach().clone() for p in model.parameters()]

    plain = step()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        flushed = step()
    finally:
        torch.set_flush_denormal(False)
    assert all(torch.equal(a, b) for a, b in zip(plain, flushed))


@pytest.mark.parametrize("variant, loss", CASES)
def test_a_nan_weight_gives_a_nan_loss_so_training_stops(variant, loss):
    model = build_model(variant, 1)
    chosen = engine(model, loss)
    with torch.no_grad():
        model.h1.weight[0, 0, 0, 0] = float("nan")  # reaches the loss only through H1's squash and everything after
    inputs, labels = batch(8)
    step_loss, _ = chosen.train_step(inputs, labels, 0.1, 0.0)
    assert math.isnan(step_loss.item())


def test_labels_must_match_the_images():
    chosen = engine(build_model("full", 1))
    inputs, labels = batch(8)
    with pytest.raises(ValueError, match="expected 8 labels"):
        chosen.train_step(inputs, labels[:7], 0.1, 0.0)


@pytest.mark.parametrize("size", [24, 1])  # 24: 3 batches, the last of 13; 1: the 2-lane build
@pytest.mark.parametrize("variant, loss", CASES)
def test_an_epoch_in_one_call_equals_its_steps_one_by_one(variant, loss, size):
    inputs, labels = batch(70, seed=6)
    order = torch.randperm(70, generator=torch.Generator().manual_seed(1))[:61]
    whole, stepped = build_model(variant, 8), build_model(variant, 8)
    loss_seen, accuracy = engine(whole, loss).train_epoch(inputs, labels, order, size, 0.3, 0.001)
    stepper = engine(stepped, loss)
    total, correct = torch.zeros((), dtype=torch.float64), 0
    for start in range(0, 61, size):
        chosen = order[start : start + size]
        step_loss, outputs = stepper.train_step(inputs[chosen], labels[chosen], 0.3, 0.001)
        total += step_loss * len(chosen)  # as lenet1.train.train_epoch sums
        correct += int((outputs.argmax(1) == labels[chosen]).sum())
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), stepped.parameters()))
    assert (loss_seen, accuracy) == (total.item() / 61, correct / 61)


def test_an_interrupt_stops_an_epoch_between_steps_not_at_its_end():
    """Ctrl-C while an epoch's C call runs: KeyboardInterrupt at once, the weights as some step left them.
    Were the signal handled only when the call returned, the weights would be the whole epoch's."""
    import _thread
    import threading

    inputs, labels = batch(20000, seed=7)
    order = torch.arange(20000)
    whole, stopped = build_model("full", 3), build_model("full", 3)
    engine(whole).train_epoch(inputs, labels, order, 1, 0.01, 0.0)
    timer = threading.Timer(0.2, _thread.interrupt_main)  # as Ctrl-C: the main thread's SIGINT handler
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        engine(stopped).train_epoch(inputs, labels, order, 1, 0.01, 0.0)
    timer.join()
    assert not all(torch.equal(a, b) for a, b in zip(whole.parameters(), stopped.parameters()))
    after = [p.detach().clone() for p in stopped.parameters()]  # the engine is usable again, from where it stopped
    engine(stopped).train_epoch(inputs[:32], labels[:32], order[:32], 1, 0.01, 0.0)
    assert not all(torch.equal(a, b) for a, b in zip(after, stopped.parameters()))
