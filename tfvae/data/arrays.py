"""A dataset's arrays before tfvae splits or binarizes them (`Source`), from numpy, and its fingerprint.

Every way in (digits, TFDS, a folder, a file, numpy arrays in Python) ends in a `Source`;
`tfvae.data.dataset.build(source, config)` then makes the `Data` a run trains on, so splits,
fixed-seed binarization and the checks are the same whichever way the data came.

Two kinds of data:
  images:  integer pixels, uint8 [N, H, W, C] in [0, max_value] (max_value 255 for uint8 input;
           float images in [0, 1] are stored as round(x * max_value));
  vectors: float32 [N, D] feature vectors, any real values (tabular data), trained with the MLP.
"""

import dataclasses
import hashlib
from typing import Optional, Sequence

from absl import logging
import numpy as np

from tfvae.errors import DataError

IN_MEMORY = "in-memory arrays"  # config.data.dataset of a run trained from arrays given in Python
_FINGERPRINT_ROWS = 256  # rows hashed per split: enough to notice changed data, fast on 70000
# Vector features beyond this magnitude are refused: tfvae trains in float32 (largest 3.4e38), and
# the squares that --standardize and the likelihoods take of 1e15, summed over a million rows, stay
# below it (1e36); 1e38 trains to NaN.
MAX_FEATURE = 1e15


@dataclasses.dataclass(frozen=True)
class Source:
  """Raw splits of a dataset. Labels are int64 [N], -1 where unknown.

  Attributes:
    train: (x, labels) or (x, labels, conditions); x uint8 [N, H, W, C] (images) or float32
      [N, D] (vectors); conditions float32 [N, C], finite: real covariates each example is
      given with (the conditional VAE's c; docs/conditional.md). Either every split has
      conditions (of one width C) or none.
    test: as train, or None: `build` then cuts a test split off train (--test_fraction).
    validation: as train, or None: `build` then cuts it off train (--validation_fraction).
    max_value: the pixel value that means 1.0 (255; 16 for digits); 1 for vectors.
    class_names: names of the labels 0..K-1, or () when unnamed.
    origin: where it came from: "digits", a TFDS name, an absolute path, or IN_MEMORY.
    reader_options: {Config field: value} of the options the origin was read with
      (`from_directory`: image_size; `from_file`: max_value, label_column,
      condition_columns; {} for names and arrays). A run records them with the origin in config.json, so every later command reads
      the origin as training did.
  """
  train: tuple
  test: tuple = None
  validation: tuple = None
  max_value: int = 255
  class_names: tuple = ()
  origin: str = IN_MEMORY
  reader_options: dict = dataclasses.field(default_factory=dict)

  @property
  def kind(self):
    """"images" (x is [N, H, W, C]) or "vectors" (x is [N, D])."""
    return "vectors" if self.train[0].ndim == 2 else "images"

  def parts(self):
    """{"train": (x, y) or (x, y, conditions), ...} of the splits the source has."""
    return {name: part for name, part in (("train", self.train), ("validation", self.validation),
                                          ("test", self.test)) if part is not None}

  @property
  def condition_dim(self):
    """C, the width of the conditions (0 when the examples have none)."""
    return int(self.train[2].shape[1]) if len(self.train) > 2 else 0

  def fingerprint(self):
    """A short string that changes when the data does: per split its shape, dtype and a SHA-1
    of up to 256 evenly spaced rows (and their labels and conditions; with conditions the
    split's entry also names their width, "+C")."""
    pieces = []
    for name, (x, y, *conditions) in self.parts().items():
      rows = np.unique(np.linspace(0, len(x) - 1, min(len(x), _FINGERPRINT_ROWS)).astype(int))
      digest = hashlib.sha1(np.ascontiguousarray(x[rows]).tobytes())
      digest.update(np.ascontiguousarray(y[rows]).tobytes())
      shape = "x".join(str(d) for d in x.shape)
      if conditions:
        digest.update(np.ascontiguousarray(conditions[0][rows]).tobytes())
        shape += f"+{conditions[0].shape[1]}"
      pieces.append(f"{name} {shape} {x.dtype} {digest.hexdigest()[:12]}")
    return "; ".join(pieces)


def _labels(labels, num, what):
  if labels is None:
    return np.full(num, -1, np.int64)
  labels = np.asarray(labels)
  if labels.shape != (num,):
    raise DataError(f"{what}: labels have shape {labels.shape}; expected [{num}], one per "
                    "example.")
  if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(
      labels)):
    labels = labels.astype(np.int64)
  if labels.dtype.kind not in "iu":
    raise DataError(f"{what}: labels are {labels.dtype}, not integers (class indices 0..K-1; "
                    "-1 for unknown).")
  if labels.size and labels.min() < -1:
    raise DataError(f"{what}: label {labels.min()} is not a class index (0..K-1, or -1 for "
                    "unknown).")
  return labels.astype(np.int64)


def _conditions(conditions, num, width, what):
  """conditions as float32 [num, C] (C = width when given), else DataError naming `what`."""
  c = np.asarray(conditions)
  if c.ndim == 1:
    c = c[:, None]
  if c.ndim != 2 or len(c) != num or (width is not None and c.shape[1] != width) or (
      c.shape[1] < 1):
    expected = f"[{num}, {width if width is not None else 'C'}]"
    raise DataError(f"{what}: conditions have shape {c.shape}; expected {expected} (one row of "
                    "C >= 1 real covariates per example; [N] for C = 1).")
  if c.dtype.kind not in "iuf":
    raise DataError(f"{what}: conditions are {c.dtype}, not numbers.")
  bad = ~np.isfinite(c.astype(np.float64))
  if bad.any():
    row, column = map(int, np.argwhere(bad)[0])
    raise DataError(f"{what}: condition {column} of example {row} is {c[row, column]:g} "
                    f"({int(bad.sum())} such values); conditions must be finite.")
  return c.astype(np.float32)


def unusable_features(x):
  """bool [N, D]: where the features x [N, D] are NaN, infinite or beyond +-MAX_FEATURE."""
  with np.errstate(invalid="ignore"):
    return ~(np.abs(x) <= MAX_FEATURE)


def unusable_reason(value):
  """Why a feature flagged by `unusable_features` cannot be trained on, and what to do."""
  if not np.isfinite(value):
    return "NaN or infinite: remove or impute such values first"
  return (f"beyond +-{MAX_FEATURE:g}, where float32 training overflows: rescale the feature "
          "(e.g. divide it by a power of ten, or take its logarithm)")


def checked_vectors(x, what):
  """x [N, D] once every feature is a finite number within +-MAX_FEATURE; else DataError naming
  `what`, the first bad feature and its example."""
  if x.dtype.kind not in "iuf":
    raise DataError(f"{what}: {x.dtype} values are not numbers (e.g. None); expected numeric "
                    "vectors [N, D].")
  bad = unusable_features(x)
  if bad.any():
    row, column = map(int, np.argwhere(bad)[0])
    raise DataError(f"{what}: feature {column} of example {row} is {x[row, column]:g} "
                    f"({int(bad.sum())} such values), "
                    f"{unusable_reason(x[row, column])}.")
  return x


def checked_pixels(x, max_value, what):
  """x once its values are pixels, else DataError naming `what` and the range found.

  The one check of pixel values that `from_arrays`, `tfvae.TrainedModel` (elbo, encode, ...) and
  the SavedModel's input contract (tfvae/serving_inputs.py, which checks the same [0, 1] in its
  graph) share. Pixels are integers in 0..max_value (any integer dtype), bool (0/1), or floats in
  [0, 1] (the pixel divided by its maximum, e.g. uint8 / 255); NaN, inf, None (an object array)
  and floats outside [0, 1] are refused. An empty array passes.

  Args:
    x: numpy array of images, any shape.
    max_value: int, the integer pixel value that means 1.0 (255; 16 for digits).
    what: the argument's name in messages (e.g. "x", "x_train").

  Returns:
    x itself.

  Raises:
    DataError: integers outside 0..max_value, floats outside [0, 1] or not finite, other dtypes.
  """
  if x.dtype.kind == "b" or not x.size:
    return x
  if x.dtype.kind in "iu":
    if x.min() < 0 or x.max() > max_value:
      raise DataError(f"{what}: pixel values {x.min()}..{x.max()} are outside 0..{max_value} "
                      "(--max_value: the pixel value that means white).")
    return x
  if x.dtype.kind != "f":
    raise DataError(f"{what}: {x.dtype} values (e.g. None) are not pixels: expected integer "
                    f"pixels 0..{max_value} or floats in [0, 1].")
  finite = np.isfinite(x)
  if not finite.all():
    raise DataError(f"{what}: {int((~finite).sum())} of its {x.size} values are NaN or infinite; "
                    "pixels must be finite, in [0, 1] as floats.")
  low, high = x.min(), x.max()
  if low < 0 or high > 1:
    raise DataError(
        f"{what}: float pixels range from {low:g} to {high:g}, outside [0, 1]. Pass floats in "
        "[0, 1] (each pixel divided by the value that means white, e.g. x / 255), or whole "
        "pixel values as integers (e.g. x.astype(np.uint8) for floats holding 0..255; with "
        "max_value=16 for 0..16).")
  return x


def unit_pixels(x, max_value, what):
  """float32 pixels in [0, 1] of images as a user holds them (what the SavedModel takes).

  Args:
    x: numpy array of images, any shape: integer pixels 0..max_value (divided by max_value),
      bool (0/1) or floats in [0, 1] (kept as they are).
    max_value: int, the integer pixel value that means 1.0.
    what: the argument's name in messages.

  Returns:
    float32 numpy array of x's shape, values in [0, 1].

  Raises:
    DataError: as `checked_pixels`.
  """
  x = checked_pixels(x, max_value, what)
  if x.dtype.kind in "iu":
    return (x / max_value).astype(np.float32)
  return x.astype(np.float32)


def _examples(x, max_value, what):
  """(x as stored, max_value) after the checks of `from_arrays`."""
  x = np.asarray(x)
  if x.ndim < 2 or not len(x):
    raise DataError(f"{what}: {x.dtype} array of shape {x.shape}; expected images [N, H, W] or "
                    "[N, H, W, C], or vectors [N, D], with N >= 1.")
  if x.dtype.kind in "iuf" and x.ndim in (3, 4):  # images
    x = x[..., None] if x.ndim == 3 else x
    if x.shape[-1] not in (1, 3, 4):
      raise DataError(f"{what}: images of shape {x.shape[1:]} have {x.shape[-1]} channels; "
                      "expected [H, W] or [H, W, C] with C 1 (gray), 3 (RGB) or 4 (RGBA).")
    floats = x.dtype.kind == "f"
    if max_value is None:
      if x.dtype != np.uint8 and not floats:
        raise DataError(f"{what}: {x.dtype} images with values {x.min()}..{x.max()}: say which "
                        "value means white (--max_value, e.g. 16 for 0..16 pixels, or 255).")
      max_value = 255
      if not floats and x.max() < 128:
        logging.warning("%s: uint8 pixels reach only %d, read as 0..255 (%d is %.2f). If %d "
                        "means white, set --max_value=%d.", what, x.max(), x.max(),
                        x.max() / 255, x.max(), x.max())
    if not 1 <= max_value <= 255:
      raise DataError(f"{what}: --max_value={max_value} must be in 1..255.")
    checked_pixels(x, max_value, what)
    if floats:  # [0, 1] -> the nearest of max_value + 1 levels (exact for uint8 / 255)
      x = np.round(x.astype(np.float64) * max_value)
    return x.astype(np.uint8), max_value
  if x.ndim == 2 and x.dtype.kind in "iuf":  # vectors
    return checked_vectors(x, what).astype(np.float32), 1
  raise DataError(f"{what}: {x.dtype} array of shape {x.shape}; expected images [N, H, "
                  "W(, C)] (integer pixels, or floats in [0, 1]) or numeric vectors [N, D].")


def from_arrays(x_train: np.ndarray, y_train: Optional[np.ndarray] = None,
                x_test: Optional[np.ndarray] = None, y_test: Optional[np.ndarray] = None,
                x_validation: Optional[np.ndarray] = None,
                y_validation: Optional[np.ndarray] = None, max_value: Optional[int] = None,
                class_names: Sequence[str] = (), origin: str = IN_MEMORY,
                conditions: Optional[np.ndarray] = None,
                conditions_test: Optional[np.ndarray] = None,
                conditions_validation: Optional[np.ndarray] = None) -> "Source":
  """A Source from numpy arrays (what `tfvae.fit(config, workdir, data=...)` takes).

  Args:
    x_train: images [N, H, W] or [N, H, W, C] (C = 1, 3 or 4), or numeric vectors [N, D]
      (tabular data; stored as float32). Images are integer pixels 0..max_value, or floats in
      [0, 1] (e.g. uint8 / 255), which are stored as uint8 round(x * max_value) (max_value
      default 255: exact for images that were uint8 / 255; other floats move by at most
      half a level, 1 / (2 max_value)). Floats that hold whole pixel values (0..255) must be cast to integers first.
    y_train: optional integer labels [N] (class indices 0..K-1, -1 for unknown).
    x_test, y_test: an optional test split; without one, `build` cuts it off train
      (--test_fraction, a fixed permutation).
    x_validation, y_validation: an optional validation split; without one, `build` holds out
      the last --validation_fraction of train.
    max_value: images only: the integer pixel value that means white (1.0), in 1..255.
      Default: 255 for uint8 and float images; required for other integer dtypes. For float
      images, the levels they are quantized to (e.g. 16 for digits / 16).
    class_names: optional names of the classes 0..K-1.
    origin: recorded as the run's dataset (a path for files; IN_MEMORY here).
    conditions: optional real covariates of the train examples, float [N, C] (or [N] for
      C = 1), finite: each example's condition c for the conditional VAE (--model=cvae; every
      batch then carries batch["condition"] float32 [B, C]). conditions_test,
      conditions_validation: those of the other splits given, required with them when
      `conditions` is given (of the same width C).

  Returns:
    Source.

  Raises:
    DataError: naming the array and what is wrong: not images or vectors, shapes of splits
      that differ, NaN, infinite or huge features (beyond +-MAX_FEATURE, 1e15), integer pixels
      outside 0..max_value, float pixels outside [0, 1] or not finite (the message gives the
      range found), labels that are not integers or do not match the examples, conditions that
      are not finite numbers [N, C], given for some splits only or of different widths.
  """
  train_x, max_value = _examples(x_train, max_value, "x_train")
  parts = {"train": (train_x, _labels(y_train, len(train_x), "y_train"))}
  width = None
  if conditions is not None:
    c = _conditions(conditions, len(train_x), None, "conditions")
    parts["train"] += (c,)
    width = c.shape[1]
  for name, x, y, c in (("test", x_test, y_test, conditions_test),
                        ("validation", x_validation, y_validation, conditions_validation)):
    if x is None:
      for given, what in ((y, "y"), (c, "conditions")):
        if given is not None:
          raise DataError(f"{what}_{name} is given without x_{name}.")
      continue
    x, _ = _examples(x, max_value, f"x_{name}")
    if x.shape[1:] != train_x.shape[1:]:
      raise DataError(f"x_{name} has examples of shape {x.shape[1:]}, x_train of "
                      f"{train_x.shape[1:]}: every split must have the same shape.")
    parts[name] = (x, _labels(y, len(x), f"y_{name}"))
    if (c is None) != (width is None):
      raise DataError(f"conditions_{name} {'is missing' if c is None else 'is given'}: give "
                      "conditions for every split given, or for none.")
    if c is not None:
      parts[name] += (_conditions(c, len(x), width, f"conditions_{name}"),)
  labels = np.concatenate([part[1] for part in parts.values()])
  if class_names and labels.max() >= len(class_names):
    raise DataError(f"label {labels.max()} has no name among the {len(class_names)} "
                    "class_names.")
  return Source(**parts, max_value=max_value, class_names=tuple(class_names), origin=origin)
