"""Fashion-MNIST for the peer implementations, read with numpy alone (no TensorFlow, no tfvae).

The same data tfvae trains on: the IDX files of Debian's dataset-fashion-mnist (or any folder
holding the four standard files, gzipped or not), the first 50000 train images for training
(tfvae holds out the last 1/6 of the train split for validation), the 10000 test images
binarized once with a fixed seed for the test ELBO.
"""

import argparse
import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
NUM_TRAIN = 50000


def _read(folder, stem):
  for name in (stem, stem + ".gz"):
    path = os.path.join(folder, name)
    if os.path.exists(path):
      opener = gzip.open if name.endswith(".gz") else open
      with opener(path, "rb") as f:
        raw = f.read()
      ndim = raw[3]
      dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
      return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
  raise FileNotFoundError(f"{stem}[.gz] not in {folder} (apt-get install dataset-fashion-mnist)")


def load(folder=DEFAULT_DIR):
  """(train, test): uint8 [50000, 784] gray levels and float32 [10000, 784] 0/1 pixels."""
  train = _read(folder, "train-images-idx3-ubyte").reshape(-1, 784)[:NUM_TRAIN]
  test = _read(folder, "t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255
  rng = np.random.default_rng(1234)
  test = (rng.uniform(size=test.shape) < test).astype(np.float32)
  return np.ascontiguousarray(train), test


def arguments():
  """The peers' common flags: --epochs, --batch_size, --data_dir (add more, then parse)."""
  parser = argparse.ArgumentParser()
  parser.add_argument("--epochs", type=int, default=1)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--data_dir", default=DEFAULT_DIR)
  return parser
