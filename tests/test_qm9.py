"""The QM9 loader against the CSV read independently and against chemistry.

``tests/data/qm9_part1_head100.csv`` is the header and first 100 rows of
``qm9pack/data/qm9_part1.csv`` from qm9pack 1.0.3 (PyPI), byte for byte (see
``tests/data/qm9_README.md``). Featurisation needs RDKit (skipped without
it); the full-data test needs qm9pack (skipped without it).
"""

import csv
import importlib.util
import json
import os

import numpy as np
import pytest

from infomax_jax.graphs import qm9
from infomax_jax.graphs import tu

SLICE = os.path.join(os.path.dirname(__file__), 'data',
                     'qm9_part1_head100.csv')


def _independent_rows(path):
  """The slice's rows read here with csv alone (not through the loader)."""
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_read_csv_matches_independent_read():
  rows = qm9.read_qm9_csv(SLICE)
  raw = _independent_rows(SLICE)
  assert len(rows) == len(raw) == 100
  for row, r in zip(rows, raw):
    assert row['index'] == int(r['Index'])
    assert row['smiles'] == r['SMILES']
    assert row['n_atoms'] == int(r['N_atoms'])
    assert row['targets'] == [float(r[c]) for _, c, _ in qm9.TARGETS]
  # QM9's first molecules are methane, ammonia and water (Ramakrishnan et
  # al. 2014), with U0 = -40.47893, -56.525887, -76.404702 Ha.
  assert [r['smiles'] for r in rows[:3]] == ['C', 'N', 'O']
  assert [r['n_atoms'] for r in rows[:3]] == [5, 4, 3]
  u0 = qm9.TARGET_NAMES.index('u0')
  assert [r['targets'][u0] for r in rows[:3]] == [-40.47893, -56.525887,
                                                   -76.404702]


def test_read_csv_rejects_other_files(tmp_path):
  path = tmp_path / 'x.csv'
  path.write_text('a,b\n1,2\n')
  with pytest.raises(ValueError, match='missing columns'):
    qm9.read_qm9_csv(str(path))


# (SMILES, atoms, bonds, {bond type: count}) by hand from the structures.
KNOWN = [
    ('C', 5, 4, {'SINGLE': 4}),                       # methane
    ('N', 4, 3, {'SINGLE': 3}),                       # ammonia
    ('O', 3, 2, {'SINGLE': 2}),                       # water
    ('C#C', 4, 3, {'SINGLE': 2, 'TRIPLE': 1}),        # acetylene
    ('C=O', 4, 3, {'SINGLE': 2, 'DOUBLE': 1}),        # formaldehyde
    ('C1CC1', 9, 9, {'SINGLE': 9}),                   # cyclopropane
    ('c1ccccc1', 12, 12, {'SINGLE': 6, 'AROMATIC': 6}),   # benzene
]


@pytest.mark.parametrize('smiles,atoms,bonds,types', KNOWN)
def test_molecule_graph_known_molecules(smiles, atoms, bonds, types):
  pytest.importorskip('rdkit')
  x, edges, kinds = qm9.molecule_graph(smiles)
  assert x.shape == (atoms, 11)
  assert edges.shape == (2 * bonds, 2)
  # Both directions of every bond, no self loops.
  pairs = {tuple(e) for e in edges.tolist()}
  assert all((b, a) in pairs for a, b in pairs) and len(pairs) == 2 * bonds
  assert not np.any(edges[:, 0] == edges[:, 1])
  counts = {qm9.BOND_TYPES[k]: int(c) // 2
            for k, c in enumerate(np.bincount(kinds, minlength=4)) if c}
  assert counts == types
  # Every hydrogen has exactly one bond; num_hs counts bonded hydrogens.
  is_h = x[:, 0] == 1
  degree = np.bincount(edges[:, 1], minlength=atoms)
  assert np.all(degree[is_h] == 1)
  assert x[:, 10].sum() == is_h.sum() - 2 * (smiles == '[H][H]')


def test_molecule_graph_features_by_hand():
  pytest.importorskip('rdkit')
  # Methane: C (one-hot 1, Z = 6, sp3, 4 H) and four H (Z = 1, no flags).
  x, _, _ = qm9.molecule_graph('C')
  carbon = [0, 1, 0, 0, 0, 6, 0, 0, 0, 1, 4]
  hydrogen = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
  np.testing.assert_array_equal(x, [carbon] + [hydrogen] * 4)
  # Acetylene's carbons are sp with one H each; benzene's aromatic sp2.
  x, _, _ = qm9.molecule_graph('C#C')
  np.testing.assert_array_equal(x[x[:, 1] == 1][:, 6:],
                                [[0, 1, 0, 0, 1]] * 2)
  x, _, _ = qm9.molecule_graph('c1ccccc1')
  np.testing.assert_array_equal(x[x[:, 1] == 1][:, 6:],
                                [[1, 0, 1, 0, 1]] * 6)
  with pytest.raises(ValueError, match='cannot parse'):
    qm9.molecule_graph('C1CC')


def test_featurize_slice_matches_csv_columns():
  pytest.importorskip('rdkit')
  raw = _independent_rows(SLICE)
  dataset, dropped = qm9.featurize(qm9.read_qm9_csv(SLICE))
  assert dropped == [] and dataset.num_graphs == 100
  sizes = np.diff(dataset.node_offsets)
  np.testing.assert_array_equal(sizes, [int(r['N_atoms']) for r in raw])
  # Element counts per molecule vs the CSV's Stoichiometry [H, C, N, O, F].
  counts = np.stack([dataset.node_features[a:b, :5].sum(0) for a, b in
                     zip(dataset.node_offsets[:-1], dataset.node_offsets[1:])])
  np.testing.assert_array_equal(
      counts, [json.loads(r['Stoichiometry']) for r in raw])
  # And vs the Elements column (the xyz atom list).
  for r, c in zip(raw, counts):
    elements = [e.strip(" '") for e in r['Elements'].strip('[]').split(',')]
    assert [elements.count(e) for e in qm9.ELEMENTS] == c.tolist()
  # (qm9pack leaves out QM9's 3,054 unconverged molecules: gaps in Index.)
  np.testing.assert_array_equal(dataset.index, [int(r['Index']) for r in raw])
  # Edges stay inside their molecule; the batching of tu accepts the set.
  g = dataset.node_graph
  assert np.all(g[dataset.edges[:, 0]] == g[dataset.edges[:, 1]])
  batch = tu.batch_graphs(dataset, [2, 0], num_nodes=10, num_edges=12,
                          num_graphs=2)
  assert int(batch.node_mask.sum()) == 3 + 5


def test_subset_equals_featurizing_those_rows():
  pytest.importorskip('rdkit')
  rows = qm9.read_qm9_csv(SLICE)
  dataset, _ = qm9.featurize(rows)
  ids = [17, 3, 64]
  direct, _ = qm9.featurize([rows[i] for i in ids])
  sub = dataset.subset(ids)
  for field in ('node_features', 'edges', 'edge_types', 'node_graph',
                'targets', 'index', 'smiles'):
    np.testing.assert_array_equal(getattr(sub, field), getattr(direct, field))


def test_split_and_normalisation():
  split = qm9.qm9_split(100, seed=0, num_train=20, num_val=30, num_test=40)
  sizes = {k: v.size for k, v in split.items()}
  assert sizes == {'train': 20, 'val': 30, 'test': 40, 'unlabeled': 10}
  assert np.array_equal(np.sort(np.concatenate(list(split.values()))),
                        np.arange(100))
  y = np.random.default_rng(0).normal(3.0, 2.0, (100, 2))
  z, mean, std = qm9.normalized_targets(y, split['train'])
  np.testing.assert_allclose(z[split['train']].mean(0), 0, atol=1e-6)
  np.testing.assert_allclose(z[split['train']].std(0), 1, atol=1e-6)
  # z is float32: a few ulps of values of size ~10.
  np.testing.assert_allclose(z * std + mean, y, rtol=0, atol=1e-5)
  with pytest.raises(ValueError, match='exceeds'):
    qm9.qm9_split(10, seed=0, num_train=5, num_val=5, num_test=5)


def test_missing_data_names_files_and_install(tmp_path, monkeypatch):
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  with pytest.raises(FileNotFoundError) as e:
    qm9.qm9_dir(str(tmp_path))
  assert 'qm9_part1.csv' in str(e.value)
  assert 'pip install qm9pack' in str(e.value)
  assert str(tmp_path / 'qm9') in str(e.value)


def test_local_folder_is_preferred(tmp_path):
  folder = tmp_path / 'qm9'
  folder.mkdir()
  for name in qm9.CSV_FILES:
    (folder / name).write_text('')
  assert qm9.qm9_dir(str(tmp_path)) == str(folder)


@pytest.mark.slow
def test_full_qm9_from_qm9pack():
  """The installed qm9pack: 130,831 molecules (PyG's QM9 count); a sample
  of them featurised with the CSV's atom counts and stoichiometry."""
  if importlib.util.find_spec('qm9pack') is None:
    pytest.skip('qm9pack is not installed (pip install qm9pack==1.0.3)')
  pytest.importorskip('rdkit')
  folder = qm9.qm9_dir('/nonexistent')
  raw = []
  for name in qm9.CSV_FILES:
    raw += _independent_rows(os.path.join(folder, name))
  assert len(raw) == 130831
  assert [int(r['Index']) for r in raw[:3]] == [1, 2, 3]
  assert int(raw[-1]['Index']) == 133885
  sample = np.random.default_rng(0).choice(len(raw), 300, replace=False)
  rows = [{'index': int(raw[i]['Index']), 'smiles': raw[i]['SMILES'],
           'n_atoms': int(raw[i]['N_atoms']), 'targets': [0.0] * 12}
          for i in sample]
  dataset, dropped = qm9.featurize(rows)
  kept = [i for i in sample if int(raw[i]['Index']) not in dropped]
  assert len(dropped) <= 3, dropped
  counts = np.stack([dataset.node_features[a:b, :5].sum(0) for a, b in
                     zip(dataset.node_offsets[:-1], dataset.node_offsets[1:])])
  np.testing.assert_array_equal(
      counts, [json.loads(raw[i]['Stoichiometry']) for i in kept])


def test_composition_and_atom_reference_vs_independent_fit():
  """``composition`` equals the CSV's Stoichiometry column; ``atom_reference``
  equals a least-squares fit done here with sklearn on those counts."""
  pytest.importorskip('rdkit')
  linear_model = pytest.importorskip('sklearn.linear_model')
  raw = _independent_rows(SLICE)
  dataset, _ = qm9.featurize(qm9.read_qm9_csv(SLICE))
  stoich = np.array([json.loads(r['Stoichiometry']) for r in raw], float)
  np.testing.assert_array_equal(qm9.composition(dataset), stoich)
  targets = np.array([[float(r[c]) for _, c, _ in qm9.TARGETS] for r in raw])
  train = np.arange(0, 100, 2)
  baseline, coef = qm9.atom_reference(targets, qm9.composition(dataset), train)
  ref = linear_model.LinearRegression().fit(stoich[train], targets[train])
  # The counts are collinear on these small molecules (no F among them), so
  # compare the fitted values (unique), not the coefficients.
  np.testing.assert_allclose(baseline, ref.predict(stoich), rtol=1e-9,
                             atol=1e-7)
  assert coef.shape == (6, 12)
  # U0 is nearly linear in the composition: on the 50 held-out molecules the
  # fit is within 0.05 Ha (the targets' spread is ~15 Ha).
  u0 = qm9.TARGET_NAMES.index('u0')
  held = np.setdiff1d(np.arange(100), train)
  assert np.abs(baseline[held, u0] - targets[held, u0]).mean() < 0.05
  assert targets[:, u0].std() > 5
