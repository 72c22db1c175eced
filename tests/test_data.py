import gzip
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae.data import fashion_mnist_local


def _digits(**kwargs):
  return data_lib.load(config_lib.Config(dataset="digits", **kwargs))


def test_digits_splits_are_disjoint_deterministic_and_cover_the_data():
  data = _digits(binarization="none")
  assert (len(data.train), len(data.validation), len(data.test)) == (1198, 240, 359)
  assert data.image_shape == (8, 8, 1) and data.max_value == 16
  assert data.train.images.dtype == np.uint8 and data.train.images.max() == 16
  again = _digits(binarization="none")
  np.testing.assert_array_equal(data.test.images, again.test.images)
  rows = {im.tobytes() for s in (data.train, data.validation, data.test) for im in s.images}
  assert len(rows) > 1700  # (a few digits images are exact duplicates of each other)


@pytest.mark.parametrize("binarization", ["static", "dynamic"])
def test_binarization_fixes_validation_and_test(binarization):
  data = _digits(binarization=binarization)
  for split in (data.validation, data.test):
    assert set(np.unique(split.images)) <= {0, 16}
  np.testing.assert_array_equal(data.test.images, _digits(binarization=binarization,
                                                          seed=5).test.images)
  train_binary = set(np.unique(data.train.images)) <= {0, 16}
  assert train_binary == (binarization == "static")


def _batches(data, config, start, count):
  it = iter(data_lib.train_dataset(data, config, start_step=start))
  return [next(it) for _ in range(count)]


def test_train_pipeline_is_a_function_of_the_step_so_resuming_sees_the_same_batches():
  config = config_lib.Config(dataset="digits", batch_size=100)  # 11 steps per epoch
  data = data_lib.load(config)
  full = _batches(data, config, 0, 25)
  resumed = _batches(data, config, 13, 12)
  for a, b in zip(full[13:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  epoch = np.concatenate([b["label"] for b in full[:11]])
  assert len(epoch) == 1100 and full[0]["image"].shape == (100, 8, 8, 1)
  assert not np.array_equal(full[0]["label"], full[11]["label"])  # reshuffled each epoch


def test_dynamic_binarization_resamples_each_time_an_example_is_seen():
  config = config_lib.Config(dataset="digits", batch_size=1198)  # one batch = the whole split
  data = data_lib.load(config)
  first, second = (b["image"].numpy() for b in _batches(data, config, 0, 2))
  assert set(np.unique(first)) == {0.0, 1.0}
  # Both batches hold every train example once, so per-pixel sums over the batch compare the
  # same examples: both are close to the gray-level sums (Bernoulli means), yet they differ.
  gray_sum = (data.train.images.astype(np.float32) / 16).sum(axis=0)
  for batch in (first, second):
    np.testing.assert_allclose(batch.sum(axis=0), gray_sum, atol=60)
  assert np.abs(first.sum(axis=0) - second.sum(axis=0)).max() > 5


def test_dequantization_adds_uniform_noise_within_each_pixel_bin():
  config = config_lib.Config(dataset="digits", binarization="dequantize", batch_size=1198)
  data = data_lib.load(config)
  assert data.dequantize
  first, second = (b["image"].numpy() for b in _batches(data, config, 0, 2))
  for batch in (first, second):  # both batches hold every train example once
    assert batch.min() >= 0 and batch.max() < 1
    levels = np.sort(np.floor(batch * 17).astype(np.uint8).reshape(len(batch), -1), axis=0)
    np.testing.assert_array_equal(levels,
                                  np.sort(data.train.images.reshape(len(batch), -1), axis=0))
  assert not np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))  # fresh noise
  # Evaluation noise is fixed per example: the same whatever the batch size.
  a = np.concatenate([b["image"] for b in data_lib.eval_dataset(data, "test", 100)])
  b = np.concatenate([b["image"] for b in data_lib.eval_dataset(data, "test", 7)])
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.floor(a * 17).astype(np.uint8), data.test.images)
  u = a * 17 - data.test.images
  assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_eval_pipeline_keeps_order_and_the_last_partial_batch():
  data = _digits()
  batches = list(data_lib.eval_dataset(data, "test", 100))
  assert [len(b["label"]) for b in batches] == [100, 100, 100, 59]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), data.test.labels)


def test_unknown_dataset_gives_one_clear_error():
  with pytest.raises(data_lib.DataError, match="--dataset=no_such_set is neither"):
    data_lib.load(config_lib.Config(dataset="no_such_set"))


def test_tfds_path_with_mocked_mnist(tmp_path):
  with tfds.testing.mock_data(num_examples=120):
    # mock_data's pixels are uniform noise, which --binarization=auto keeps gray: binarize.
    data = data_lib.load(config_lib.Config(dataset="mnist", data_dir=str(tmp_path),
                                           validation_fraction=0.25, binarization="dynamic"))
  assert data.image_shape == (28, 28, 1) and data.max_value == 255
  assert (len(data.train), len(data.validation), len(data.test)) == (90, 30, 120)
  assert set(np.unique(data.test.images)) <= {0, 255}


@pytest.mark.slow
def test_real_fashion_mnist_through_tfds(fashion_mnist_dir):
  data = data_lib.load(config_lib.Config(dataset="fashion_mnist", data_dir=fashion_mnist_dir))
  assert (len(data.train), len(data.validation), len(data.test)) == (50000, 10000, 10000)
  assert data.class_names[0] == "T-shirt/top"
  assert np.bincount(data.test.labels).tolist() == [1000] * 10


def test_corrupt_idx_file_is_named(tmp_path):
  bad = tmp_path / "train-images-idx3-ubyte.gz"
  with gzip.open(bad, "wb") as f:
    f.write(b"\x00\x00\x08\x03" + b"\x00" * 100)
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is not an IDX images file"):
    fashion_mnist_local.check_idx(str(bad), "images", 60000)
  not_gzip = tmp_path / "x.gz"
  not_gzip.write_bytes(b"plain")
  with pytest.raises(ValueError, match="not a readable gzip file"):
    fashion_mnist_local.check_idx(str(not_gzip), "labels", 10)


def test_corrupt_debian_files_give_a_data_error_naming_the_file(tmp_path, monkeypatch):
  source = tmp_path / "debian"
  source.mkdir()
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    with gzip.open(source / name, "wb") as f:
      f.write(b"\x00\x00\x08\x03 truncated")
  monkeypatch.setattr(fashion_mnist_local, "DEBIAN_DIR", str(source))
  with pytest.raises(data_lib.DataError, match="train-images-idx3-ubyte.gz is not an IDX images"):
    data_lib.load(config_lib.Config(dataset="fashion_mnist", data_dir=str(tmp_path / "tfds")))


@pytest.mark.slow
def test_a_corrupted_tfds_file_gives_a_data_error(fashion_mnist_dir, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  data_dir = tmp_path / "tfds"
  shutil.copytree(fashion_mnist_dir, data_dir)
  records = sorted(data_dir.rglob("*.tfrecord*"))
  assert records
  for record in records:
    record.write_bytes(record.read_bytes()[:5000])  # truncated
  with pytest.raises(data_lib.DataError, match="--dataset=fashion_mnist could not be loaded"):
    data_lib.load(config_lib.Config(dataset="fashion_mnist", data_dir=str(data_dir)))


def _idx_files(folder, counts):
  """Small valid IDX files under Debian's names: counts {"train": N, "test": M}."""
  folder.mkdir()
  for split, (images, labels, _) in fashion_mnist_local._FILES.items():  # pylint: disable=protected-access
    n = counts[split]
    with gzip.open(folder / images, "wb") as f:
      f.write(struct.pack(">iiii", 2051, n, 28, 28) + bytes(range(256)) * (n * 784 // 256)
              + bytes(n * 784 % 256))
    with gzip.open(folder / labels, "wb") as f:
      f.write(struct.pack(">ii", 2049, n) + bytes(i % 10 for i in range(n)))


def test_preparing_debian_files_says_nothing_is_downloaded(tmp_path, monkeypatch, capfd):
  """TFDS's own line said "Downloading and preparing dataset" (issue 33, item 5)."""
  _idx_files(tmp_path / "debian", {"train": 20, "test": 10})
  monkeypatch.setattr(fashion_mnist_local, "_FILES", {
      split: (images, labels, {"train": 20, "test": 10}[split])
      for split, (images, labels, _) in fashion_mnist_local._FILES.items()})  # pylint: disable=protected-access
  fashion_mnist_local.prepare(str(tmp_path / "tfds"), str(tmp_path / "debian"))
  out = capfd.readouterr().out
  assert "Download" not in out and "download" not in out.replace("nothing is downloaded", "")
  assert f"from Debian's local files in {tmp_path / 'debian'} (nothing is downloaded)" in out
  train = tfds.load("fashion_mnist", split="train", data_dir=str(tmp_path / "tfds"))
  assert len(list(train)) == 20


@pytest.mark.slow
@pytest.mark.parametrize("ci", ["", "true"])
def test_without_debian_fashion_mnist_the_skip_is_loud_and_fails_under_ci(tmp_path, ci):
  """README command 2 passed on a fresh machine while it skipped every real Fashion-MNIST test
  (issue 33, item 5)."""
  import os  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from conftest import FASHION_MNIST_SOURCE, ROOT  # pylint: disable=import-outside-toplevel
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "tests/test_data.py::test_real_fashion_mnist_through_tfds"], cwd=ROOT, capture_output=True,
      text=True, env={**os.environ, FASHION_MNIST_SOURCE: str(tmp_path), "CI": ci}, timeout=600)
  tail = proc.stdout.splitlines()[-3:]
  if ci:
    assert proc.returncode == 1 and "1 error" in tail[-1], proc.stdout[-2000:]
    assert "CI=true and Debian's dataset-fashion-mnist is not installed" in proc.stdout
  else:
    assert proc.returncode == 0 and "1 skipped" in tail[-1], proc.stdout[-2000:]
    assert "1 TESTS SKIPPED: NO REAL FASHION-MNIST" in tail[-3], tail
    assert "apt-get install dataset-fashion-mnist" in tail[-2], tail


def test_photo_patches_are_the_tiles_of_the_sample_photographs():
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  photos = datasets.load_sample_images().images
  patches = data_lib.photo_patches(32)
  assert patches.shape == (520, 32, 32, 3) and patches.dtype == np.uint8
  # reading order: tile (row 1, column 2) of the first photograph, then the second's first tile
  np.testing.assert_array_equal(patches[1 * 20 + 2], photos[0][32:64, 64:96])
  np.testing.assert_array_equal(patches[260], photos[1][:32, :32])
  assert data_lib.photo_patches(16).shape == (2080, 16, 16, 3)
  with pytest.raises(data_lib.DataError, match="size=0 must be an integer"):
    data_lib.photo_patches(0)
