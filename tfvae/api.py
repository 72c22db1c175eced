"""The Python API: train a run (`fit`), load it (`load`), and ask the trained model.

    import tfvae
    data = tfvae.data.from_directory("my_images/", image_size=(28, 28))
    tfvae.fit(tfvae.Config(latent_dim=16, epochs=20), "runs/mine", data=data)
    model = tfvae.load("runs/mine")
    q_z = model.encode(images)            # tfd.MultivariateNormalDiag, batch [N]
    model.evaluate(data, split="test", num_importance_samples=5000)

Every command line tool is built on these calls and writes the same workdir (config.json,
ckpt/, tensorboard/, eval.json, export). Inputs are numpy arrays: images [N, H, W, C] as
integer pixels 0..max_value (as stored; divided by the run's max value, 255 or 16 for digits),
bool, or floats already in [0, 1]; raw float vectors [N, D] (standardized inside with the
run's statistics under --standardize, outputs in raw units, as the SavedModel does). Values
the SavedModel refuses are refused here too, with a DataError naming the argument and the
range found (tfvae.data.arrays.checked_pixels): integer pixels above max_value, floats outside
[0, 1] (e.g. raw 0..255 floats), NaN, inf, None.
"""

import contextlib
import logging as std_logging
import os
import time
from typing import Any, Optional, Union

from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import cli
from tfvae import data as data_lib
from tfvae import lock
from tfvae import summaries
from tfvae import workdir as workdir_lib
from tfvae.data import arrays
from tfvae.config import Config
from tfvae.errors import ConfigError
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.serving import MAX_SAMPLES

tfd = tfp.distributions


_QUIET = cli.TfvaeInfoOnly()


def _show_logs() -> None:
  """Outside an absl app (a notebook, a script) absl prints only warnings: show tfvae's INFO
  lines (progress, results) as the command line tools do, and other modules' warnings only."""
  if not flags.FLAGS.is_parsed() and logging.get_verbosity() < logging.INFO:
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("absl").addFilter(_QUIET)


SPLITS = ("train", "validation", "test")
PathLike = Union[str, "os.PathLike[str]"]
# What `fit`, `evaluate` and `data` take as data: a tfvae.data Source or unlabeled examples.
DataLike = Union[arrays.Source, np.ndarray]


def _check_int(name: str, value: Any, low: int, high: Optional[int] = None,
               why: str = "") -> None:
  """ValueError naming the argument unless value is an int (not bool) in [low, high]."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
      or value < low or (high is not None and value > high)):
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name}={value!r}: expected an int {bounds}{why}.")


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"split={split!r}: expected one of {', '.join(map(repr, SPLITS))}.")


def as_source(data: Optional[DataLike]) -> Optional[arrays.Source]:
  """`data` as a tfvae.data Source (None stays None; a numpy array is `from_arrays(data)`).

  Raises:
    TypeError: for anything else.
  """
  if data is None or isinstance(data, arrays.Source):
    return data
  if isinstance(data, np.ndarray):
    return arrays.from_arrays(data)
  raise TypeError(f"data must be a tfvae.data Source (from_arrays, from_directory, from_file) "
                  f"or a numpy array, not {type(data).__name__}.")


def _parts(config: Config, encoder: Any, decoder: Any, likelihood: Any,
           prior: Any) -> tuple[Config, Any]:
  """(config with the likelihood/prior names given, user_networks.Parts of the networks)."""
  from tfvae import user_networks  # pylint: disable=import-outside-toplevel
  names = {k: v for k, v in (("likelihood", likelihood), ("prior", prior)) if isinstance(v, str)}
  if names:
    config = type(config).from_dict({**config.to_dict(), **names})
  return config, user_networks.Parts(
      encoder=encoder, decoder=decoder,
      likelihood=None if isinstance(likelihood, str) else likelihood,
      prior=None if isinstance(prior, str) else prior)


def fit(config: Config, workdir: PathLike, data: Optional[DataLike] = None,
        overwrite: bool = False, *, encoder: Optional["keras.Model"] = None,
        decoder: Optional["keras.Model"] = None,
        likelihood: Union[str, "keras.layers.Layer", None] = None,
        prior: Union[str, "keras.layers.Layer", None] = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates and exports.

  What `python -m tfvae.train` does, from Python, optionally with your own Keras networks
  (tfvae/user_networks.py says what each must return; docs/own_networks.md shows them).

  Args:
    config: tfvae.Config.
    workdir: the run folder (created).
    data: optional: a Source (`tfvae.data.from_arrays`, `from_directory`, `from_file`) or a
      numpy array of examples (unlabeled); without it config.dataset is read. A Source read
      from a path records the path and the options it was read with (image_size, max_value,
      label_column) in config.json, so `tfvae.load(workdir).evaluate()`, `python -m
      tfvae.evaluate` and `tfvae.visualize` read it alike. A run trained on arrays records
      config.dataset "in-memory arrays" and the data's fingerprint; later calls that need the
      data (resume, `TrainedModel.evaluate`, `tfvae.draw(workdir, data=...)`) must
      be given the same data.
    overwrite: delete a run with another config in workdir instead of refusing.
    encoder: optional Keras 3 model x [B, *data_shape] -> features [B, F] (tfvae adds the
      posterior head) or a tfd.Distribution q(z|x) with batch [B], event [latent_dim].
    decoder: optional Keras 3 model z [B, latent_dim] -> the likelihood's parameters
      [B, *param_shape] or a tfd.Distribution p(x|z) with batch [B], event data_shape.
    likelihood: optional likelihood name (as config.likelihood) or a Keras layer
      parameters -> tfd.Distribution p(x|z) (its weights train with the model).
    prior: optional prior name (as config.prior) or a Keras layer whose call() returns p(z),
      a tfd.Distribution with event [latent_dim].
    The networks given are templates: tfvae trains copies (built under the strategy's scope;
    a built network's weights are their starting point) and stores their Keras serialization
    in WORKDIR/networks, so that resume, `load`, evaluate and export need only the workdir
    (and the module registering any custom class imported). A run that stored networks
    resumes with them when none are given.

  Returns:
    dict: "validation" and "test" metrics (nats per example) and "step" (see
    tfvae.training.run.train_and_evaluate).

  Raises:
    tfvae.ConfigError: a config that cannot run, or workdir holds another run (and not
      overwrite); a link in workdir that tfvae did not make (tfvae.ForeignLink).
    tfvae.WorkdirInUse (a ConfigError): another process holds workdir (it is named).
    tfvae.DataError: data that cannot be read or do not fit the config.
    tfvae.NetworkError (a ConfigError): a network whose output does not fit the data or
      latent_dim (one line naming it, the shape expected and the one received), that cannot
      be serialized, or that differs from the one the run stored; raised before anything is
      written.
    tfvae.CheckpointMismatch (a ConfigError): workdir holds checkpoints that do not restore
      into this config; before anything is written.
    tfvae.TrainingError: training cannot go on (non-finite updates in a row); the last
      checkpoint is intact.
    tfvae.Interrupted: SIGTERM/SIGINT stopped training after a checkpoint was written; the
      same call resumes.
  """
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  _show_logs()
  source = as_source(data)
  if config.strategy != "multi_worker":
    try:
      distribute.split_cpu(config.num_cpu_devices)
    except RuntimeError:
      raise ConfigError(f"--num_cpu_devices={config.num_cpu_devices}: TensorFlow has already "
                        "started in this process; split the CPU first (call "
                        "tfvae.training.distribute.split_cpu before any TensorFlow op).") from None
  config, parts = _parts(config, encoder, decoder, likelihood, prior)
  strategy = distribute.make_strategy(config)
  return run.train_and_evaluate(config, workdir, overwrite, strategy, source=source,
                                parts=parts)


def load(workdir: PathLike, strategy: Optional[tf.distribute.Strategy] = None, *,
         encoder: Optional["keras.Model"] = None, decoder: Optional["keras.Model"] = None,
         likelihood: Optional["keras.layers.Layer"] = None,
         prior: Optional["keras.layers.Layer"] = None) -> "TrainedModel":
  """The trained model of a run: WORKDIR/config.json, its user networks (WORKDIR/networks) and
  its best checkpoint (ckpt/best, the lowest validation loss), else its latest.

  Args:
    workdir: a run folder written by `fit` or `python -m tfvae.train`.
    strategy: optional tf.distribute.Strategy to build the model under (evaluation then runs
      on its replicas); default the default strategy.
    encoder, decoder, likelihood, prior: the run's own networks (Keras objects), where the
      stored ones cannot be rebuilt here (their classes not importable); they must serialize
      as the stored ones do.

  Returns:
    TrainedModel.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
    tfvae.WorkdirInUse: if it has none yet because a training holds the workdir (the
      message names that process).
    tfvae.CheckpointMismatch: if no checkpoint restores (each damaged, or another model's).
    tfvae.NetworkError: if a stored network does not load here (its class not importable:
      pass it again) or a network given differs from the stored one.
    tfvae.ConfigError: config.json cannot be read as a Config.
  """
  from tfvae import loading  # pylint: disable=import-outside-toplevel
  from tfvae import user_networks  # pylint: disable=import-outside-toplevel
  parts = user_networks.Parts(encoder=encoder, decoder=decoder, likelihood=likelihood,
                              prior=prior)
  try:
    config, model, step = loading.restore_model(workdir, strategy, parts=parts)
  except FileNotFoundError:
    lock.refuse_unfinished(workdir, "config.json or checkpoint")
    raise
  return TrainedModel(config, model, step, workdir, strategy)


class TrainedModel:
  """A trained model with numpy in, numpy or tfp distributions out.

  Attributes:
    config: the run's Config. model: the model object (tfvae.models). step: its train step.
    workdir: the run folder.
  """

  def __init__(self, config: Config, model: Any, step: int, workdir: Optional[PathLike] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config
    self.model = model
    self.step = step
    self.workdir = workdir
    self.strategy = strategy or tf.distribute.get_strategy()

  def __repr__(self) -> str:
    return (f"TrainedModel({self.config.model}, latent_dim={self.config.latent_dim}, "
            f"step={self.step}, workdir={self.workdir!r})")

  def _inputs(self, x: Any, name: str = "x") -> tf.Tensor:
    """float32 Tensor [N, *image_shape] of x, checked as the SavedModel checks it (images:
    tfvae.data.arrays.unit_pixels; vectors: finite features), raw features standardized under
    --standardize."""
    x = np.asarray(x)
    shape = tuple(self.config.image_shape)
    if x.shape[1:] != shape and x.ndim == len(shape) and len(shape) == 3 and shape[-1] == 1:
      x = x[..., None]  # [N, H, W] gray images
    if x.shape[1:] != shape or not x.ndim:
      raise ValueError(f"{name} has shape {x.shape}; this model takes "
                       f"[N, {', '.join(map(str, shape))}].")
    if len(shape) == 3:
      x = arrays.unit_pixels(x, self.config.pixel_levels - 1, name)
    else:
      x = arrays.checked_vectors(x, name)
    if self.config.feature_mean:  # --standardize: raw features in
      x = (x - np.asarray(self.config.feature_mean)) / np.asarray(self.config.feature_scale)
    return tf.constant(x, tf.float32)

  def _raw(self, x: Any) -> np.ndarray:
    """Model outputs in raw feature units (--standardize), as the export returns them."""
    x = np.asarray(x)
    if self.config.feature_mean:
      x = x * np.asarray(self.config.feature_scale, np.float32) + np.asarray(
          self.config.feature_mean, np.float32)
    return x

  def encode(self, x: np.ndarray) -> "tfp.distributions.Distribution":
    """q(z|x): a tfd.Distribution with batch [N], event [latent_dim] (its mean() is the code;
    a point mass for deterministic autoencoders).

    Args:
      x: images [N, H, W, C] (or [N, H, W] gray): integer pixels 0..max_value (the run's,
        e.g. 255 or 16; divided by it), bool, or floats in [0, 1]; or vectors [N, D] of finite
        raw features. (See the module docstring.)

    Raises:
      ValueError: for a model whose posterior needs a label as well (m2), or x of another shape.
      DataError (a ValueError): x's values are not pixels (integers outside 0..max_value, floats
        outside [0, 1], NaN, inf, None), naming x and the range found.
    """
    if self.model.label_classes:
      raise ValueError(f"--model={self.config.model} encodes x together with a label y: use "
                       "model.model.encode(x, y_onehot).")
    return self.model.posterior(self._inputs(x))

  def decode(self, z: np.ndarray) -> "tfp.distributions.Distribution":
    """p(x|z): a tfd.Distribution, batch [N], event image_shape, for codes z float [N, D]
    (over standardized features with --standardize).

    Raises:
      ValueError: z of another shape; DataError (a ValueError): z not finite, as the SavedModel.
    """
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
      raise ValueError(f"z has shape {z.shape}; this model decodes [N, {self.config.latent_dim}].")
    return self.model.decode(tf.constant(arrays.checked_vectors(z, "z"), tf.float32))

  def reconstruct(self, x: np.ndarray) -> np.ndarray:
    """float32 numpy [N, *image_shape]: the decoder mean at the posterior mean (raw units).

    Raises:
      ValueError / DataError: x as in `encode`.
    """
    return self._raw(self.model.reconstruct(self._inputs(x)))

  def sample(self, num: int, seed: int = 0,
             label: Optional[int] = None) -> dict[str, np.ndarray]:
    """{"mean", "sample"}: float32 numpy [num, *image_shape] from z ~ p(z) (models with a prior);
    label-conditional models (M2) also return "label": int64 numpy [num], the class of each.

    Args:
      num: int, 0 <= num <= MAX_SAMPLES (65536, as the SavedModel's sample: the outputs are
        held in memory; call again with other seeds for more).
      seed: int32 (in [-2**31, 2**31)); the same seed gives the same images.
      label: label-conditional models only: None draws each image's class y ~ p(y); an int in
        [0, K) (K = model.label_classes) makes every image of that class (the SavedModel's
        sample takes the same, with a negative label for "draw").

    Raises:
      ValueError: for deterministic autoencoders (no prior), num / seed not such an int, or a
        label given to a model without classes or outside [0, K) (raised before any work).
    """
    if not self.model.generative:
      raise ValueError(f"--model={self.config.model} has no prior p(z) to sample from.")
    _check_int("num", num, 0, MAX_SAMPLES, " (the outputs are held in memory: call sample "
               "again with another seed for more)")
    _check_int("seed", seed, -2 ** 31, 2 ** 31 - 1, " (an int32)")
    classes = self.model.label_classes
    if label is not None:
      if not classes:
        raise ValueError(f"label={label!r}: --model={self.config.model} is not "
                         "label-conditional (only m2 samples a given class).")
      _check_int("label", label, 0, classes - 1,
                 f", a class of the {classes} (label=None draws y ~ p(y))")
    label_arg = tf.constant(-1 if label is None else label, tf.int64) if classes else None
    out = self.model.sample(tf.constant(num, tf.int32), tf.constant([seed, 0], tf.int32),
                            label_arg)
    return {k: np.asarray(v) if k == "label" else self._raw(v) for k, v in out.items()}

  def _terms(self, x: Any) -> dict[str, np.ndarray]:
    x = self._inputs(x)
    batch = {"image": x, "label": tf.fill([tf.shape(x)[0]], tf.constant(-1, tf.int64)),
             "index": tf.range(tf.shape(x)[0], dtype=tf.int64)}
    terms = tf.function(self.model.losses, autograph=False)(batch, tf.constant(evaluator_lib.EVAL_SEED, tf.int32),
                                           tf.constant(self.step, tf.int64), training=False)
    return {k: v.numpy() for k, v in terms.items()}

  def elbo(self, x: np.ndarray) -> np.ndarray:
    """float32 numpy [N]: the ELBO of each example (nats; the evaluation noise, deterministic:
    example i gets the noise `evaluate` gives the i-th example of a split). With --standardize
    it bounds the log-density of the standardized features.

    Args:
      x: as in `encode`.

    Raises:
      ValueError: for models without an ELBO (deterministic autoencoders), x of another shape.
      DataError (a ValueError): x's values are not pixels, as in `encode`.
    """
    terms = self._terms(x)
    if "elbo" not in terms:
      raise ValueError(f"--model={self.config.model} has no ELBO.")
    return terms["elbo"]

  def iwae_bound(self, x: np.ndarray, num_importance_samples: int = 1000,
                 chunk_size: int = 500) -> np.ndarray:
    """float32 numpy [N]: the importance-weighted bound on log p(x) (Burda et al. 2016), nats.

    Args:
      x: as in `encode`.
      num_importance_samples: int >= 1, K (K = 1 gives the ELBO's expectation).
      chunk_size: int >= 1, importance samples evaluated at once (bounds memory).

    Raises:
      ValueError: for models without a prior (deterministic autoencoders) or posterior (m2),
        num_importance_samples or chunk_size not an int >= 1 (before any work), x as in
        `encode`.
    """
    if not self.model.generative:
      raise ValueError(f"--model={self.config.model} has no prior: no bound on log p(x).")
    if self.model.label_classes:
      raise ValueError(f"--model={self.config.model}: q(z|x, y) needs a class; its bound on "
                       "log p(x) is the elbo (-U(x)).")
    _check_int("num_importance_samples", num_importance_samples, 1)
    _check_int("chunk_size", chunk_size, 1)
    x = self._inputs(x)

    @tf.function(autograph=False)
    def bound(x: tf.Tensor) -> tf.Tensor:
      return evaluator_lib.iwae_bound(
          self.model, x, num_importance_samples, chunk_size,
          tf.constant(evaluator_lib.EVAL_SEED, tf.int32), q_z=self.model.posterior(x),
          index=tf.range(tf.shape(x)[0], dtype=tf.int64))

    return bound(x).numpy()

  def data(self, source: Optional[DataLike] = None) -> data_lib.Data:
    """The run's Data: `source` (given to `fit`) or config.dataset read again, checked against
    the run's data fingerprint (tfvae.data.load)."""
    return data_lib.load(self.config, as_source(source))

  def evaluate(self, data: Optional[DataLike] = None, split: str = "test",
               num_importance_samples: int = 5000, chunk_size: int = 500,
               batch_size: int = 100, num_examples: int = 0,
               write: bool = True) -> dict[str, Any]:
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
      ValueError: split not one of the three, num_importance_samples, chunk_size or batch_size
        not an int >= 1, num_examples not an int >= 0 (each named, before any work).
      DataError: if the data cannot be read or differ from the run's.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir (checked
        before the evaluation runs; so is the workdir's writability, ConfigError).
    """
    _check_split(split)
    _check_int("num_importance_samples", num_importance_samples, 1)
    _check_int("chunk_size", chunk_size, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("num_examples", num_examples, 0)
    with self._writing(write):
      return self._evaluate(data, split, num_importance_samples, chunk_size, batch_size,
                            num_examples, write)

  def _writing(self, write: bool) -> contextlib.AbstractContextManager[Any]:
    """The workdir's lock (tfvae/lock.py) when a call writes into it, taken before the work."""
    return lock.hold(self.workdir) if write and self.workdir else contextlib.nullcontext()

  def _evaluate(self, data: Optional[DataLike], split: str, num_importance_samples: int,
                chunk_size: int, batch_size: int, num_examples: int,
                write: bool) -> dict[str, Any]:
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

  def m1_accuracy(self, num_labels: int, label_seed: int = 0, split: str = "test",
                  data: Optional[DataLike] = None, write: bool = True) -> dict[str, Any]:
    """M1 (Kingma et al. 2014): logistic regression on posterior means of `num_labels` balanced
    labeled train examples, scored on `split` (tfvae.evaluation.ssl.m1_accuracy); merged into
    eval.json under "m1_SPLIT_<N>labels_seed<S>".

    Returns:
      dict: accuracy in [0, 1], num_labels, label_seed, split, num_examples, step.

    Raises:
      ValueError: split not "train", "validation" or "test" (before any work).
      DataError: if N does not fit the data.
      tfvae.lock.WorkdirInUse: with write, if another process holds the workdir.
    """
    _check_split(split)
    from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
    with self._writing(write):
      return self._m1_accuracy(ssl, num_labels, label_seed, split, data, write)

  def _m1_accuracy(self, ssl: Any, num_labels: int, label_seed: int, split: str,
                   data: Optional[DataLike], write: bool) -> dict[str, Any]:
    metrics = ssl.m1_accuracy(self.model, self.data(data), self.config, num_labels, label_seed,
                              split)
    metrics["step"] = self.step
    if write and self.workdir:
      workdir_lib.merge_eval_json(self.workdir, {
          workdir_lib.m1_key(split, num_labels, label_seed): metrics})
    return metrics

  def export(self, path: Optional[PathLike] = None) -> str:
    """Writes the SavedModel (tfvae/serving.py) to `path` (default WORKDIR/export); returns the
    folder written.

    Raises:
      ValueError: without `path` for a model that has no workdir.
      tfvae.lock.WorkdirInUse: if another process holds the folder `path` is written into.
      tfvae.errors.ForeignLink: if `path` (or the folder's .tfvae.lock) is a link tfvae did not
        make (docs/running.md, links in a run folder).
    """
    from tfvae import serving  # pylint: disable=import-outside-toplevel
    if not path and not self.workdir:
      raise ValueError("This TrainedModel has no workdir: give export a path.")
    path = path or os.path.join(self.workdir or "", "export")
    return serving.export(self.model, path, step=self.step)
