"""The Trainer: strategy, optimizer, tf.function train steps, skipped updates, checkpoints.

The trainer knows no model internals: it calls `model.losses(batch, seed, step, training)` and
minimizes the sum of the per-example "loss" divided by the GLOBAL batch size, so one replica and
N replicas take the same step. The run around it (workdir, loop, signals) is tfvae/training/run.py.
"""

import os

from absl import logging
import tensorflow as tf

from tfvae import data as data_lib
from tfvae.training import checkpoints
from tfvae.training import distribute
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.training import fused_adam
from tfvae import models


class Trainer:
  """Owns the model, optimizer, step counter and checkpoint of one run under one strategy.

  Args:
    config: a Config with image_shape resolved.
    strategy: a tf.distribute.Strategy.
    workdir: str or None; checkpoints go to WORKDIR/ckpt when given. Every worker of a
      multi-worker run restores from there (a shared filesystem); only the chief saves there.
    parts: optional tfvae.user_networks.Parts, the user's networks (copies are trained).

  The strategy comes from `distribute.make_strategy`; the model of a finished run is rebuilt
  for inference by tfvae/loading.py, which does not import this module.
  """

  def __init__(self, config, strategy, workdir=None, parts=None):
    self.config = config
    self.strategy = strategy
    with strategy.scope():
      # No global seed is set:
      self.model = models.build(config, seed=config.training.seed, parts=parts)
      self.optimizer = fused_adam.FusedAdam(
          config.training.learning_rate, global_clipnorm=config.training.clip_grad_norm or None,
          normalize_gradients=config.training.gradient_normalization == "per_parameter")
      self.optimizer.build(self.model.trainable_variables)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      # Updates skipped for a non-finite loss or gradient: in a row, and in this process.
      counter = dict(dtype=tf.int64, trainable=False,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.consecutive_skips = tf.Variable(0, name="consecutive_skips", **counter)
      self.skipped_updates = tf.Variable(0, name="skipped_updates", **counter)
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          step=self.step)
    self._ckpt_dir = os.path.join(workdir, "ckpt") if workdir else None
    self.manager = None
    if workdir and distribute.is_chief(strategy):
      checkpoints.recover_index(self._ckpt_dir)  # the chief holds the workdir's lock
      self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir, max_to_keep=3)
    self._seed = tf.constant([config.training.seed, 1], tf.int32)
    # Traced without autograph (its conversion of every Python function reached was half of
    # a first call's tracing time): loops are explicit tf.while_loops. The loop calls one step
    # before and one inside its while loop: as a tf.function of its own the step is traced
    # once for both (tracing the model, the gradient and the update twice cost seconds of
    # every run's start); grappler inlines the call.
    self._train_loop = tf.function(self._train_loop_fn, autograph=False)
    self._one_step = tf.function(self._one_step_fn, autograph=False)
    self.evaluator = evaluator_lib.Evaluator(self.model, strategy,
                                             config.training.eval_importance_samples)
    # XLA's CPU backend computes bfloat16 matmuls in float32 (its optimized HLO has no bfloat16
    # dot left), where TF's own oneDNN kernels use bfloat16 units (docs/speed.md).
    self.jit_compile = config.training.jit_compile and not (
        config.training.dtype_policy == "mixed_bfloat16" and distribute.on_cpu(strategy))
    if config.training.jit_compile and not self.jit_compile:
      logging.info("--dtype_policy=mixed_bfloat16 on CPU: the gradient runs without XLA "
                   "(faster there; docs/speed.md).")
    self._grads = (tf.function(self._grads_fn, jit_compile=True, autograph=False)
                   if self.jit_compile else self._grads_fn)

  def train_iterator(self, data, start_step=0):
    """The source of train batches for `train`, starting at global step `start_step`.

    With --data_on_device, a `DeviceData` (the uint8 train images copied once to every replica's
    device; each step's rows gathered and binarized inside the compiled step); otherwise the
    distributed iterator over the tf.data pipeline `data_lib.train_dataset`. Both give the same
    batches (`data_lib.TrainBatches`), so the same training trajectory.
    """
    if self.config.execution.data_on_device:
      return DeviceData(data, self.config, self.strategy)
    return iter(distribute.distribute_dataset(
        self.strategy, data_lib.train_dataset(data, self.config, start_step=start_step)))

  def restore(self):
    """Restores the newest checkpoint of WORKDIR/ckpt that reads, if any (a damaged one is
    skipped with a warning: tfvae/training/checkpoints.py). Returns the step reached.

    Raises:
      checkpoints.CheckpointMismatch: if checkpoints exist and none restores into this model.
    """
    if self._ckpt_dir:
      checkpoints.restore(self.checkpoint, checkpoints.candidates(self._ckpt_dir))
    return int(self.step.numpy())

  def save(self):
    """Writes a checkpoint at the current step to WORKDIR/ckpt (the chief).

    Every worker of a multi-worker run must call it at the same point: the others save the
    same way into a temporary folder that is deleted at once (a save may run collectives).
    """
    if self.manager:
      self.manager.save(checkpoint_number=self.step)
    elif self._ckpt_dir:
      with distribute.write_dir(self.strategy, None) as scratch:
        tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(
            checkpoint_number=self.step)

  def _grads_fn(self, batch, seed, step):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      terms = self.model.losses(batch, seed, step, training=True)
      loss = tf.nn.compute_average_loss(terms["loss"],
                                        global_batch_size=self.config.training.batch_size)
    # Summed over the batch axis: per-example terms [B] give scalars, statistics [B, *S] give
    # [*S] (decoders.Decoder.fit_scale's mean_squared_error for vectors).
    return tape.gradient(loss, variables), {k: tf.reduce_sum(v, axis=0)
                                            for k, v in terms.items()}

  def _apply_or_skip(self, strategy, num_bad, grads):
    """Cross-replica: applies the update unless some replica saw a non-finite loss/gradient.

    The tf.cond must run in cross-replica context (apply_gradients calls merge_call), the
    pattern of keras.optimizers.LossScaleOptimizer.
    """
    ok = tf.equal(strategy.experimental_local_results(num_bad)[0], 0.0)
    variables = self.model.trainable_variables

    def apply():
      strategy.extended.call_for_each_replica(
          lambda g: self.optimizer.apply_gradients(zip(g, variables)), args=(grads,))
      return tf.constant(True)

    tf.cond(ok, apply, lambda: tf.constant(False))
    skipped = 1 - tf.cast(ok, tf.int64)
    self.skipped_updates.assign_add(skipped)
    self.consecutive_skips.assign((self.consecutive_skips + skipped) * skipped)

  def _train_step_fn(self, batch, seed, step):
    grads, sums = self._grads(batch, seed, step)
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    finite = tf.logical_and(finite, tf.math.is_finite(sums["loss"]))
    context = tf.distribute.get_replica_context()
    num_bad = context.all_reduce("SUM", 1.0 - tf.cast(finite, tf.float32))
    context.merge_call(self._apply_or_skip, args=(num_bad, grads))
    skipped = tf.cast(num_bad > 0, tf.float32)
    sums = {k: tf.where(skipped > 0, 0.0, v) for k, v in sums.items()}  # keep NaN out of means
    sums["skipped"] = skipped / context.num_replicas_in_sync  # summed over replicas below
    return sums

  def _device_step_fn(self, source, order_row, images, labels, conditions, seed, step):
    """Replica fn of --data_on_device: builds this replica's rows of the global batch."""
    context = tf.distribute.get_replica_context()
    rows = self.config.training.batch_size // context.num_replicas_in_sync
    begin = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
    batch = source.batches.rows(step, order_row, images, labels, begin, rows, conditions)
    return self._train_step_fn(batch, seed, step)

  def _one_step_fn(self, source, order):
    step = self.step.read_value()
    seed = tf.random.experimental.stateless_fold_in(self._seed, tf.cast(step, tf.int32))
    if order is None:
      per_replica = self.strategy.run(self._train_step_fn, args=(next(source), seed, step))
    else:
      row = tf.gather(order, step % source.batches.steps_per_epoch)
      per_replica = self.strategy.run(
          self._device_step_fn, args=(source, row, source.images, source.labels,
                                      source.conditions, seed, step))
    sums = {k: self.strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}
    # The calibrated likelihood's scale:
    self.model.update_statistics(sums, step, self.config.training.batch_size)
    self.step.assign_add(1)
    return sums

  def _train_loop_fn(self, source, order, num_steps):
    sums = self._one_step(source, order)

    def another_step(i, sums):
      step_sums = self._one_step(source, order)
      return i + 1, {k: v + step_sums[k] for k, v in sums.items()}

    _, sums = tf.while_loop(lambda i, _: i < num_steps - 1, another_step,
                            (tf.constant(0, num_steps.dtype), sums))
    return sums

  def _segments(self, source, num_steps):
    """(order, steps) calls of the compiled loop: one per epoch crossed with on-device data."""
    if not isinstance(source, DeviceData):
      return [(None, num_steps)]
    out, step = [], int(self.step.numpy())
    per_epoch = source.batches.steps_per_epoch
    while num_steps > 0:
      steps = min(num_steps, per_epoch - step % per_epoch)
      out.append((source.epoch_order(step // per_epoch), steps))
      step, num_steps = step + steps, num_steps - steps
    return out

  def train(self, iterator, num_steps):
    """Runs `num_steps` train steps (one tf.function call per epoch crossed) from the source of
    `train_iterator` (a distributed iterator, or DeviceData).

    Returns:
      dict of Python floats: the mean per-example loss, elbo, rate, distortion (and, with a
      calibrated decoder, mean_squared_error: per pixel or feature) over the steps
      whose update was applied (NaN if none was), and "skipped": the number of updates skipped
      for a non-finite loss or gradient.
    """
    sums = None
    for order, steps in self._segments(iterator, num_steps):
      part = self._train_loop(iterator, order, tf.constant(steps, tf.int64))
      sums = part if sums is None else {k: v + part[k] for k, v in sums.items()}
    skipped = int(round(float(sums.pop("skipped"))))
    applied = (num_steps - skipped) * self.config.training.batch_size
    out = {k: float(tf.reduce_mean(v)) / applied if applied else float("nan")
           for k, v in sums.items()}  # statistics [*S]: their mean (mean_squared_error)
    out["skipped"] = skipped
    return out

  def calibrate(self, dataset):
    """Fits the calibrated likelihood scale on held-out `dataset` (`Evaluator.calibrate`);
    the run calls it before each validation. Returns the variance set, or None."""
    return self.evaluator.calibrate(dataset)

  def evaluate(self, dataset):
    """Metrics of `evaluator_lib.Evaluator` (nats per example) over a finite dataset."""
    return self.evaluator(dataset)


class DeviceData:
  """The train split kept on the device(s) for --data_on_device.

  The uint8 images, labels (and conditions) are copied once to every replica's device; `epoch_order` (a
  permutation, computed once per epoch and cached) is passed to the compiled loop, and each
  replica gathers and binarizes its rows of the global batch inside the step
  (`data_lib.TrainBatches.rows`), with the same noise as the tf.data path.

  Args:
    data: data_lib.Data.
    config: Config.
    strategy: the tf.distribute.Strategy of the trainer.
  """

  def __init__(self, data, config, strategy):
    self.batches = data_lib.TrainBatches(data, config)
    images, labels = self.batches.images, self.batches.labels
    self.images = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant(images))
    self.labels = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant(labels))
    conditions = self.batches.conditions  # float32 [N, C] or None
    self.conditions = None if conditions is None else (
        strategy.experimental_distribute_values_from_function(lambda _: tf.constant(conditions)))
    self._orders = {}

  def epoch_order(self, epoch):
    """int32 [steps_per_epoch, rows]: the permutation of `epoch` (cached: last two epochs)."""
    if epoch not in self._orders:
      self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
      self._orders[epoch] = self.batches.epoch_order(epoch)
    return self._orders[epoch]
