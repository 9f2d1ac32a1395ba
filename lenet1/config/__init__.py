"""params.yaml's schema: what each section may hold and its rules (``params.py``), the data sections
(``data.py``) and the learning sections (``learning.py``).  Torch- and numpy-free: the validate stage loads it all.
"""
