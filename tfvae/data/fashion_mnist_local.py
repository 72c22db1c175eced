"""Prepares TFDS `fashion_mnist` offline from the IDX files of Debian's `dataset-fashion-mnist`.

The Debian files are the real Fashion-MNIST (60000 train / 10000 test), but their gzip headers
differ from the upstream download, so TFDS's stock builder rejects them by checksum. The builder
below is TFDS's own `FashionMNIST` with only `_split_generators` changed to read the local files;
once it has prepared the dataset in a data_dir, plain `tfds.load("fashion_mnist", data_dir=...)`
reads it, exactly as for a user who downloaded it.
"""

import gzip
import os
import struct
import tempfile

import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_IDX_MAGIC = {"images": 2051, "labels": 2049}


def available(source_dir=None):
  """True if all four IDX files are present in `source_dir` (default DEBIAN_DIR)."""
  source_dir = source_dir or DEBIAN_DIR
  return all(os.path.exists(os.path.join(source_dir, f))
             for images, labels, _ in _FILES.values() for f in (images, labels))


def check_idx(path, kind, num_examples):
  """Reads a gzip-compressed IDX file and checks its magic number and size.

  Args:
    path: a gzip-compressed IDX file.
    kind: "images" (28x28 uint8 each) or "labels" (uint8 each).
    num_examples: the number of items the file must hold.

  Returns:
    The decompressed bytes.

  Raises:
    ValueError: naming the file, if it is not a gzip IDX file of that kind and size.
  """
  try:
    with gzip.open(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f"{path} is not a readable gzip file ({e}).") from None
  header = 16 if kind == "images" else 8
  expected = header + num_examples * (28 * 28 if kind == "images" else 1)
  magic = struct.unpack(">i", data[:4])[0] if len(data) >= 4 else None
  if magic != _IDX_MAGIC[kind] or len(data) != expected:
    raise ValueError(f"{path} is not an IDX {kind} file of {num_examples} items "
                     f"(magic {magic}, {len(data)} bytes; expected magic {_IDX_MAGIC[kind]}, "
                     f"{expected} bytes). Reinstall: apt-get install --reinstall "
                     "dataset-fashion-mnist.")
  return data


class _LocalFashionMNIST(tfds_mnist.FashionMNIST, skip_registration=True):
  """TFDS's FashionMNIST, reading Debian's local files instead of downloading."""
  name = "fashion_mnist"
  source_dir = DEBIAN_DIR
  extract_dir = None  # Set by prepare(): a temporary folder for the decompressed files.

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    out_dir = self.extract_dir
    generators = []
    for split, (images, labels, n) in _FILES.items():
      paths = {}
      for kind, name in (("images", images), ("labels", labels)):
        data = check_idx(os.path.join(self.source_dir, name), kind, n)
        paths[kind] = os.path.join(out_dir, name[:-3])
        with open(paths[kind], "wb") as f:
          f.write(data)
      generators.append(tfds.core.SplitGenerator(
          name=split, gen_kwargs=dict(num_examples=n, data_path=paths["images"],
                                      label_path=paths["labels"])))
    return generators

  # TFDS's own lines say "Downloading and preparing dataset ..." and "... downloaded and
  # prepared": nothing is downloaded here, so say what happens instead.
  def _log_download_bytes(self):
    print(f"Preparing TFDS fashion_mnist from Debian's local files in {self.source_dir} "
          f"(nothing is downloaded) into {self.data_dir} ...", flush=True)

  def _log_download_done(self):
    print(f"Prepared TFDS fashion_mnist in {self.data_dir} from {self.source_dir}; later "
          "runs read it from there.", flush=True)


def prepare(data_dir, source_dir=None):
  """Prepares TFDS fashion_mnist in `data_dir` from `source_dir` (default DEBIAN_DIR), offline.

  Raises:
    ValueError: if a source file is missing, corrupt or of the wrong size.
  """
  builder = _LocalFashionMNIST(data_dir=data_dir or None)
  builder.source_dir = source_dir or DEBIAN_DIR
  with tempfile.TemporaryDirectory() as extract_dir:
    builder.extract_dir = extract_dir
    builder.download_and_prepare()
