#!/usr/bin/env bash
# Wall time (best of 3) of each stage with a tiny training config (1 epoch, 300 digits), in directory $1
# (default: here), with the venv active: what an experiment pays beyond training.  Needs `dvc repro` done
# first; it rewrites the outputs, so restore them afterwards: git checkout -- metrics plots && dvc checkout --force
cd "${1:-.}"
cp params.yaml /tmp/params.keep.$$
trap 'cp /tmp/params.keep.$$ params.yaml' EXIT  # params.yaml back even if a stage fails
sed -i 's/^  epochs: .*/  epochs: 1/; s/^  train_subset: [0-9]*/  train_subset: 300/' params.yaml
for stage in validate train evaluate plot; do
  best=999
  for i in 1 2 3; do
    s=$(date +%s.%N); PYTHONPATH=. python -m stages.$stage >/dev/null 2>&1 || echo "$stage failed"; e=$(date +%s.%N)
    best=$(python3 -c "print(min($best, $e - $s))")
  done
  printf "%-9s %.2f s\n" $stage $best
done
