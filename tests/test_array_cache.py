"""The on-disk copy of decoded TFDS splits (tfvae/data/array_cache.py), on real Fashion-MNIST."""

import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfvae.data import array_cache
from tfvae.data import sources


def _prepared_dir(data_dir):
  return os.path.dirname(next(iter(
      p for p in (os.path.join(r, n) for r, _, ns in os.walk(data_dir) for n in ns)
      if ".tfrecord" in p)))


@pytest.fixture
def data_dir(fashion_mnist_dir, tmp_path):
  """A copy of the prepared Fashion-MNIST without any array cache."""
  target = str(tmp_path / "tfds")
  shutil.copytree(fashion_mnist_dir, target,
                  ignore=shutil.ignore_patterns(array_cache.FILENAME + "*"))
  return target


def _count_tfds_loads(monkeypatch):
  calls = []
  real = tfds.load

  def counting(*args, **kwargs):
    calls.append(args)
    return real(*args, **kwargs)
  monkeypatch.setattr(tfds, "load", counting)
  return calls


def _assert_same(a, b):
  for split in ("train", "test"):
    np.testing.assert_array_equal(getattr(a, split)[0], getattr(b, split)[0])
    np.testing.assert_array_equal(getattr(a, split)[1], getattr(b, split)[1])
  assert a.class_names == b.class_names and a.max_value == b.max_value == 255


@pytest.mark.slow
def test_the_second_read_comes_from_the_cache_with_the_same_arrays(data_dir, monkeypatch):
  loads = _count_tfds_loads(monkeypatch)
  first = sources.tfds_dataset("fashion_mnist", data_dir)
  assert len(loads) == 2  # train and test decoded from the records
  cache = os.path.join(_prepared_dir(data_dir), array_cache.FILENAME)
  assert os.path.exists(cache) and not os.path.exists(cache + ".tmp")
  second = sources.tfds_dataset("fashion_mnist", data_dir)
  assert len(loads) == 2  # not decoded again
  _assert_same(first, second)
  assert first.fingerprint() == second.fingerprint()
  assert first.train[0].shape == (60000, 28, 28, 1) and second.train[0].dtype == np.uint8


@pytest.mark.slow
def test_changed_prepared_files_or_a_torn_cache_are_read_from_the_records_again(
    data_dir, monkeypatch, caplog):
  reference = sources.tfds_dataset("fashion_mnist", data_dir)  # writes the cache
  loads = _count_tfds_loads(monkeypatch)
  prepared = _prepared_dir(data_dir)
  record = next(n for n in os.listdir(prepared) if ".tfrecord" in n)
  stat = os.stat(os.path.join(prepared, record))
  os.utime(os.path.join(prepared, record), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  _assert_same(sources.tfds_dataset("fashion_mnist", data_dir), reference)  # re-prepared: miss
  assert len(loads) == 2
  cache = os.path.join(prepared, array_cache.FILENAME)
  with open(cache, "r+b") as f:
    f.truncate(os.path.getsize(cache) // 2)
  _assert_same(sources.tfds_dataset("fashion_mnist", data_dir), reference)
  assert len(loads) == 4 and "Ignoring the array cache" in caplog.text
  _assert_same(sources.tfds_dataset("fashion_mnist", data_dir), reference)  # rewritten whole
  assert len(loads) == 4


def test_a_dataset_tfds_has_not_prepared_is_never_cached(tmp_path):
  with tfds.testing.mock_data(num_examples=20):
    sources.tfds_dataset("mnist", str(tmp_path))
  assert not [n for _, _, ns in os.walk(tmp_path) for n in ns if array_cache.FILENAME in n]
