"""Tools that run outside the stages: the reproducibility check (reproduce.py), seed-sweep summaries
(summarize.py), paired tests (compare.py), statistics (stats.py, with scipy), the paper's unit and
connection counts (structure.py).  May import anything in lenet1; nothing in lenet1 imports them.
"""
