"""What the DVC stages share: params.yaml's rules (params.py) and sections (sections.py), file paths,
byte-stable outputs, model files (checkpoint.py), thread and platform settings.  params.py, sections.py,
paths.py and outputs.py import no torch or numpy (the validate stage loads them); checkpoint.py may import
the model and the engine.
"""
