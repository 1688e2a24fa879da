"""Tests of infomax_jax.graphs.files: the data folder and missing files."""

import pytest

from infomax_jax import graphs


def test_loaders_report_missing_files_and_settings(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError,
                     match=r'ind\.citeseer\.x.*INFOMAX_DATA_DIR'):
    graphs.load_planetoid('citeseer', str(tmp_path))
  with pytest.raises(FileNotFoundError, match='MUTAG_A.txt'):
    graphs.load_tu_dataset('MUTAG', str(tmp_path))
  monkeypatch.delenv(graphs.DATA_DIR_ENV, raising=False)
  with pytest.raises(ValueError, match='INFOMAX_DATA_DIR'):
    graphs.load_planetoid('cora')
  with pytest.raises(ValueError, match='valid names are: cora, citeseer'):
    graphs.load_planetoid('pubmed', str(tmp_path))
