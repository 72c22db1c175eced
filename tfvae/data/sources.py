"""Datasets by name: scikit-learn's bundled 8x8 digits (no download) and any TFDS image dataset
(fashion_mnist prepared offline from Debian's files when needed), read into a `Source`."""

import difflib
import socket

import numpy as np

from tfvae.data import array_cache
from tfvae.data import arrays
from tfvae.data import fashion_mnist_local
from tfvae.errors import DataError

# Where TFDS downloads prepared datasets and most source files from; probed before a download.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
_PROBE_TIMEOUT_S = 3.0
_SPLITS = ("train", "test")


def digits():
  """scikit-learn's bundled 8x8 digits (1797 images, 16 gray levels) as one unsplit Source.

  Returns:
    Source of uint8 images [1797, 8, 8, 1] in 0..16 (max_value 16), labels 0..9; it has no
    test split, so `build` cuts one off (--test_fraction of a fixed permutation).
  """
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  images = digits.images.astype(np.uint8)[..., None]  # [1797, 8, 8, 1], 16 gray levels
  return arrays.Source(train=(images, digits.target.astype(np.int64)), max_value=16,
                       class_names=tuple(str(i) for i in range(10)), origin="digits")


def tfds_dataset(name, data_dir):
  """The train and test splits of TFDS image dataset `name`, read whole into memory.

  fashion_mnist is first prepared from Debian's dataset-fashion-mnist files when TFDS has not
  prepared it and they are installed (tfvae/data/fashion_mnist_local.py). The decoded splits of
  a prepared dataset are cached beside its files and read from there by later calls
  (tfvae/data/array_cache.py).

  Returns:
    Source with train and test splits of uint8 images [N, H, W, C] (max_value 255), labels
    int64 [N] (-1 when the dataset has none), origin `name`.

  Raises:
    DataError: naming --dataset / --data_dir, if the name is unknown, the data cannot be
      downloaded or prepared, or the images are not uint8 [N, H, W, C].
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  data_dir = data_dir or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except (tfds.core.registered.DatasetNotFoundError, ValueError):  # unknown, or not a name
    raise DataError(_unknown_dataset_message(tfds, name)) from None
  if (name == "fashion_mnist" and not builder.is_prepared()
      and fashion_mnist_local.available()):
    try:
      fashion_mnist_local.prepare(data_dir)
    except ValueError as e:  # a missing or corrupt source file, named in the message
      raise DataError(f"--dataset=fashion_mnist: {e}") from None
  if _would_download(builder) and not can_reach_download_host():
    hint = (" Offline, install Debian's copy: apt-get install dataset-fashion-mnist."
            if name == "fashion_mnist" else "")
    raise DataError(
        f"--dataset={name} is not prepared in --data_dir={data_dir or '~/tensorflow_datasets'} "
        f"and TFDS's download host {DOWNLOAD_HOST[0]} cannot be reached (offline?). Connect to "
        f"the internet once, or set --data_dir to a folder where TFDS has prepared it.{hint}")
  cached = array_cache.read(builder.data_dir, _SPLITS) if builder.is_prepared() else None
  if cached is not None:
    return arrays.Source(train=cached["train"], test=cached["test"], max_value=255,
                         class_names=_class_names(tfds, builder), origin=name)
  try:
    loaded = [_to_numpy(tfds, tfds.load(name, split=split, data_dir=data_dir))
              for split in _SPLITS]
  except Exception as e:  # pylint: disable=broad-except
    hint = (" Offline, install Debian's copy: apt-get install dataset-fashion-mnist."
            if name == "fashion_mnist" else "")
    raise DataError(
        f"--dataset={name} could not be loaded or downloaded into --data_dir="
        f"{data_dir or '~/tensorflow_datasets'} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''}). Connect to the internet once, or set "
        f"--data_dir to a folder where TFDS has prepared it.{hint}") from None
  splits = []
  for split in loaded:
    if "image" not in split:
      raise DataError(f"--dataset={name} has no 'image' feature (features: "
                      f"{sorted(builder.info.features)}).")
    images = split["image"]
    if images.dtype != np.uint8 or images.ndim != 4:
      raise DataError(f"--dataset={name}: images are {images.dtype} {images.shape}; "
                      "expected uint8 [N, H, W, C].")
    labels = split.get("label", np.full(len(images), -1)).astype(np.int64)
    splits.append((images, labels))
  if builder.is_prepared():
    array_cache.write(builder.data_dir, dict(zip(_SPLITS, splits)))
  return arrays.Source(train=splits[0], test=splits[1], max_value=255,
                       class_names=_class_names(tfds, builder), origin=name)


def _class_names(tfds, builder):
  """The names of the dataset's classes (a ClassLabel "label" feature), else ()."""
  label = builder.info.features["label"] if "label" in builder.info.features else None
  return tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else ()


def _would_download(builder):
  """True if loading `builder` downloads: not prepared, and TFDS's own download_and_prepare
  (tfds.testing.mock_data replaces it with one that downloads nothing)."""
  prepare = type(builder).download_and_prepare
  return not builder.is_prepared() and prepare.__module__.startswith("tensorflow_datasets.core")


def can_reach_download_host(timeout=_PROBE_TIMEOUT_S):
  """True if a TCP connection to DOWNLOAD_HOST opens within `timeout` seconds.

  Offline, TFDS's downloader retries for minutes before it fails; this probe answers in
  seconds (at once where the name does not resolve).
  """
  try:
    socket.create_connection(DOWNLOAD_HOST, timeout=timeout).close()
    return True
  except OSError:
    return False


def _unknown_dataset_message(tfds, name):
  """One line for a --dataset that TFDS does not know, with the closest names it does."""
  try:
    known = tfds.list_builders(with_community_datasets=False)
  except Exception:  # pylint: disable=broad-except
    known = []
  close = difflib.get_close_matches(name.lower().replace("-", "_"), ["digits", *known], n=3,
                                    cutoff=0.8)
  suggestion = f" Did you mean {' or '.join(close)}?" if close else ""
  return (f"--dataset={name} is neither 'digits', a TFDS dataset name (see "
          f"https://www.tensorflow.org/datasets/catalog) nor an existing folder or .npz, .npy or "
          f".csv file.{suggestion}")


def _to_numpy(tfds, dataset):
  """All of a TFDS split as a dict of numpy arrays ("image", "label").

  With a known cardinality it is one batch (what tfds.load(batch_size=-1) does). Iterating
  instead was measured to halve the speed of the training that follows in the same process
  (18,000 -> 8,000 examples/s, fashion_mnist MLP), so iteration is only the fallback for an
  unknown cardinality (tfds.testing.mock_data, where batch_size=-1 aborts the process).
  """
  num = int(dataset.cardinality())
  if num > 0:
    batches = [tfds.as_numpy(dataset.batch(num).get_single_element())]
  else:
    batches = list(tfds.as_numpy(dataset.batch(4096)))
  return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]
          if key in ("image", "label")}
