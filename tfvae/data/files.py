"""Your own data from disk: a folder of images, an `.npz`/`.npy` array file, a `.csv` table.

`--dataset=PATH` reads PATH with `from_path`; the Python API calls `from_directory` and
`from_file` directly. Each returns a `tfvae.data.arrays.Source` (checked as `from_arrays` checks
arrays) whose origin is the absolute path, so every later command reads the same file again.

Folders: PNG/JPEG/BMP/GIF files read with Pillow, as gray (mode L) when every file is gray and
RGB otherwise, 8 bits per channel: 16-bit PNGs keep their high byte (v // 256, 65535 -> 255),
which is what Pillow does with 16-bit RGB PNGs. Class subfolders give labels (sorted names are
classes 0..K-1); image files directly in the folder are unlabeled (label -1), also beside class
subfolders (a log line says how many). Optional `train/`, `validation/` and `test/` subfolders
give the splits (each then holds the class subfolders or the files); an image beside them is
refused, as it belongs to no split.
"""

import csv
import dataclasses
import os
from typing import Optional, Sequence, Union
import zipfile
import zlib

from absl import logging
import numpy as np

from tfvae.data import arrays
from tfvae.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
ARRAY_EXTENSIONS = (".npz", ".npy", ".csv")
SPLITS = ("train", "validation", "test")


def is_path(dataset):
  """True if --dataset names a folder or file rather than a dataset name: it exists, has a file
  extension tfvae reads, or starts like a path (/, ., ~). A TFDS name with a version or config,
  e.g. cifar10/3.0.2, stays a name."""
  return (os.path.exists(dataset) or dataset.lower().endswith(ARRAY_EXTENSIONS)
          or dataset.startswith(("/", ".", "~")))


def from_path(path, image_size=None, max_value=None, label_column="", condition_columns=""):
  """The Source of --dataset=PATH: a folder of images, or an .npz, .npy or .csv file.

  Raises:
    DataError: naming --dataset=PATH, if it does not exist or is no folder or known file.
  """
  path = os.path.expanduser(path)
  if os.path.isdir(path):
    if condition_columns:
      raise DataError(f"--condition_columns={condition_columns}: --dataset={path} is a folder "
                      "of images, not a .csv table.")
    return from_directory(path, image_size)
  if not os.path.exists(path):
    raise DataError(f"--dataset={path} does not exist (a folder of images, or an .npz, .npy or "
                    ".csv file).")
  return from_file(path, max_value=max_value, label_column=label_column,
                   condition_columns=condition_columns)


def _image_files(folder):
  return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def _labeled_files(folder, class_names=None):
  """(files, labels, class names) of one folder: the images of its class subfolders (labeled)
  and its own image files (label -1)."""
  subfolders = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))
                      and not d.startswith("."))
  loose = _image_files(folder)
  if not subfolders:
    return loose, [-1] * len(loose), ()
  names = tuple(class_names or subfolders)
  unknown = sorted(set(subfolders) - set(names))
  if unknown:
    raise DataError(f"{folder}: class folders {unknown} are not among the train split's "
                    f"classes {list(names)}.")
  if loose:
    logging.info("%s: %d image files beside the class folders are read unlabeled (label -1).",
                 folder, len(loose))
  files, labels = loose, [-1] * len(loose)
  for d in subfolders:
    found = _image_files(os.path.join(folder, d))
    files += found
    labels += [names.index(d)] * len(found)
  return files, labels, names


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # how Pillow opens 16-bit gray


def _read_image(path, what):
  """The Pillow image of `path`, 16-bit gray reduced to 8-bit L (v // 256).

  Raises:
    DataError: naming the file: unreadable, over Pillow's size limit, or gray values beyond
      16 bits.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(path) as img:
      img.load()
      img = img.copy()
  except Image.DecompressionBombError as e:
    raise DataError(f"{what}: {path} is too large to decode ({e}): shrink it first (tfvae reads "
                    "every image whole; --image_size resizes only after reading).") from None
  except (OSError, ValueError) as e:
    raise DataError(f"{what}: {path} is not a readable image ({e}).") from None
  if img.mode not in _SIXTEEN_BIT_MODES:
    return img
  x = np.asarray(img)
  if x.min() < 0 or x.max() > 65535:
    raise DataError(f"{what}: {path} is a {img.mode} image with values {x.min()}..{x.max()}; "
                    "expected 8- or 16-bit gray (0..65535).")
  return Image.fromarray((x.astype(np.int64) >> 8).astype(np.uint8), "L")


def _read_images(files, image_size, what):
  """uint8 [N, H, W, C] of `files` (C = 1 if all are gray, else 3), resized to image_size."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  images = [_read_image(path, what) for path in files]
  first = None
  gray = all(img.mode in ("L", "1", "LA") for img in images)
  out = []
  for path, img in zip(files, images):
    img = img.convert("L" if gray else "RGB")
    if image_size:
      if img.size != (image_size[1], image_size[0]):
        img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
    elif first is None:
      first = (path, img.size)
    elif img.size != first[1]:
      raise DataError(f"{what}: {first[0]} is {first[1][0]}x{first[1][1]} but {path} is "
                      f"{img.size[0]}x{img.size[1]} (width x height): set --image_size=H,W to "
                      "resize every image.")
    out.append(np.asarray(img, np.uint8))
  x = np.stack(out)
  return x[..., None] if x.ndim == 3 else x


def from_directory(path: Union[str, "os.PathLike[str]"],
                   image_size: Optional[Sequence[int]] = None) -> arrays.Source:
  """A Source from a folder of images (layout in the module docstring).

  Args:
    path: the folder.
    image_size: optional (H, W): every image is resized to it (bilinear); without it all images
      must have one size.

  Returns:
    Source of uint8 images [N, H, W, C] (max_value 255; a 16-bit PNG keeps its high byte),
    origin the absolute path, reader_options {"image_size": (H, W) or ()},
    labels from class folders (-1 for the files directly in a folder, beside class folders or
    not), with the splits the folder has; each split's files in a fixed shuffled order (seed 0),
    so that a validation or test split cut from it holds every class.

  Raises:
    DataError: naming the folder or file: no images, an unreadable file, an image over Pillow's
      size limit (Image.MAX_IMAGE_PIXELS, a guard against decompression bombs), images of
      different sizes without image_size, a split with classes the train split lacks, image
      files beside train/, validation/ or test/.
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise DataError(f"--dataset={path} is not a folder.")
  if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
    raise DataError(f"--image_size={','.join(map(str, image_size))} must be two positive "
                    "integers H,W.")
  present = [s for s in SPLITS if os.path.isdir(os.path.join(path, s))]
  if present and "train" not in present:
    raise DataError(f"--dataset={path} has {'/'.join(present)}/ but no train/ folder.")
  if present and (loose := _image_files(path)):
    raise DataError(f"--dataset={path}: {len(loose)} image files lie beside "
                    f"{'/, '.join(present)}/ and belong to no split (first: {loose[0]}): move "
                    "them into one.")
  folders = {s: os.path.join(path, s) for s in present} or {"train": path}
  parts, names = {}, None
  for split, folder in folders.items():
    files, labels, found_names = _labeled_files(folder, names)
    names = names if names is not None else found_names
    if not files:
      raise DataError(f"--dataset={path}: {folder} holds no image files "
                      f"({', '.join(IMAGE_EXTENSIONS)}), directly or in class subfolders.")
    # Files are listed class by class: a fixed shuffle, so that a held-out tail (validation)
    # or a cut (test) is not one class.
    order = np.random.default_rng(0).permutation(len(files))
    parts[split] = (_read_images([files[i] for i in order], image_size, f"--dataset={path}"),
                    np.asarray(labels)[order])
  shapes = {s: x.shape[1:] for s, (x, _) in parts.items()}
  if len(set(shapes.values())) > 1:
    raise DataError(f"--dataset={path}: the splits have images of different shapes {shapes}: "
                    "set --image_size=H,W.")
  source = arrays.from_arrays(*parts["train"], *parts.get("test", (None, None)),
                              *parts.get("validation", (None, None)), max_value=255,
                              class_names=names or (), origin=path)
  return dataclasses.replace(source, reader_options={"image_size": tuple(image_size or ())})


_NPZ_KEYS = {"train": (("x_train", "y_train"), ("images", "labels"), ("x", "y")),
             "test": (("x_test", "y_test"),), "validation": (("x_validation", "y_validation"),
                                                            ("x_val", "y_val"))}


def from_file(path: Union[str, "os.PathLike[str]"], max_value: Optional[int] = None,
              label_column: str = "", condition_columns: str = "") -> arrays.Source:
  """A Source from an array file.

  Args:
    path: `.npz` with x_train (or images, or x) and optionally y_train (labels, y), x_test,
      y_test, x_validation (x_val), y_validation (y_val); `.npy` holding one array (unlabeled);
      `.csv` with a header row and one numeric column per feature (vectors [N, D]).
    max_value: integer images other than uint8: the value that means white.
    label_column: .csv only: the header of the column holding integer labels ("" for none).
    condition_columns: .csv only: comma-separated headers of the columns holding each row's
      real covariates, the conditions c float32 [N, C] of the conditional VAE ("" for none);
      taken out of the features, in the order named.

  Returns:
    Source whose origin is the absolute path, reader_options {"max_value": max_value or 0,
    "label_column": label_column, "condition_columns": condition_columns} (what a run
    records, so later commands read it alike).

  Raises:
    DataError: naming the file: unknown extension, a damaged or cut-short file (an .npz that is
      no zip archive or fails its CRC), missing keys, a CSV column that is not numeric or holds
      NaN, infinite or huge values (beyond +-1e15, arrays.MAX_FEATURE; with the column and the
      first offending row), a --label_column that is not in the header or named twice, a
      --condition_columns column that is not in the header, named twice (in the header or the
      flag) or is the --label_column, condition columns for a file that is not a .csv, and
      everything `from_arrays` checks.
  """
  path = os.path.abspath(path)
  if condition_columns and not path.lower().endswith(".csv"):
    raise DataError(f"--condition_columns={condition_columns}: --dataset={path} is not a .csv "
                    "table (give conditions of arrays with tfvae.data.from_arrays(..., "
                    "conditions=)).")
  source = _read_file(path, max_value, label_column, condition_columns)
  return dataclasses.replace(source, reader_options={"max_value": int(max_value or 0),
                                                     "label_column": label_column,
                                                     "condition_columns": condition_columns})


def _read_file(path, max_value, label_column, condition_columns=""):
  """from_file, before its reader options are recorded."""
  what = f"--dataset={path}"
  lower = path.lower()
  try:
    if lower.endswith(".npy"):
      return arrays.from_arrays(np.load(path, allow_pickle=False), max_value=max_value,
                                origin=path)
    if lower.endswith(".npz"):
      if not zipfile.is_zipfile(path):
        raise DataError(f"{what} is not an .npz file (no zip archive, as np.savez writes; "
                        "damaged, cut short, or another format).")
      with np.load(path, allow_pickle=False) as f:
        found = {}
        for split, options in _NPZ_KEYS.items():
          for x_key, y_key in options:
            if x_key in f:
              found[split] = (f[x_key], f[y_key] if y_key in f else None)
              break
        if "train" not in found:
          raise DataError(f"{what} has keys {sorted(f.keys())}; expected x_train (optionally "
                          "y_train, x_test, y_test, x_validation, y_validation) or images "
                          "(optionally labels).")
        class_names = tuple(str(n) for n in f["class_names"]) if "class_names" in f else ()
      return arrays.from_arrays(*found["train"], *found.get("test", (None, None)),
                                *found.get("validation", (None, None)), max_value=max_value,
                                class_names=class_names, origin=path)
    if lower.endswith(".csv"):
      return _from_csv(path, label_column, condition_columns)
  except DataError as e:
    message = str(e)
    raise DataError(message if message.startswith(what) else f"{what}: {message}") from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f"{what} could not be read ({type(e).__name__}: {e}); is it damaged?") from None
  raise DataError(f"{what}: unknown file type; tfvae reads folders of images and .npz, .npy "
                  "and .csv files.")


def _column(header, flag, value, name):
  """The index of column `name` in `header`, else DataError naming --flag=value and it."""
  what = f"--{flag}={value}" + ("" if value == name else f": {name!r}")
  if name not in header:
    raise DataError(f"{what} is not a column (columns: {', '.join(header)}).")
  if header.count(name) > 1:
    columns = [j + 1 for j, n in enumerate(header) if n == name]
    raise DataError(f"{what} names {len(columns)} columns (columns "
                    f"{', '.join(map(str, columns))} of the header): rename all but one.")
  return header.index(name)


def _condition_indices(header, label_column, condition_columns):
  """[column index] of --condition_columns, checked (DataError naming the flag and column)."""
  if not condition_columns:
    return []
  names = [n.strip() for n in condition_columns.split(",")]
  flag = f"condition_columns={condition_columns}"
  for i, name in enumerate(names):
    if not name:
      raise DataError(f"--{flag}: an empty column name; expected comma-separated headers.")
    if name in names[:i]:
      raise DataError(f"--{flag}: {name!r} is named twice.")
    if label_column and name == label_column:
      raise DataError(f"--{flag}: {name!r} is the --label_column; a column is a label or a "
                      "condition, not both.")
  return [_column(header, "condition_columns", condition_columns, name) for name in names]


def _from_csv(path, label_column, condition_columns=""):
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  if len(rows) < 2:
    raise DataError("expected a header row and at least one row of values.")
  header, body = rows[0], rows[1:]
  if label_column:
    _column(header, "label_column", label_column, label_column)
  kept = _condition_indices(header, label_column, condition_columns)
  values = np.empty((len(body), len(header)), np.float64)
  for i, row in enumerate(body):
    if len(row) != len(header):
      raise DataError(f"row {i + 2} has {len(row)} values; the header has {len(header)}.")
    for j, cell in enumerate(row):
      try:
        values[i, j] = float(cell)
      except ValueError:
        raise DataError(f"column {header[j]!r} is not numeric (row {i + 2}: {cell!r}); encode "
                        "it as numbers or drop it.") from None
  bad = arrays.unusable_features(values)
  if bad.any():
    i, j = map(int, np.argwhere(bad)[0])
    raise DataError(f"column {header[j]!r}, row {i + 2}: {body[i][j]!r} ({int(bad.sum())} such "
                    f"values) is {arrays.unusable_reason(values[i, j])}.")
  taken = kept + ([header.index(label_column)] if label_column else [])
  features = np.delete(values, taken, axis=1)
  if not features.shape[1]:
    raise DataError("no feature column is left once --label_column and --condition_columns "
                    "are taken out.")
  return arrays.from_arrays(features, values[:, header.index(label_column)]
                            if label_column else None, origin=path,
                            conditions=values[:, kept] if kept else None)
