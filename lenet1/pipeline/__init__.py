"""The DVC stages' plumbing: where each stage reads and writes (paths.py), model files (checkpoint.py),
thread and platform settings (determinism.py).  paths.py imports nothing (the validate stage loads it);
checkpoint.py imports the model and the engine.
"""
