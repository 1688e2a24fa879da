"""QM9 (Ramakrishnan et al. 2014) as molecular graphs, featurised as PyG's QM9.

The data are the CSV files of the PyPI package ``qm9pack`` (1.0.3:
``qm9pack/data/qm9_part{1,2,3}.csv``, 130,831 molecules: QM9's 133,885 less
the 3,054 that failed its consistency check, the set PyG's ``QM9`` keeps). Each
row has the GDB SMILES, the atom count and elements, 3-D coordinates and the
properties. ``load_qm9`` reads them from ``<data_dir>/qm9/`` if that folder
holds the three files, else from the installed ``qm9pack`` (without
importing it), turns every SMILES into a graph with RDKit (hydrogens made
explicit, so a graph has the CSV's ``N_atoms`` nodes) and caches the arrays as
one ``.npz`` under ``infomax_jax.tschannen.cache_dir()/qm9`` (keyed by the
files' sizes and times and ``FEATURIZER_VERSION``): the first call takes about
a minute, later ones a second.

Node features are PyG's 11 (``torch_geometric.datasets.QM9``): one-hot of
H, C, N, O, F; atomic number; aromatic; sp, sp2, sp3 hybridisation; number of
bonded hydrogens. Edges are both directions of every bond, with the bond type
(single, double, triple, aromatic) in ``edge_types``. The targets are the 12
of MoleculeNet / PyG's first 12 in the CSV's units (``TARGETS``); coordinates
are not used.

Requires ``rdkit`` for featurisation (``pip install qm9pack rdkit``).
"""

import csv
import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from infomax_jax import runs
from infomax_jax import tschannen
from infomax_jax.graphs import files
from infomax_jax.graphs import tu

# The three CSV files of qm9pack 1.0.3, in molecule order.
CSV_FILES = ('qm9_part1.csv', 'qm9_part2.csv', 'qm9_part3.csv')
# (name, CSV column, unit): the 12 regression targets of MoleculeNet's QM9.
TARGETS = (
    ('mu', 'Dipole_debye', 'D'),
    ('alpha', 'Polarizability_bohr3', 'bohr^3'),
    ('homo', 'HOMO_au', 'Ha'),
    ('lumo', 'LUMO_au', 'Ha'),
    ('gap', 'HOMO_LUMO_gap_au', 'Ha'),
    ('r2', 'R2_bohr2', 'bohr^2'),
    ('zpve', 'ZPVE_au', 'Ha'),
    ('u0', 'InternalEnergy_0K_au', 'Ha'),
    ('u298', 'InternalEnergy_298K_au', 'Ha'),
    ('h298', 'Enthalphy_298K_au', 'Ha'),
    ('g298', 'GibbsFreeEnergy_298K_au', 'Ha'),
    ('cv', 'Heatcapacity_Cv_cal_mol_K', 'cal/(mol K)'),
)
TARGET_NAMES = tuple(t[0] for t in TARGETS)
ELEMENTS = ('H', 'C', 'N', 'O', 'F')
NODE_FEATURES = (*(f'is_{e}' for e in ELEMENTS), 'atomic_number', 'aromatic',
                 'sp', 'sp2', 'sp3', 'num_hs')
BOND_TYPES = ('SINGLE', 'DOUBLE', 'TRIPLE', 'AROMATIC')
# Bump when the featurisation changes (invalidates the cache).
FEATURIZER_VERSION = 1
INSTALL_HINT = ('pip install qm9pack==1.0.3 rdkit (qm9pack ships the CSV '
                'files), or put ' + ', '.join(CSV_FILES) + ' in '
                '<data_dir>/qm9/')


@dataclasses.dataclass(frozen=True)
class QM9(tu.PackedGraphs):
  """QM9 molecules as graphs; nodes numbered consecutively, molecule by molecule.

  Has the fields ``infomax_jax.graphs.tu``'s batching reads
  (``batch_graphs``, ``padded_sizes``, ``tu_arrays``), like ``TUDataset``.

  Attributes:
    node_features: (n, 11) float32, ``NODE_FEATURES``.
    edges: (m, 2) int32 directed (sender, receiver), both directions of every
      bond, sorted by molecule.
    edge_types: (m,) int32 index into ``BOND_TYPES``.
    node_graph: (n,) int32 molecule of every node, non-decreasing.
    targets: (G, 12) float64, ``TARGETS`` in the CSV's units.
    index: (G,) int64 the CSV's ``Index`` (QM9's molecule number, 1-based).
    smiles: (G,) the CSV's SMILES.
  """
  node_features: np.ndarray
  edges: np.ndarray
  edge_types: np.ndarray
  node_graph: np.ndarray
  targets: np.ndarray
  index: np.ndarray
  smiles: np.ndarray
  name: str = 'QM9'

  @property
  def num_graphs(self) -> int:
    return int(self.targets.shape[0])

  def subset(self, ids: Sequence[int]) -> 'QM9':
    """The molecules ``ids`` (in that order), renumbered from 0."""
    ids = np.asarray(ids, np.int64)
    node_off, edge_off = self.node_offsets, self.edge_offsets
    nodes = [np.arange(node_off[g], node_off[g + 1]) for g in ids]
    edges = [np.arange(edge_off[g], edge_off[g + 1]) for g in ids]
    sizes = np.array([len(n) for n in nodes])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    node_idx = np.concatenate(nodes)
    edge_idx = np.concatenate(edges)
    shift = np.repeat(starts - node_off[ids], [len(e) for e in edges])
    return dataclasses.replace(
        self, node_features=self.node_features[node_idx],
        edges=(self.edges[edge_idx] + shift[:, None]).astype(np.int32),
        edge_types=self.edge_types[edge_idx],
        node_graph=np.repeat(np.arange(ids.size, dtype=np.int32), sizes),
        targets=self.targets[ids], index=self.index[ids],
        smiles=self.smiles[ids])


def read_qm9_csv(path: str) -> list[dict[str, Any]]:
  """The rows of one qm9pack CSV file: Index, SMILES, N_atoms, Elements, targets.

  Args:
    path: a ``qm9_part*.csv`` file (or a slice of one with its header).

  Returns:
    One dict per molecule: 'index' (int), 'smiles', 'n_atoms' (int),
    'elements' (list of symbols) and 'targets' (12 floats, ``TARGETS``).
  """
  needed = ('Index', 'SMILES', 'N_atoms', 'Elements',
            *(t[1] for t in TARGETS))
  out = []
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    missing = [c for c in needed if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(f'{path}: not a qm9pack CSV, missing columns {missing}')
    for row in reader:
      out.append({
          'index': int(row['Index']), 'smiles': row['SMILES'],
          'n_atoms': int(row['N_atoms']),
          'elements': [e.strip(" '") for e in
                       row['Elements'].strip('[]').split(',')],
          'targets': [float(row[t[1]]) for t in TARGETS]})
  return out


def _rdkit():
  try:
    from rdkit import Chem
    from rdkit import RDLogger
  except ImportError:
    raise ImportError(f'QM9 featurisation needs RDKit: {INSTALL_HINT}'
                      ) from None
  RDLogger.DisableLog('rdApp.*')
  return Chem


def molecule_graph(smiles: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One SMILES as a graph with explicit hydrogens and PyG's QM9 features.

  Args:
    smiles: a SMILES string.

  Returns:
    (x (n, 11) float32, edges (2 bonds, 2) int32 both directions, bond types
    (2 bonds,) int32).

  Raises:
    ValueError: if RDKit cannot parse the SMILES or it has an element other
      than H, C, N, O, F.
  """
  chem = _rdkit()
  mol = chem.MolFromSmiles(smiles)
  if mol is None:
    raise ValueError(f'RDKit cannot parse the SMILES {smiles!r}')
  mol = chem.AddHs(mol)
  hyb = chem.rdchem.HybridizationType
  hybrids = (hyb.SP, hyb.SP2, hyb.SP3)
  x = np.zeros((mol.GetNumAtoms(), len(NODE_FEATURES)), np.float32)
  for atom in mol.GetAtoms():
    symbol = atom.GetSymbol()
    if symbol not in ELEMENTS:
      raise ValueError(f'{smiles!r}: element {symbol} is not one of {ELEMENTS}')
    i = atom.GetIdx()
    x[i, ELEMENTS.index(symbol)] = 1.0
    x[i, 5] = atom.GetAtomicNum()
    x[i, 6] = float(atom.GetIsAromatic())
    for k, h in enumerate(hybrids):
      x[i, 7 + k] = float(atom.GetHybridization() == h)
    x[i, 10] = sum(n.GetAtomicNum() == 1 for n in atom.GetNeighbors())
  edges, types = [], []
  for bond in mol.GetBonds():
    a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    kind = BOND_TYPES.index(str(bond.GetBondType()))
    edges += [(a, b), (b, a)]
    types += [kind, kind]
  edges = np.array(edges, np.int32).reshape(-1, 2)
  order = np.lexsort((edges[:, 0], edges[:, 1]))   # by receiver, then sender
  return x, edges[order], np.array(types, np.int32)[order]


def featurize(rows: Iterable[dict[str, Any]]) -> tuple[QM9, list[int]]:
  """Graphs of ``read_qm9_csv`` rows.

  A molecule is dropped (its Index returned) when RDKit cannot parse its
  SMILES or the graph's atom count differs from the CSV's ``N_atoms``.

  Returns:
    (the data set, the Index of every dropped molecule).
  """
  xs, edges, types, node_graph, targets, index, smiles = [], [], [], [], [], [], []
  dropped, offset = [], 0
  for row in rows:
    try:
      x, e, t = molecule_graph(row['smiles'])
    except ValueError:
      dropped.append(row['index'])
      continue
    if x.shape[0] != row['n_atoms']:
      dropped.append(row['index'])
      continue
    g = len(targets)
    xs.append(x)
    edges.append(e + offset)
    types.append(t)
    node_graph.append(np.full(x.shape[0], g, np.int32))
    targets.append(row['targets'])
    index.append(row['index'])
    smiles.append(row['smiles'])
    offset += x.shape[0]
  if not targets:
    raise ValueError('featurize: no molecule could be featurised')
  return QM9(node_features=np.concatenate(xs),
             edges=np.concatenate(edges).astype(np.int32),
             edge_types=np.concatenate(types).astype(np.int32),
             node_graph=np.concatenate(node_graph),
             targets=np.array(targets, np.float64),
             index=np.array(index, np.int64),
             smiles=np.array(smiles)), dropped


def qm9_dir(data_dir: Optional[str] = None) -> str:
  """The folder holding ``CSV_FILES``.

  ``<data_dir>/qm9/`` (``data_dir`` or ``$INFOMAX_DATA_DIR``) if it holds
  them, else the data folder of the installed ``qm9pack``.

  Raises:
    FileNotFoundError: naming the files looked for and how to install them.
  """
  tried = []
  try:
    root = files.resolve_data_dir(data_dir)
  except ValueError:
    root = None
  if root is not None:
    folder = os.path.join(root, 'qm9')
    if all(os.path.isfile(os.path.join(folder, f)) for f in CSV_FILES):
      return folder
    tried.append(folder)
  spec = importlib.util.find_spec('qm9pack')   # found, not imported
  if spec is not None and spec.submodule_search_locations:
    folder = os.path.join(list(spec.submodule_search_locations)[0], 'data')
    if all(os.path.isfile(os.path.join(folder, f)) for f in CSV_FILES):
      return folder
    tried.append(folder)
  raise FileNotFoundError(
      f'QM9: {", ".join(CSV_FILES)} not found (looked in '
      f'{tried or "no folder: no data dir set and qm9pack not installed"}); '
      f'{INSTALL_HINT}')


def _cache_path(folder: str) -> str:
  stats = [(f, os.path.getsize(os.path.join(folder, f)),
            int(os.path.getmtime(os.path.join(folder, f)))) for f in CSV_FILES]
  key = json.dumps({'files': stats, 'version': FEATURIZER_VERSION})
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  return os.path.join(tschannen.cache_dir(), 'qm9', f'qm9_{digest}.npz')


def load_qm9(data_dir: Optional[str] = None, *, cache: bool = True,
             verbose: bool = False) -> QM9:
  """All of QM9 as graphs (see the module docstring), cached after the first call.

  Args:
    data_dir: folder holding ``qm9/qm9_part{1,2,3}.csv``; default
      ``$INFOMAX_DATA_DIR``, then the installed ``qm9pack``.
    cache: read / write the featurised arrays under ``cache_dir()/qm9``.
    verbose: print where the data come from and how many were dropped.

  Returns:
    A ``QM9`` in the CSV's order.
  """
  folder = qm9_dir(data_dir)
  path = _cache_path(folder)
  if cache and os.path.isfile(path):
    with np.load(path, allow_pickle=False) as z:
      return QM9(**{k: z[k] for k in z.files})
  rows = []
  for name in CSV_FILES:
    rows += read_qm9_csv(os.path.join(folder, name))
  dataset, dropped = featurize(rows)
  if verbose:
    print(f'QM9: {dataset.num_graphs} molecules from {folder} '
          f'({len(dropped)} dropped: {dropped[:10]})', file=sys.stderr)
  if cache:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with runs.atomic_open(path, 'wb') as f:
      np.savez(f, **{field.name: getattr(dataset, field.name)
                     for field in dataclasses.fields(dataset) if field.name != 'name'})
  return dataset


def load_qm9_dataset(name: str = 'QM9', data_dir: Optional[str] = None) -> QM9:
  """``load_qm9`` with the ``(name, data_dir)`` signature of the other loaders."""
  if name != 'QM9':
    raise ValueError(f'load_qm9_dataset: unknown data set {name!r}, expected '
                     f"'QM9'")
  return load_qm9(data_dir)


def normalized_targets(targets: np.ndarray, train_ids: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(targets - mean) / std with mean, std of the training molecules.

  Returns:
    (normalised (G, T) float32, mean (T,), std (T,)).
  """
  mean = targets[train_ids].mean(axis=0)
  std = targets[train_ids].std(axis=0)
  return ((targets - mean) / std).astype(np.float32), mean, std


def composition(dataset: 'QM9') -> np.ndarray:
  """(G, 5) float64 atom counts of every molecule, in ``ELEMENTS`` order
  (the sums of the one-hot node features)."""
  return np.stack([np.bincount(dataset.node_graph,
                               weights=dataset.node_features[:, j],
                               minlength=dataset.num_graphs)
                   for j in range(len(ELEMENTS))], axis=1)


def atom_reference(targets: np.ndarray, counts: np.ndarray,
                   train_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-target atom-reference baseline: least squares of every target on
  the atom counts and a constant, fitted on the training molecules.

  QM9's extensive targets are almost exactly linear in the composition (U0:
  residual MAE 0.001 of a std on the labeled split), a map that closed-form
  least squares finds at once but gradient descent on sum-pooled GNN features
  does not (see docs/notes/issue22_infograph_star.md). Models regress the
  residual ``targets - baseline`` (PyG's ``QM9.atomref`` / SchNet's atom
  references, fitted here rather than taken from the isolated-atom energies).

  Args:
    targets: (G, T) targets; counts: (G, E) atom counts (``composition``);
    train_ids: molecules the fit sees (the labeled ones).

  Returns:
    (baseline (G, T) float64, coefficients (E + 1, T), the last row the
    constant).
  """
  design = np.concatenate([counts, np.ones((counts.shape[0], 1))], axis=1)
  coef = np.linalg.lstsq(design[train_ids], targets[train_ids], rcond=None)[0]
  return design @ coef, coef


def qm9_split(num_graphs: int, *, seed: int, num_train: int = 5000,
              num_val: int = 10000, num_test: int = 10000
              ) -> dict[str, np.ndarray]:
  """InfoGraph*'s split: a random permutation cut into test, val, train and
  the rest (unlabeled).

  Returns:
    {'train', 'val', 'test', 'unlabeled'}: disjoint index arrays.
  """
  if num_train + num_val + num_test > num_graphs:
    raise ValueError(f'qm9_split: {num_train} + {num_val} + {num_test} '
                     f'exceeds the {num_graphs} molecules')
  order = np.random.default_rng(seed).permutation(num_graphs)
  a, b = num_test, num_test + num_val
  c = b + num_train
  return {'test': order[:a], 'val': order[a:b], 'train': order[b:c],
          'unlabeled': order[c:]}
