"""On-disk copies of decoded TFDS splits, so a run reads arrays instead of decoding records.

Decoding a prepared TFDS dataset's records into numpy arrays takes seconds every run (Fashion-
MNIST: 70000 PNG-encoded images). After the first read, the decoded splits are written beside
TFDS's own files, to `DATA_DIR/NAME/VERSION/tfvae_arrays.npz` (uncompressed; 55 MB for
Fashion-MNIST), with a stamp of the prepared files they came from (each file's name, size and
modification time). A later read whose stamp matches loads that file instead (tens of ms); any
change to the prepared files (TFDS re-prepared them, another version) misses and rewrites it.
Only datasets TFDS has prepared on disk are cached (never a mocked or streamed one), and a
data_dir that cannot be written only costs the speed-up.
"""

import json
import os
import zipfile

from absl import logging
import numpy as np

from tfvae import atomic

FILENAME = "tfvae_arrays.npz"


def _stamp(prepared_dir):
  """JSON text naming every file of the prepared dataset with its size and mtime, or None."""
  try:
    entries = sorted((name, os.stat(os.path.join(prepared_dir, name)))
                     for name in os.listdir(prepared_dir) if name != FILENAME
                     and not name.startswith(FILENAME))
  except OSError:
    return None
  files = [[name, st.st_size, st.st_mtime_ns] for name, st in entries]
  return json.dumps(files) if any(".tfrecord" in name or ".array_record" in name
                                  for name, _, _ in files) else None


def read(prepared_dir, splits):
  """{split: (images, labels)} from the cache in `prepared_dir`, or None on a miss.

  Args:
    prepared_dir: TFDS's folder of the prepared dataset (builder.data_dir).
    splits: the split names wanted, e.g. ("train", "test").
  """
  stamp, path = _stamp(prepared_dir), os.path.join(prepared_dir, FILENAME)
  if stamp is None or not os.path.exists(path):
    return None
  try:
    with np.load(path) as cached:
      if str(cached["stamp"]) != stamp:
        return None
      return {s: (cached[f"{s}_images"], cached[f"{s}_labels"]) for s in splits}
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # torn or foreign
    logging.warning("Ignoring the array cache %s (%s); decoding the TFDS records.", path, e)
    return None


def write(prepared_dir, splits):
  """Caches {split: (images, labels)} in `prepared_dir` (best effort: a failure is logged)."""
  stamp = _stamp(prepared_dir)
  if stamp is None:
    return
  arrays = {f"{s}_{kind}": a for s, pair in splits.items() for kind, a in zip(
      ("images", "labels"), pair)}
  try:
    with atomic.replacing(os.path.join(prepared_dir, FILENAME), "wb") as f:
      np.savez(f, stamp=np.array(stamp), **arrays)
  except OSError as e:
    logging.info("Could not write the array cache in %s (%s).", prepared_dir, e)
