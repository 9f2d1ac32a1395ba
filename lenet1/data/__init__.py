"""Getting MNIST: the files' facts (mnist.py), the download sources (download.py), the IDX format (idx.py),
the stratified split (split.py), the model inputs (inputs.py) and a user's own digit (handwritten.py).
May import torch, numpy, lenet1.errors, lenet1.outputs and lenet1.config; never lenet1.pipeline, the model,
the engine or training.
"""
