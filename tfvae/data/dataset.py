"""The splits a run trains on (`Data`): reading a Source, splitting, labeled subsets.

Datasets by name are read by tfvae/data/sources.py (digits, TFDS), your own files by
tfvae/data/files.py, arrays by tfvae/data/arrays.py. Images stay uint8 in memory; the pipelines
of tfvae/data/pipeline.py scale them to [0, 1] float32 and binarize as configured; what
--binarization=auto picks and the fixed-seed binarization of evaluation splits are
tfvae/data/binarization.py's.
"""

import dataclasses
from typing import Optional, TYPE_CHECKING

from absl import logging
import numpy as np

from tfvae.data import arrays
from tfvae.data import binarization as binarization_lib
from tfvae.data import files
from tfvae.data import sources
from tfvae.errors import DataError

if TYPE_CHECKING:
  from tfvae.config import Config

@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8 [N, H, W, C] in [0, max_value], or float32 vectors [N, D]
  labels: np.ndarray  # int64 [N]
  conditions: Optional[np.ndarray] = None  # float32 [N, C] real covariates, or None

  def __len__(self):
    return len(self.images)

  def rows(self, index):
    """The Split of the examples `index` (a slice or int indices), conditions kept."""
    return Split(self.images[index], self.labels[index],
                 None if self.conditions is None else self.conditions[index])


@dataclasses.dataclass(frozen=True)
class Data:
  train: Split
  validation: Split
  test: Split
  max_value: int  # pixel value that maps to 1.0 (255, or 16 for digits)
  class_names: tuple[str, ...]
  # Uniform dequantization (--binarization=dequantize): pixels are (y + u) / (max_value + 1).
  dequantize: bool = False
  # How the pixels are binarized: none, static, dynamic or dequantize (never auto: `build`
  # resolves it); the pipelines binarize train batches when it is dynamic.
  binarization: str = "none"
  fingerprint: str = ""  # of the Source it was built from (arrays.Source.fingerprint)
  # --standardize (vectors): the per-feature mean and scale subtracted and divided out.
  feature_mean: tuple = ()
  feature_scale: tuple = ()

  @property
  def image_shape(self):
    return tuple(int(d) for d in self.train.images.shape[1:])

  @property
  def condition_dim(self):
    """C, the width of each example's conditions (0: the data have none)."""
    return 0 if self.train.conditions is None else int(self.train.conditions.shape[1])

  @property
  def num_classes(self):
    """Number of classes K (labels are 0..K-1): len(class_names), else 1 + the largest label."""
    return len(self.class_names) or int(max(self.train.labels.max(), self.test.labels.max())) + 1


def read(config):
  """The Source that `config.data.dataset` names: digits, a TFDS name, or a folder/file path.

  Raises:
    DataError: if the dataset is unknown, cannot be downloaded, prepared or read, or the run was
      trained from arrays given in Python (which no command can read again).
  """
  if config.data.dataset == arrays.IN_MEMORY:
    raise DataError("This run was trained from in-memory arrays (tfvae.fit(..., data=...)), which "
                    "a command cannot read again: call the Python API with the same data, e.g. "
                    "tfvae.load(workdir).evaluate(data) or tfvae.draw(workdir, data=data).")
  if config.data.condition_columns and not files.is_path(config.data.dataset):
    raise DataError(f"--condition_columns={config.data.condition_columns}: --dataset="
                    f"{config.data.dataset} is not a .csv table (conditions of arrays: "
                    "tfvae.data.from_arrays(..., conditions=)).")
  if config.data.dataset == "digits":
    return sources.digits()
  if files.is_path(config.data.dataset):
    return files.from_path(config.data.dataset, config.data.image_size or None,
                           config.data.max_value or None,
                           config.data.label_column, config.data.condition_columns)
  return sources.tfds_dataset(config.data.dataset, config.execution.data_dir)


def load(config: "Config", source: Optional[arrays.Source] = None) -> "Data":
  """The Data of a run: `build(source or read(config), config)`, checked against the run's data.

  config.data.dataset is read with the reader options config.json records (image_size, max_value,
  label_column, condition_columns); a config.json without them reads with none.

  Raises:
    DataError: as `read` and `build`, or if config.data.data_fingerprint (the run's data) is set and
      the data differ from the run's: the message says what differs (reader options, a
      split's shape or dtype, its values, the pixels' maximum).
  """
  source = source or read(config)
  fingerprint = source.fingerprint()
  if config.data.data_fingerprint:
    differs = _what_differs(config, source, fingerprint)
    if differs:
      raise DataError(f"--dataset={config.data.dataset}: the data differ from those the run was trained "
                      f"on: {'; '.join(differs)} (now: {fingerprint}; the run's: "
                      f"{config.data.data_fingerprint}).")
  return build(source, config, fingerprint)


def _flag(value):
  return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _splits(fingerprint):
  """{split: (shape, dtype, hash)} of a Source.fingerprint()."""
  return {piece.split(" ")[0]: tuple(piece.split(" ")[1:]) for piece in fingerprint.split("; ")
          if piece}


def _what_differs(config, source, fingerprint):
  """[what differs] between the data read now (source, its fingerprint) and the run's (config):
  reader options, each split's shape, dtype and values, the pixels' maximum. [] if nothing."""
  differs = [f"read with --{name}={_flag(value)}, the run's with --{name}="
             f"{_flag(getattr(config.data, name))}" for name, value in source.reader_options.items()
             if value != getattr(config.data, name)]
  now, run = _splits(fingerprint), _splits(config.data.data_fingerprint)
  for name in dict.fromkeys([*run, *now]):
    if name not in now or name not in run:
      differs.append(f"a {name} split "
                     f"{'the run did not have' if name in now else 'no longer there'}")
    elif now[name][:2] != run[name][:2]:
      differs.append(f"{name} is {' '.join(now[name][:2])} now, {' '.join(run[name][:2])} in the "
                     "run")
    elif now[name] != run[name]:
      differs.append(f"{name} has other values (same shape {now[name][0]} {now[name][1]}: the "
                     "file changed)")
  if source.kind == "images" and source.max_value + 1 != config.data.pixel_levels:
    differs.append(f"its pixels mean 0..{source.max_value}, the run's 0..{config.data.pixel_levels - 1}"
                   f" (--max_value={config.data.pixel_levels - 1})")
  return differs


def build(source, config, fingerprint=None):
  """Splits a Source and binarizes it as `config` says: the Data a run trains and evaluates on.

  Args:
    source: tfvae.data.arrays.Source.
    config: Config; uses test_fraction, validation_fraction, binarization.
    fingerprint: source.fingerprint() when the caller has it (else computed here).

  Returns:
    Data, its binarization resolved (tfvae/data/binarization.py `auto_binarization` for
    --binarization=auto, said in one log line). Without a test split in the source, test is the
    first --test_fraction of a fixed permutation (seed 0) of train; without a validation split,
    validation is the last --validation_fraction of train. With binarization static or dynamic,
    validation and test are binarized once with fixed seeds; with static, train is too.

  Raises:
    DataError: if a split would be empty, or vectors are given a binarization.

  Conditions (Source splits (x, labels, conditions)) stay with their examples through every
  cut; they are never standardized or binarized.
  """
  train = Split(*source.train)
  if source.test is None:
    order = np.random.default_rng(0).permutation(len(train))
    num_test = int(round(len(train) * config.data.test_fraction))
    if not 0 < num_test < len(train):
      raise DataError(f"--test_fraction={config.data.test_fraction} leaves no train or test examples "
                      f"out of {len(train)} (--dataset={config.data.dataset} has no test split).")
    test, train = train.rows(order[:num_test]), train.rows(order[num_test:])
  else:
    test = Split(*source.test)
  if source.validation is None:
    num_validation = int(round(len(train) * config.data.validation_fraction))
    if not 0 < num_validation < len(train):
      raise DataError(f"--validation_fraction={config.data.validation_fraction} leaves no train or "
                      f"validation examples out of {len(train)}.")
    validation = train.rows(slice(-num_validation, None))
    train = train.rows(slice(None, -num_validation))
  else:
    validation = Split(*source.validation)
  splits = {"train": train, "validation": validation, "test": test}
  binarization = config.data.binarization
  if binarization == "auto":
    binarization, line = binarization_lib.auto_binarization(source, config.model.likelihood)
    logging.info("%s", line)
  mean = scale = ()
  if source.kind == "vectors":
    _check_vectors(splits, config, binarization)
    if config.data.standardize:
      mean = np.asarray(config.data.feature_mean or train.images.mean(0), np.float32)
      scale = np.asarray(config.data.feature_scale or train.images.std(0), np.float32)
      scale = np.where(scale > 0, scale, 1).astype(np.float32)  # a constant feature stays 0
      splits = {name: dataclasses.replace(part, images=(part.images - mean) / scale)
                for name, part in splits.items()}
      mean, scale = tuple(map(float, mean)), tuple(map(float, scale))
  elif config.data.standardize or config.model.likelihood in _COUNT_LIKELIHOODS:
    raise DataError(f"--dataset={config.data.dataset} holds images: "
                    f"{'--standardize' if config.data.standardize else '--likelihood=' + config.model.likelihood}"
                    " is for vectors [N, D] (tabular data).")
  if binarization in ("static", "dynamic"):
    fixed = ("train", "validation", "test") if binarization == "static" else (
        "validation", "test")
    for name in fixed:
      splits[name] = binarization_lib.binarize_once(
          splits[name], source.max_value, binarization_lib.FIXED_BINARIZATION_SEED[name])
  return Data(max_value=source.max_value, class_names=source.class_names,
              dequantize=binarization == "dequantize", binarization=binarization,
              fingerprint=fingerprint or source.fingerprint(),
              feature_mean=mean, feature_scale=scale, **splits)


_COUNT_LIKELIHOODS = ("poisson", "negative_binomial")


def _check_vectors(splits, config, binarization):
  """DataError naming the flag, split and feature where vectors do not fit the config."""
  what = f"--dataset={config.data.dataset}"
  if binarization != "none":
    raise DataError(f"{what} holds vectors [N, {splits['train'].images.shape[1]}], not images: "
                    f"--binarization={binarization} applies to pixels; use "
                    "--binarization=auto or none.")
  if config.model.architecture != "mlp":
    raise DataError(f"{what} holds vectors: --architecture={config.model.architecture} needs images; "
                    "use --architecture=mlp.")
  if config.model.likelihood in ("normal", "laplace", "normal_per_pixel"):
    _warn_constant_features(splits, config)
    return
  for name, part in splits.items():
    x = part.images
    if config.model.likelihood in ("bernoulli", "continuous_bernoulli"):
      bad = (x < 0) | (x > 1) | ((x != 0) & (x != 1) if config.model.likelihood == "bernoulli" else False)
      need = "0 or 1" if config.model.likelihood == "bernoulli" else "in [0, 1]"
    else:  # counts
      bad = (x < 0) | (x != np.round(x))
      need = "a non-negative integer (a count)"
    if config.data.standardize:
      raise DataError(f"--standardize with --likelihood={config.model.likelihood}: standardized "
                      "features are no longer " + need + ".")
    if bad.any():
      row, column = map(int, np.argwhere(bad)[0])
      raise DataError(f"{what}: --likelihood={config.model.likelihood} needs every feature {need}; "
                      f"feature {column} of {name} example {row} is {x[row, column]:g}.")


def _warn_constant_features(splits, config):
  """Logs one warning naming the features constant over the train split that vary in a held-out
  split: a likelihood with a scale fits theirs to its floor (decoders.MIN_LIKELIHOOD_SCALE),
  so each held-out row that differs there costs about (difference / 1e-3)^2 / 2 nats (seen:
  digits as a table, --likelihood=normal --standardize, test elbo -1e7 nats)."""
  train = splits["train"].images
  constant = np.flatnonzero(np.all(train == train[:1], axis=0)) if len(train) else []
  if not len(constant):
    return
  differing = {name: int(np.any(part.images[:, constant] != train[0, constant], axis=1).sum())
               for name, part in splits.items() if name != "train" and len(part.images)}
  if not any(differing.values()):
    return
  shown = ", ".join(map(str, constant[:10])) + (", ..." if len(constant) > 10 else "")
  rows = ", ".join(f"{n} {name}" for name, n in differing.items() if n)
  logging.warning(
      "--dataset=%s: features %s (0-based, %d in all) are constant over the %d train rows but "
      "differ in %s rows: --likelihood=%s fits their scale to its floor, so those rows get a "
      "huge distortion (nats). Drop those features, or use a likelihood without a scale "
      "(poisson for counts).", config.data.dataset, shown, len(constant), len(train), rows,
      config.model.likelihood)


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
  if config.data.labels_known is None:
    return np.flatnonzero(data.train.labels >= 0).astype(np.int64)
  return balanced_subset(data.train.labels, config.data.labels_known, data.num_classes,
                         config.data.label_seed)
