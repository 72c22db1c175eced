"""The Python API: train a run (`fit`), load it (`load`), and ask the trained model.

    import tfvae
    data = tfvae.data.from_directory("my_images/", image_size=(28, 28))
    tfvae.fit(tfvae.Config(latent_dim=16, epochs=20), "runs/mine", data=data)
    model = tfvae.load("runs/mine")
    q_z = model.encode(images)            # tfd.MultivariateNormalDiag, batch [N]
    model.evaluate(data, split="test", num_importance_samples=5000)

Every command line tool is built on these calls and writes the same workdir (config.json,
ckpt/, tensorboard/, eval.json, export). Inputs are numpy arrays: integer pixels (uint8, as
stored) or float32 pixels already in [0, 1] for images [N, H, W, C]; raw float vectors [N, D]
(standardized inside with the run's statistics under --standardize, outputs in raw units, as
the SavedModel does).
"""

import contextlib
import logging as std_logging
import os
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import cli
from tfvae import data as data_lib
from tfvae import lock
from tfvae import summaries
from tfvae import workdir as workdir_lib
from tfvae.data import arrays
from tfvae.errors import ConfigError
from tfvae.evaluation import evaluator as evaluator_lib


_QUIET = cli.TfvaeInfoOnly()


def _show_logs():
  """Outside an absl app (a notebook, a script) absl prints only warnings: show tfvae's INFO
  lines (progress, results) as the command line tools do, and other modules' warnings only."""
  if not flags.FLAGS.is_parsed() and logging.get_verbosity() < logging.INFO:
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("absl").addFilter(_QUIET)


def _as_source(data):
  if data is None or isinstance(data, arrays.Source):
    return data
  if isinstance(data, np.ndarray):
    return arrays.from_arrays(data)
  raise TypeError(f"data must be a tfvae.data Source (from_arrays, from_directory, from_file) "
                  f"or a numpy array, not {type(data).__name__}.")


def fit(config, workdir, data=None, overwrite=False):
  """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates and exports.

  What `python -m tfvae.train` does, from Python.

  Args:
    config: tfvae.Config.
    workdir: the run folder (created).
    data: optional: a Source (`tfvae.data.from_arrays`, `from_directory`, `from_file`) or a
      numpy array of examples (unlabeled); without it config.dataset is read. A run trained on
      arrays records config.dataset "in-memory arrays" and the data's fingerprint; later calls
      that need the data (resume, `TrainedModel.evaluate`) must be given the same data.
    overwrite: delete a run with another config in workdir instead of refusing.

  Returns:
    dict: "validation" and "test" metrics (nats per example) and "step" (see
    tfvae.training.run.train_and_evaluate).

  Raises:
    ConfigError: a config that cannot run, or workdir holds another run (and not overwrite).
    DataError: data that cannot be read or do not fit the config.
    tfvae.training.run.TrainingError / Interrupted: as the command line tool.
  """
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer  # pylint: disable=import-outside-toplevel
  _show_logs()
  source = _as_source(data)
  if config.strategy != "multi_worker":
    try:
      trainer.split_cpu(config.num_cpu_devices)
    except RuntimeError:
      raise ConfigError(f"--num_cpu_devices={config.num_cpu_devices}: TensorFlow has already "
                        "started in this process; split the CPU first (call "
                        "tfvae.training.trainer.split_cpu before any TensorFlow op).") from None
  strategy = trainer.make_strategy(config)
  return run.train_and_evaluate(config, workdir, overwrite, strategy, source=source)


def load(workdir, strategy=None):
  """The trained model of a run: WORKDIR/config.json and its best checkpoint (ckpt/best, the
  lowest validation loss), else its latest.

  Args:
    workdir: a run folder written by `fit` or `python -m tfvae.train`.
    strategy: optional tf.distribute.Strategy to build the model under (evaluation then runs
      on its replicas); default the default strategy.

  Returns:
    TrainedModel.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
  """
  from tfvae.training import trainer  # pylint: disable=import-outside-toplevel
  config, model, step = trainer.restore_model(workdir, strategy)
  return TrainedModel(config, model, step, workdir, strategy)


class TrainedModel:
  """A trained model with numpy in, numpy or tfp distributions out.

  Attributes:
    config: the run's Config. model: the model object (tfvae.models). step: its train step.
    workdir: the run folder.
  """

  def __init__(self, config, model, step, workdir=None, strategy=None):
    self.config = config
    self.model = model
    self.step = step
    self.workdir = workdir
    self.strategy = strategy or tf.distribute.get_strategy()

  def __repr__(self):
    return (f"TrainedModel({self.config.model}, latent_dim={self.config.latent_dim}, "
            f"step={self.step}, workdir={self.workdir!r})")

  def _inputs(self, x):
    """float32 Tensor [N, *image_shape] of x (integer pixels scaled by the run's max value)."""
    x = np.asarray(x)
    shape = tuple(self.config.image_shape)
    if x.shape[1:] != shape and x.ndim == len(shape) and len(shape) == 3 and shape[-1] == 1:
      x = x[..., None]  # [N, H, W] gray images
    if x.shape[1:] != shape:
      raise ValueError(f"x has shape {x.shape}; this model takes [N, {', '.join(map(str, shape))}].")
    if x.dtype.kind in "iu" and len(shape) == 3:
      x = x / (self.config.pixel_levels - 1)
    if self.config.feature_mean:  # --standardize: raw features in
      x = (x - np.asarray(self.config.feature_mean)) / np.asarray(self.config.feature_scale)
    return tf.constant(x, tf.float32)

  def _raw(self, x):
    """Model outputs in raw feature units (--standardize), as the export returns them."""
    x = np.asarray(x)
    if self.config.feature_mean:
      x = x * np.asarray(self.config.feature_scale, np.float32) + np.asarray(
          self.config.feature_mean, np.float32)
    return x

  def encode(self, x):
    """q(z|x): a tfd.Distribution with batch [N], event [latent_dim] (its mean() is the code;
    a point mass for deterministic autoencoders).

    Raises:
      ValueError: for a model whose posterior needs a label as well (m2), or x of another shape.
    """
    if self.model.label_classes:
      raise ValueError(f"--model={self.config.model} encodes x together with a label y: use "
                       "model.model.encode(x, y_onehot).")
    return self.model.posterior(self._inputs(x))

  def decode(self, z):
    """p(x|z): a tfd.Distribution, batch [N], event image_shape, for codes z float [N, D]
    (over standardized features with --standardize)."""
    return self.model.decode(tf.constant(np.asarray(z), tf.float32))

  def reconstruct(self, x):
    """float32 numpy [N, *image_shape]: the decoder mean at the posterior mean (raw units)."""
    return self._raw(self.model.reconstruct(self._inputs(x)))

  def sample(self, num, seed=0):
    """{"mean", "sample"}: float32 numpy [num, *image_shape] from z ~ p(z) (models with a prior).

    Raises:
      ValueError: for deterministic autoencoders (no prior).
    """
    if not self.model.generative:
      raise ValueError(f"--model={self.config.model} has no prior p(z) to sample from.")
    out = self.model.sample(tf.constant(num, tf.int32), tf.constant([seed, 0], tf.int32))
    return {k: self._raw(v) for k, v in out.items()}

  def _terms(self, x):
    x = self._inputs(x)
    batch = {"image": x, "label": tf.fill([tf.shape(x)[0]], tf.constant(-1, tf.int64)),
             "index": tf.range(tf.shape(x)[0], dtype=tf.int64)}
    terms = tf.function(self.model.losses, autograph=False)(batch, tf.constant(evaluator_lib.EVAL_SEED, tf.int32),
                                           tf.constant(self.step, tf.int64), training=False)
    return {k: v.numpy() for k, v in terms.items()}

  def elbo(self, x):
    """float32 numpy [N]: the ELBO of each example (nats; the evaluation noise, deterministic:
    example i gets the noise `evaluate` gives the i-th example of a split). With --standardize
    it bounds the log-density of the standardized features.

    Raises:
      ValueError: for models without an ELBO (deterministic autoencoders).
    """
    terms = self._terms(x)
    if "elbo" not in terms:
      raise ValueError(f"--model={self.config.model} has no ELBO.")
    return terms["elbo"]

  def iwae_bound(self, x, num_importance_samples=1000, chunk_size=500):
    """float32 numpy [N]: the importance-weighted bound on log p(x) (Burda et al. 2016), nats.

    Raises:
      ValueError: for models without a prior (deterministic autoencoders) or posterior (m2).
    """
    if not self.model.generative:
      raise ValueError(f"--model={self.config.model} has no prior: no bound on log p(x).")
    if self.model.label_classes:
      raise ValueError(f"--model={self.config.model}: q(z|x, y) needs a class; its bound on "
                       "log p(x) is the elbo (-U(x)).")

    @tf.function(autograph=False)
    def bound(x):
      return evaluator_lib.iwae_bound(
          self.model, x, num_importance_samples, chunk_size,
          tf.constant(evaluator_lib.EVAL_SEED, tf.int32), q_z=self.model.posterior(x),
          index=tf.range(tf.shape(x)[0], dtype=tf.int64))

    return bound(self._inputs(x)).numpy()

  def data(self, source=None):
    """The run's Data: `source` (given to `fit`) or config.dataset read again, checked against
    the run's data fingerprint (tfvae.data.load)."""
    return data_lib.load(self.config, _as_source(source))

  def evaluate(self, data=None, split="test", num_importance_samples=5000, chunk_size=500,
               batch_size=100, num_examples=0, write=True):
    """Evaluates one split; what `python -m tfvae.evaluate` does.

    Args:
      data: the run's data when it was trained from arrays (a Source or numpy array); else
        None (config.dataset is read again).
      split: "train", "validation" or "test".
      num_importance_samples: K of the importance-weighted bound.
      chunk_size: importance samples evaluated at once (bounds memory).
      batch_size: examples per batch; results do not depend on it.
      num_examples: evaluate only the first N examples (0: all).
      write: merge the result into WORKDIR/eval.json under e.g. "test_K5000" and write it to
        TensorBoard (WORKDIR/tensorboard/eval).

    Returns:
      dict of metrics (tfvae.evaluation.evaluator.Evaluator) plus dataset, split,
      binarization, num_importance_samples, step and wall_time_s.

    Raises:
      DataError: if the data cannot be read or differ from the run's.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir (checked
        before the evaluation runs; so is the workdir's writability, ConfigError).
    """
    with self._writing(write):
      return self._evaluate(data, split, num_importance_samples, chunk_size, batch_size,
                            num_examples, write)

  def _writing(self, write):
    """The workdir's lock (tfvae/lock.py) when a call writes into it, taken before the work."""
    return lock.hold(self.workdir) if write and self.workdir else contextlib.nullcontext()

  def _evaluate(self, data, split, num_importance_samples, chunk_size, batch_size, num_examples,
                write):
    dataset = data_lib.eval_dataset(self.data(data), split, batch_size)
    if num_examples:
      dataset = dataset.unbatch().take(num_examples).batch(batch_size)
    began = time.perf_counter()
    metrics = evaluator_lib.Evaluator(self.model, self.strategy, num_importance_samples,
                                      chunk_size)(dataset)
    metrics.update(dataset=self.config.dataset, split=split,
                   binarization=self.config.binarization,
                   num_importance_samples=num_importance_samples, step=self.step,
                   wall_time_s=round(time.perf_counter() - began, 2))
    if write and self.workdir:
      workdir_lib.merge_eval_json(self.workdir, {workdir_lib.eval_key(split, metrics): metrics})
      writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tensorboard", "eval"))
      summaries.write_scalars(writer, self.step, {
          f"{split}_K{num_importance_samples}/{k}": metrics[k]
          for k in ("elbo", "rate", "distortion", "iwae_bound", "nll", "active_units",
                    "squared_error") if k in metrics})
      writer.close()
    return metrics

  def m1_accuracy(self, num_labels, label_seed=0, split="test", data=None, write=True):
    """M1 (Kingma et al. 2014): logistic regression on posterior means of `num_labels` balanced
    labeled train examples, scored on `split` (tfvae.evaluation.ssl.m1_accuracy); merged into
    eval.json under "m1_SPLIT_<N>labels_seed<S>".

    Returns:
      dict: accuracy in [0, 1], num_labels, label_seed, split, num_examples, step.

    Raises:
      DataError: if N does not fit the data.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir.
    """
    from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
    with self._writing(write):
      return self._m1_accuracy(ssl, num_labels, label_seed, split, data, write)

  def _m1_accuracy(self, ssl, num_labels, label_seed, split, data, write):
    metrics = ssl.m1_accuracy(self.model, self.data(data), self.config, num_labels, label_seed,
                              split)
    metrics["step"] = self.step
    if write and self.workdir:
      workdir_lib.merge_eval_json(self.workdir, {
          workdir_lib.m1_key(split, num_labels, label_seed): metrics})
    return metrics

  def export(self, path=None):
    """Writes the SavedModel (tfvae/serving.py) to `path` (default WORKDIR/export); returns the
    folder written.

    Raises:
      tfvae.lock.WorkdirInUse: if another process holds the folder `path` is written into.
    """
    from tfvae import serving  # pylint: disable=import-outside-toplevel
    path = path or os.path.join(self.workdir, "export")
    return serving.export(self.model, path, step=self.step)
