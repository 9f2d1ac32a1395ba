"""Ask a trained LeNet-1 about your own digits.

    python -m lenet1.predict [--model PATH] [--json] [--out PNG] IMAGE...

Each IMAGE is a PNG or JPEG of one handwritten digit, any size, dark on light or light on dark, colour or
grey.  It is prepared as MNIST prepared its digits (``lenet1.data.handwritten``), then as the model's training
split prepared its input (the model file records ``split.input``), and computed by the engine that trained the
model, as evaluate does.  Prints each image's digit and ten outputs (softmax probabilities for cross-entropy,
the squashed outputs for MSE); ``--json``: a JSON list of {"image", "digit", "outputs"}; ``--out``: a PNG of
what the network saw beside its outputs.  Exit status: 0 done, 1 a bad image or model file (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lenet1.errors import InputError
from lenet1.pipeline import paths

EVAL_BATCH = 1000


def predict(model_path: Path, images: list[Path]) -> tuple[list[dict[str, Any]], Any]:
    """Per image: {"image", "digit", "outputs"}; and the prepared inputs as the network saw them (N, 28, 28)."""
    import numpy as np
    import torch

    from lenet1.data.handwritten import read_digit
    from lenet1.data.inputs import prepare
    from lenet1.data.split import to_inputs
    from lenet1.engine import make_engine
    from lenet1.pipeline.checkpoint import load_model

    model, params, engine_name = load_model(model_path)
    digits = prepare(np.stack([read_digit(path) for path in images]), params["input"])
    inputs = to_inputs(torch.from_numpy(digits), params["input"])
    # The probe needs digits and labels, not the right labels: it checks the engine against the definition.
    engine = make_engine(engine_name, model, params["loss"], inputs, torch.zeros(len(inputs), dtype=torch.int64))
    outputs = engine.predict(inputs, EVAL_BATCH)
    if params["loss"] == "cross_entropy":
        outputs = torch.softmax(outputs.double(), dim=1)
    rows = [
        {"image": str(path), "digit": int(values.argmax()), "outputs": [round(v, 6) for v in values.tolist()]}
        for path, values in zip(images, outputs)
    ]
    return rows, digits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet1.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG or JPEG of one digit")
    parser.add_argument("--model", type=Path, default=paths.MODEL, help=f"model file (default {paths.MODEL})")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    parser.add_argument("--out", type=Path, metavar="PNG", help="also draw what the network saw and its outputs")
    args = parser.parse_args(argv)
    try:
        rows, digits = predict(args.model, args.images)
        if args.out:
            from lenet1.figures import predictions

            predictions(rows, digits, args.out)
    except InputError as err:
        print(f"predict: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # --out in a folder that cannot be written
        print(f"predict: error: cannot write {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        outputs = " ".join(f"{d}:{v:.3f}" for d, v in enumerate(row["outputs"]))
        print(f"{row['image']}: {row['digit']}  outputs {outputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
