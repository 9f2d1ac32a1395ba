"""Getting MNIST: the download sources (download.py), the IDX format (idx.py), the stratified split
(split.py) and the model inputs (inputs.py).  May import torch, numpy, lenet1.errors and lenet1.pipeline;
never the model, the engine or training.
"""
