"""Train a few LeNet-1 steps in deterministic mode and print the SHA-256 of the weights.

Run as a script, on any CPU or under emulation (``../shared/cpu-emulation``), to
compare machines bit for bit; ``tests/test_determinism.py`` runs it.  The data
are seeded random digits, so no prepared data is needed.  One line per
variant:loss case (variant:loss:sdlm: stochastic diagonal Levenberg-Marquardt at batch 1,
as the paper trained, from its initialisation, the rates from the curvature on the first 500
digits, lr 0.0005; --steps of them),
each trained from the same start; several cases share one
process because starting Python and torch under emulation costs far more than
the steps:

    python tests/weights_probe.py --steps 300 --cases full:cross_entropy,paper:mse --threads 1
"""

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--cases", default="full:cross_entropy", help="variant:loss[:sdlm], comma-separated")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--fast", action="store_true", help="stock PyTorch instead of the exact engine")
args = parser.parse_args()

from lenet1.pipeline.determinism import configure_environment  # noqa: E402

configure_environment(args.threads)

import torch  # noqa: E402

from lenet1.data.split import to_inputs  # noqa: E402
from lenet1.pipeline.determinism import configure_torch  # noqa: E402
from lenet1.engine import make_engine  # noqa: E402
from lenet1.model import build_model  # noqa: E402
from lenet1.curvature import step_rates  # noqa: E402

configure_torch(args.threads)
generator = torch.Generator().manual_seed(0)
count = args.steps * args.batch_size
images = (torch.rand(count, 28, 28, generator=generator) * 255).to(torch.uint8)
labels = torch.randint(0, 10, (count,), generator=generator)
inputs = to_inputs(images)
for case in args.cases.split(","):
    variant, loss_name, *optimizer = case.split(":")
    sdlm = optimizer == ["sdlm"]
    model = build_model(variant, 1, "lecun98" if sdlm else "inverse_sqrt")
    engine = make_engine("stock" if args.fast else "exact", model, loss_name, inputs, labels)
    rates = step_rates(engine.curvature(inputs[:500], labels[:500]), 0.02, loss_name) if sdlm else None
    batch_size = 1 if sdlm else args.batch_size
    for start in range(0, args.steps * batch_size, batch_size):
        batch = slice(start, start + batch_size)
        loss, _ = engine.train_step(inputs[batch], labels[batch], 0.0005 if sdlm else 0.1, 0.0, rates)
    weights = b"".join(t.detach().contiguous().numpy().tobytes() for t in model.state_dict().values())
    print(hashlib.sha256(weights).hexdigest(), case, f"loss {float(loss):.6f}")
