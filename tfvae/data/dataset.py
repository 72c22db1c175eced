"""A dataset as in-memory uint8 splits (`Data`): loading, splitting, fixed-seed binarization, labeled subsets.

The raw datasets are read by tfvae/data/sources.py (digits, TFDS). Images stay uint8 in memory;
the pipelines of tfvae/data/pipeline.py scale them to [0, 1] float32 and binarize as configured.
"""

import dataclasses

import numpy as np

from tfvae.data import sources

# Fixed seeds for binarizing once, independent of --seed, so numbers compare across runs.
_FIXED_BINARIZATION_SEED = {"train": 1, "validation": 2, "test": 3}
_DIGITS_TEST_FRACTION = 0.2


DataError = sources.DataError  # defined with the readers that raise it first


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8 [N, H, W, C], values in [0, max_value]
  labels: np.ndarray  # int64 [N]

  def __len__(self):
    return len(self.images)


@dataclasses.dataclass(frozen=True)
class Data:
  train: Split
  validation: Split
  test: Split
  max_value: int  # pixel value that maps to 1.0 (255, or 16 for digits)
  class_names: tuple[str, ...]
  # Uniform dequantization (--binarization=dequantize): pixels are (y + u) / (max_value + 1).
  dequantize: bool = False

  @property
  def image_shape(self):
    return tuple(int(d) for d in self.train.images.shape[1:])

  @property
  def num_classes(self):
    """Number of classes K (labels are 0..K-1): len(class_names), else 1 + the largest label."""
    return len(self.class_names) or int(max(self.train.labels.max(), self.test.labels.max())) + 1


def load(config):
  """Loads `config.dataset`, splits off validation and binarizes as `config.binarization` says.

  Returns:
    Data with uint8 images. Validation is the last `config.validation_fraction` of the train
    split; test is the dataset's own test split. With binarization static or dynamic, validation
    and test are binarized once with fixed seeds; with static, train is too.

  Raises:
    DataError: if the dataset is unknown, cannot be downloaded or prepared, or has no
      train/test split.
  """
  if config.dataset == "digits":
    (train, test), max_value, names = sources.digits(_DIGITS_TEST_FRACTION)
  else:
    (train, test), max_value, names = sources.tfds_dataset(config.dataset, config.data_dir)
  train, test = Split(*train), Split(*test)
  num_validation = int(round(len(train) * config.validation_fraction))
  if not 0 < num_validation < len(train):
    raise DataError(f"--validation_fraction={config.validation_fraction} leaves no train or "
                    f"validation examples out of {len(train)}.")
  validation = Split(train.images[-num_validation:], train.labels[-num_validation:])
  train = Split(train.images[:-num_validation], train.labels[:-num_validation])
  splits = {"train": train, "validation": validation, "test": test}
  if config.binarization in ("static", "dynamic"):
    fixed = ("train", "validation", "test") if config.binarization == "static" else (
        "validation", "test")
    for name in fixed:
      splits[name] = _binarize_once(splits[name], max_value, _FIXED_BINARIZATION_SEED[name])
  return Data(max_value=max_value, class_names=names,
              dequantize=config.binarization == "dequantize", **splits)


def _binarize_once(split, max_value, seed):
  rng = np.random.default_rng(seed)
  probs = split.images.astype(np.float32) / max_value
  on = rng.random(probs.shape, dtype=np.float32) < probs
  return Split((on * max_value).astype(np.uint8), split.labels)


def balanced_subset(labels, num_labels, num_classes, seed):
  """Indices of a class-balanced labeled subset: num_labels / num_classes examples per class.

  Args:
    labels: int [N] array of class labels in 0..num_classes-1 (-1: unknown, never chosen).
    num_labels: int, a positive multiple of num_classes.
    num_classes: int K.
    seed: int; the same seed gives the same subset.

  Returns:
    int64 [num_labels] indices into `labels`, sorted.

  Raises:
    DataError: naming --num_labels, if num_labels is not a multiple of K or a class has fewer
      than num_labels / K examples.
  """
  labels = np.asarray(labels)
  if num_classes < 1:
    raise DataError(f"--num_labels={num_labels}: the dataset has no labels.")
  if num_labels % num_classes:
    raise DataError(f"--num_labels={num_labels} is not a multiple of the {num_classes} classes "
                    "(the labeled subset is balanced).")
  per_class = num_labels // num_classes
  rng = np.random.default_rng(seed)
  chosen = []
  for k in range(num_classes):
    members = np.flatnonzero(labels == k)
    if len(members) < per_class:
      raise DataError(f"--num_labels={num_labels} needs {per_class} examples of class {k}; "
                      f"the train split has {len(members)}.")
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def labeled_indices(data, config):
  """Indices into data.train of the labeled examples of `config` (--num_labels, --label_seed).

  Returns:
    int64 [N] indices: the balanced subset of `balanced_subset`, or with --num_labels=all every
    train example with a label.
  """
  if config.labels_known is None:
    return np.flatnonzero(data.train.labels >= 0).astype(np.int64)
  return balanced_subset(data.train.labels, config.labels_known, data.num_classes,
                         config.label_seed)


def fixed_train(data, config):
  """`data` with the train split binarized once with a fixed seed when binarization is dynamic,
  as validation and test are (for features computed on train images, e.g. M1)."""
  if config.binarization != "dynamic":
    return data
  return dataclasses.replace(data, train=_binarize_once(data.train, data.max_value,
                                                        _FIXED_BINARIZATION_SEED["train"]))
