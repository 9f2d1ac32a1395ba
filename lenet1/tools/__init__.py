"""Tools no stage runs: the reproducibility check, seed-sweep summaries and paired tests, the paper's unit and connection counts."""
