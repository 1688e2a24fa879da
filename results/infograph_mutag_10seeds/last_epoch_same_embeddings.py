"""Last-epoch protocol on the saved embeddings of the 10-seed run (same folds, same C search)."""
import math
import statistics as st
import numpy as np
from infomax_jax import graphs
last, sel = [], []
import csv
rows = {int(r['seed']): r for r in csv.DictReader(open('runs/infograph_issue17/runs.csv'))}
for seed in range(10):
  z = np.load(f'runs/infograph_issue17/embeddings/MUTAG_seed{seed}.npz')
  acc, _ = graphs.svm_cross_validation(z['epoch_embeddings'][-1], z['labels'], folds=10, inner_folds=5,
                                       cs=(0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0), seed=seed)
  last.append(100 * acc.mean()); sel.append(float(rows[seed]['acc_mean']))
  print(seed, round(last[-1], 2), sel[-1])
t = 2.262
d = [a - b for a, b in zip(sel, last)]
print(f'last epoch {st.mean(last):.2f} ± {st.stdev(last):.2f} (std); selection - last {st.mean(d):.2f} ± {t*st.stdev(d)/math.sqrt(10):.2f} (95% t)')
