"""The batches of every train step and of evaluation, as tf.data pipelines or on-device rows.

A batch is a dict {"image": float32 [B, H, W, C] in [0, 1], "label": int64 [B]} (label -1 when
the dataset has none); evaluation batches also carry "index" int64 [B]; data with conditions
(Data.condition_dim C > 0) also "condition" float32 [B, C], each example's real covariates.
"""

import numpy as np
import tensorflow as tf

from tfvae import config as config_lib
from tfvae.models import base
from tfvae.data.binarization import FIXED_BINARIZATION_SEED
from tfvae.data.dataset import DataError
from tfvae.data.dataset import labeled_indices


def steps_per_epoch(data, config):
  """Steps of one epoch: one pass of the epoch's permutation over the train split.

  Each step takes `config.training.batch_size` rows of the permutation, except for the semi-supervised
  models with --num_labels=N, whose first --labeled_batch_size rows are drawn from the labeled
  set instead (`TrainBatches`): their epoch is len(train) // (batch_size - labeled_batch_size)
  steps. The one definition of an epoch: --epochs, --eval_every=0 and the logged epoch use it.

  Args:
    data: Data from `load`.
    config: Config; uses batch_size, model, num_labels and labeled_batch_size.

  Returns:
    int >= 1.
  """
  rows = config.training.batch_size
  if isinstance(config.model, base.SemiSupervisedConfig) and config.data.labels_known is not None:
    rows -= config.model.labeled_batch_size
  return max(1, len(data.train) // rows)


class TrainBatches:
  """The global train batch of every step, a pure function of (config.training.seed, step).

  Each epoch is a fresh permutation of the train split (drop remainder), so a run resumed at any
  step sees exactly the batches an uninterrupted run would have seen. With dynamic binarization
  or dequantization, the noise is drawn for the whole global batch from a seed folded from the
  step.

  Semi-supervised models (a models.base.SemiSupervisedConfig) with --num_labels=N: the first
  `labeled_batch_size` rows of every global batch are labeled examples, drawn without
  replacement within the step from the N labeled ones (`labeled_indices`; the labeled set is
  small, so it repeats) with a seed folded from the step; the other rows are the epoch's
  permutation of the whole train split with label -1 (unknown). With --num_labels=all every row
  keeps its label. Other models always get the plain batches (labels as stored).

  Two consumers build identical batches from it: `train_dataset` (a tf.data pipeline on the
  host) and the trainer's on-device path (--data_on_device), which keeps the uint8 images on the
  device and calls `epoch_order` once per epoch and `rows` inside the compiled train step.

  Args:
    data: Data from `load`.
    config: Config; uses seed, batch_size, binarization, model, num_labels, label_seed,
      labeled_batch_size, inject_nan_at_steps.

  Raises:
    DataError: if the batch is larger than the train split or --labeled_batch_size than the
      labeled set.
  """

  def __init__(self, data, config):
    self.batch_size = config.training.batch_size
    self.num_examples = len(data.train)
    if self.num_examples < self.batch_size:
      raise DataError(f"--batch_size={self.batch_size} is larger than the {self.num_examples} "
                      f"train examples of --dataset={config.data.dataset}.")
    self.mixed = (isinstance(config.model, base.SemiSupervisedConfig)
                  and config.data.labels_known is not None)
    self.num_labeled_rows = config.model.labeled_batch_size if self.mixed else 0
    self.chosen = None
    if self.mixed:
      chosen = labeled_indices(data, config)
      if config.model.labeled_batch_size > len(chosen):
        raise DataError(f"--labeled_batch_size={config.model.labeled_batch_size} is larger than "
                        f"--num_labels={len(chosen)}.")
      self.chosen = chosen
    self.unlabeled_rows = self.batch_size - self.num_labeled_rows  # permutation rows per step
    self.steps_per_epoch = steps_per_epoch(data, config)
    self.images = data.train.images  # uint8 [N, H, W, C], on the host
    self.labels = data.train.labels
    self.conditions = data.train.conditions  # float32 [N, C], or None
    self.max_value = data.max_value
    self.dequantize = data.dequantize
    self.binarize = data.binarization == "dynamic"  # resolved (--binarization=auto) by build
    self.inject_nan_at_steps = tuple(config.training.inject_nan_at_steps)
    self.seed = tf.constant([config.training.seed, 0], tf.int32)

  def epoch_order(self, epoch):
    """int32 [steps_per_epoch, unlabeled_rows]: the train indices of every step of `epoch`."""
    epoch_seed = tf.random.experimental.stateless_fold_in(self.seed, tf.cast(epoch, tf.int32))
    order = tf.argsort(tf.random.stateless_uniform([self.num_examples], seed=epoch_seed,
                                                   alg="philox"))
    return tf.reshape(order[:self.steps_per_epoch * self.unlabeled_rows],
                      [self.steps_per_epoch, self.unlabeled_rows])

  def row_indices(self, step, order_row):
    """(int indices [B] into the train split, label-known mask or None) of the step's batch."""
    if not self.mixed:
      return order_row, None
    labeled_seed = tf.random.experimental.stateless_fold_in(self.seed + 2, tf.cast(step, tf.int32))
    chosen = tf.constant(self.chosen)
    rows = tf.argsort(tf.random.stateless_uniform([len(self.chosen)], seed=labeled_seed,
                                                  alg="philox"))
    labeled = tf.cast(tf.gather(chosen, rows[:self.num_labeled_rows]), order_row.dtype)
    return tf.concat([labeled, order_row], 0), True

  def rows(self, step, order_row, images, labels, begin=0, size=None, conditions=None):
    """Rows [begin, begin + size) of the global batch of `step`.

    Args:
      step: int64 scalar, the global step.
      order_row: int [unlabeled_rows], this step's row of `epoch_order`.
      images: uint8 [N, H, W, C] Tensor of the train split (on whichever device).
      labels: int64 [N] Tensor.
      begin, size: the slice of the global batch to build (a replica's rows); size None means
        all rows. The noise is drawn for the global batch, so any slicing gives the same rows.
      conditions: float32 [N, C] Tensor of the train split's conditions, or None (none).

    Returns:
      {"image": float32 [size, H, W, C], "label": int64 [size]}, and "condition" float32
      [size, C] when `conditions` is given.
    """
    indices, mixed = self.row_indices(step, order_row)
    batch_labels = tf.gather(labels, indices)
    if mixed:
      batch_labels = tf.concat([batch_labels[:self.num_labeled_rows],
                                tf.fill([self.unlabeled_rows], tf.constant(-1, tf.int64))], 0)
    size = self.batch_size if size is None else size
    x = tf.cast(tf.gather(images, indices[begin:begin + size]), tf.float32)
    step_seed = tf.random.experimental.stateless_fold_in(self.seed + 1, tf.cast(step, tf.int32))
    if self.dequantize or self.binarize:
      # Philox named, as in tfvae/noise.py: "auto_select" is ThreeFry under XLA, slower.
      noise = tf.random.stateless_uniform([self.batch_size, *self.images.shape[1:]],
                                          seed=step_seed, alg="philox")[begin:begin + size]
    if self.dequantize:
      x = (x + noise) / (self.max_value + 1)
    else:
      x = x / self.max_value
    if self.binarize:
      x = tf.cast(noise < x, tf.float32)
    if self.inject_nan_at_steps:  # fault injection for tests
      poisoned = tf.reduce_any(tf.equal(step, list(self.inject_nan_at_steps)))
      x = tf.where(poisoned, float("nan"), x)
    batch = {"image": x, "label": batch_labels[begin:begin + size]}
    if conditions is not None:
      batch["condition"] = tf.gather(conditions, indices[begin:begin + size])
    return batch


def train_dataset(data, config, start_step=0):
  """Infinite tf.data dataset of the global train batches of `TrainBatches`, from `start_step`.

  Args:
    data: Data from `load`.
    config: Config (see `TrainBatches`).
    start_step: int, the global step of the first batch.

  Returns:
    tf.data.Dataset of batches {"image": float32 [B, H, W, C], "label": int64 [B]} (and
    "condition" float32 [B, C] for data with conditions).

  Raises:
    DataError: as `TrainBatches`.
  """
  batches = TrainBatches(data, config)
  images, labels = tf.constant(batches.images), tf.constant(batches.labels)
  conditions = None if batches.conditions is None else tf.constant(batches.conditions)
  per_epoch = batches.steps_per_epoch
  start_epoch, offset = divmod(start_step, per_epoch)
  order = (tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max)
           .flat_map(lambda epoch: tf.data.Dataset.from_tensor_slices(batches.epoch_order(epoch)))
           .skip(offset))
  steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
  return (tf.data.Dataset.zip(steps, order)
          .map(lambda step, row: batches.rows(step, row, images, labels,
                                              conditions=conditions),
               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))


def eval_dataset(data, split, batch_size):
  """Finite dataset over one split, in order, for evaluation.

  Args:
    data: Data from `load`.
    split: "train", "validation" or "test".
    batch_size: global batch size; the last batch may be smaller.

  Returns:
    tf.data.Dataset of batches {"image": float32 [b, H, W, C], "label": int64 [b], "index":
    int64 [b]} (and "condition" float32 [b, C] for data with conditions) where index is the example's position in the split. Models draw an evaluation
    example's noise from its index (noise.example_normal_noise), and with dequantization
    example i of the split always gets the same noise (seeded by split and i), so evaluation
    gives the same numbers whatever the batch size and the number of replicas.
  """
  part = getattr(data, split)
  columns = {"image": part.images, "label": part.labels,
             "index": np.arange(len(part), dtype=np.int64)}
  if part.conditions is not None:
    columns["condition"] = part.conditions
  dataset = tf.data.Dataset.from_tensor_slices(columns)
  if data.dequantize:
    seed = tf.constant([FIXED_BINARIZATION_SEED[split], 7], tf.int32)

    def scale(example):
      noise = tf.random.stateless_uniform(
          tf.shape(example["image"]),
          seed=tf.random.experimental.stateless_fold_in(seed, tf.cast(example["index"], tf.int32)),
          alg="philox")
      return {**example,
              "image": (tf.cast(example["image"], tf.float32) + noise) / (data.max_value + 1)}
  else:

    def scale(example):
      return {**example, "image": tf.cast(example["image"], tf.float32) / data.max_value}

  dataset = dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
