"""The Python API: train a run (`fit`), load it (`load`), and ask the trained model.

    import tfvae
    data = tfvae.data.from_directory("my_images/", image_size=(28, 28))
    model = tfvae.fit(tfvae.Config(latent_dim=16, epochs=20), "runs/mine", data=data)
    model.results["test"]["elbo"]         # the final metrics, also in runs/mine/eval.json
    model = tfvae.load("runs/mine")       # the same model, in another process
    q_z = model.encode(images)            # tfd.MultivariateNormalDiag, batch [N]
    model.evaluate(data, split="test", num_importance_samples=5000)

Every command line tool is built on these calls and writes the same workdir (config.json,
ckpt/, tensorboard/, eval.json, export). What the model takes and returns: TrainedModel
(tfvae/trained.py).
"""

import logging as std_logging
import tempfile
from typing import Any, Optional, Union

from absl import flags
from absl import logging
import keras
import tensorflow as tf

from tfvae import cli
from tfvae import config_io
from tfvae import lock
from tfvae.config import Config
from tfvae.errors import ConfigError
from tfvae.trained import as_source, DataLike, PathLike, TrainedModel  # noqa: F401 (API names)

_QUIET = cli.TfvaeInfoOnly()


def _show_logs() -> None:
  """Outside an absl app (a notebook, a script) absl prints only warnings: show tfvae's INFO
  lines (progress, results) as the command line tools do, and other modules' warnings only."""
  if not flags.FLAGS.is_parsed() and logging.get_verbosity() < logging.INFO:
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("absl").addFilter(_QUIET)


def _parts(config: Config, encoder: Any, decoder: Any, likelihood: Any,
           prior: Any, classifier: Any) -> tuple[Config, Any]:
  """(config with the likelihood/prior names given, user_networks.Parts of the networks)."""
  from tfvae import user_networks  # pylint: disable=import-outside-toplevel
  names = {k: v for k, v in (("likelihood", likelihood), ("prior", prior)) if isinstance(v, str)}
  if names:
    config = config.replace(**names)
  return config, user_networks.Parts(
      encoder=encoder, decoder=decoder,
      likelihood=None if isinstance(likelihood, str) else likelihood,
      prior=None if isinstance(prior, str) else prior, classifier=classifier)


def fit(config: Config, workdir: Optional[PathLike] = None, data: Optional[DataLike] = None,
        overwrite: bool = False, *, encoder: Optional["keras.Model"] = None,
        decoder: Optional["keras.Model"] = None,
        likelihood: Union[str, "keras.layers.Layer", None] = None,
        prior: Union[str, "keras.layers.Layer", None] = None,
        classifier: Optional["keras.Model"] = None) -> TrainedModel:
  """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates and exports.

  What `python -m tfvae.train` does, from Python, optionally with your own Keras networks
  (tfvae/user_networks.py says what each must return; docs/own_networks.md shows them, family
  by family). Which of them a family takes, its config says (config.model.accepts()): vae all
  but the classifier; pc_vae all five; hvae all but the classifier (the
  encoder is q(z2|x), the decoder reads [z1, z2], the prior is p(z2)); m2 all but the prior;
  cvae all but the classifier (the encoder's features are joined with the condition c, the
  decoder reads [z, c], the prior is p(z|c), called on c); the autoencoders encoder, decoder
  and likelihood.

  Migration (issue 34): `fit` returned the dict of final metrics; it now returns the trained
  model, and that dict is its `.results`: `results = tfvae.fit(...)` becomes
  `results = tfvae.fit(...).results` (`tfvae.fit(...).results["test"]["elbo"]`).

  Args:
    config: tfvae.Config.
    workdir: the run folder (created). Left out (None), a new temporary folder is used (in
      tempfile.gettempdir(), named in the log and in the model's `.workdir`; not removed).
    data: optional: a Source (`tfvae.data.from_arrays`, `from_directory`, `from_file`) or a
      numpy array of examples (unlabeled); without it config.data.dataset is read. A Source read
      from a path records the path and the options it was read with (image_size, max_value,
      label_column) in config.json, so `tfvae.load(workdir).evaluate()`, `python -m
      tfvae.evaluate` and `tfvae.visualize` read it alike. A run trained on arrays records
      config.data.dataset "in-memory arrays" and the data's fingerprint; later calls that need the
      data (resume, `TrainedModel.evaluate`, `tfvae.draw(workdir, data=...)`) must
      be given the same data.
    overwrite: delete a run with another config in workdir instead of refusing.
    encoder: optional Keras 3 model x [B, *data_shape] -> features [B, F] (tfvae adds the
      posterior head; m2: q(z|x, y) on the features joined with y; cvae: q(z|x, c) on them
      joined with c) or a tfd.Distribution q(z|x) with batch [B], event [latent_dim] (not for
      m2, cvae or --posterior=iaf). Or name a
      factory in the config instead (config.model.encoder/decoder, "module.path:function",
      called with (data_shape, latent_dim) once the data are read; its module is imported
      again when the run is loaded): not both.
    decoder: optional Keras 3 model over the family's decoder input [B, W] -> the likelihood's
      parameters [B, *param_shape] or a tfd.Distribution p(x|z) with batch [B], event
      data_shape. The input is z [B, latent_dim]; for a family that reads more than z, one
      Tensor of them concatenated on the last axis: hvae [z1, z2] [B, 2 * latent_dim], m2
      [z, y_onehot] [B, latent_dim + K], cvae [z, c] [B, latent_dim + C] (C: the condition's
      width, K for class labels).
    likelihood: optional likelihood name (as config.model.likelihood) or a Keras layer
      parameters -> tfd.Distribution p(x|z) (its weights train with the model).
    prior: optional prior name (as config.model.prior) or a Keras layer whose call() returns p(z),
      a tfd.Distribution with event [latent_dim] (hvae: p(z2)). cvae (with
      conditional_prior="learned"): a Keras model c [B, C] -> p(z|c), a tfd.Distribution with
      batch [B] and event [latent_dim], or its (loc, raw scale) [B, 2 * latent_dim] (scale
      softplus(raw scale)), in place of tfvae's prior network.
    classifier: optional Keras 3 model (pc_vae: z [B, latent_dim], the code; m2: x
      [B, *data_shape]) -> logits float [B, K] or a tfd.Categorical with batch [B] over the
      K = config.data.num_classes classes; it gives the accuracy term as tfvae's would.
    The networks given are templates: tfvae trains copies (built under the strategy's scope;
    a built network's weights are their starting point) and stores their Keras serialization
    in WORKDIR/networks, so that resume, `load`, evaluate and export need only the workdir
    (and the module registering any custom class imported). A run that stored networks
    resumes with them when none are given.

  Returns:
    TrainedModel: the trained weights (the best checkpoint's, the ones evaluated and
    exported), its step (that checkpoint's) and workdir; `.results` holds the final metrics:
    {"step": the run's step, "validation": {...}, "test": {...}} (nats per example, each with
    split, step and checkpoint_step), as merged into WORKDIR/eval.json.

  Raises:
    tfvae.ConfigError: a config that cannot run, or workdir holds another run (and not
      overwrite), or no workdir with --strategy=multi_worker (its workers share one); a
      link in workdir that tfvae did not make (tfvae.ForeignLink).
    tfvae.WorkdirInUse (a ConfigError): another process holds workdir (it is named).
    tfvae.DataError: data that cannot be read or do not fit the config.
    tfvae.NetworkError (a ConfigError): a network the family does not take, or whose input
      or output does not fit the data, latent_dim or the number of classes (one line naming
      it, the shape expected and the one received), that cannot
      be serialized, or that differs from the one the run stored; a factory the config names
      that cannot be imported or called or does not return a keras.Model, or a network given
      as well as named by factory; raised before anything is written.
    tfvae.CheckpointMismatch (a ConfigError): workdir holds checkpoints that do not restore
      into this config; before anything is written.
    tfvae.TrainingError: training cannot go on (non-finite updates in a row); the last
      checkpoint is intact.
    tfvae.Interrupted: SIGTERM/SIGINT stopped training after a checkpoint was written; the
      same call resumes.
  """
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  _show_logs()
  source = as_source(data)
  if workdir is None:
    if config.execution.strategy == "multi_worker":
      raise ConfigError("--strategy=multi_worker needs a workdir that every worker shares: "
                        "give fit a workdir.")
    workdir = tempfile.mkdtemp(prefix="tfvae-")
    logging.info("No workdir given: this run is in %s (a temporary folder; pass workdir= to "
                 "choose where).", workdir)
  config, parts = _parts(config, encoder, decoder, likelihood, prior, classifier)
  strategy = strategy_for(config)  # before any TF op (multi_worker: collectives)
  trained = run.train_model(config, workdir, overwrite, strategy, source=source, parts=parts)
  return TrainedModel(trained.config, trained.model, trained.step, workdir, strategy,
                      results=trained.results,
                      sampler=_stored_sampler(workdir, trained.step, trained.model))


def load(workdir: PathLike, strategy: Union[tf.distribute.Strategy, str, None] = None, *,
         encoder: Optional["keras.Model"] = None, decoder: Optional["keras.Model"] = None,
         likelihood: Optional["keras.layers.Layer"] = None,
         prior: Optional["keras.layers.Layer"] = None,
         classifier: Optional["keras.Model"] = None) -> "TrainedModel":
  """The trained model of a run: WORKDIR/config.json, its user networks (WORKDIR/networks) and
  its best checkpoint (ckpt/best, the lowest validation loss), else its latest.

  Args:
    workdir: a run folder written by `fit` or `python -m tfvae.train`.
    strategy: optional tf.distribute.Strategy to build the model under (evaluation then runs
      on its replicas); default the default strategy. "run": the strategy the run trained
      under (config.json's --strategy and --num_cpu_devices; a multi-worker run as mirrored
      over this process's devices), as `python -m tfvae.evaluate` does.
    encoder, decoder, likelihood, prior, classifier: the run's own networks (Keras
      objects), where the stored ones cannot be rebuilt here (their classes not importable);
      they must serialize as the stored ones do.

  Returns:
    TrainedModel; its `sampler` is the one stored in WORKDIR/sampler (`fit_sampler`) when it
    was fitted to these weights' codes, else the prior.

  Raises:
    FileNotFoundError: if the workdir has no config.json or no checkpoint.
    tfvae.WorkdirInUse: if it has none yet because a training holds the workdir (the
      message names that process).
    tfvae.CheckpointMismatch: if no checkpoint restores (each damaged, or another model's).
    tfvae.NetworkError: if a stored network does not load here (its class not importable:
      pass it again), a network given differs from the stored one, or the module of a factory
      config.json names (--encoder/--decoder) cannot be imported (for a part not given).
    tfvae.ConfigError: config.json cannot be read as a Config; with strategy="run", the
      batch does not split over the replicas or TensorFlow started with another CPU split.
    ValueError: a strategy string other than "run".
  """
  from tfvae import loading  # pylint: disable=import-outside-toplevel
  from tfvae import user_networks  # pylint: disable=import-outside-toplevel
  if isinstance(strategy, str):
    strategy = _run_strategy(workdir, strategy)
  parts = user_networks.Parts(encoder=encoder, decoder=decoder, likelihood=likelihood,
                              prior=prior, classifier=classifier)
  try:
    config, model, step = loading.restore_model(workdir, strategy, parts=parts)
  except FileNotFoundError:
    lock.refuse_unfinished(workdir, "config.json or checkpoint")
    raise
  return TrainedModel(config, model, step, workdir, strategy,
                      sampler=_stored_sampler(workdir, step, model))


def _stored_sampler(workdir: PathLike, step: int, model: Any) -> Any:
  """The sampler stored in WORKDIR/sampler for `model`'s weights (of `step`), else the prior
  (tfvae/samplers: `fit_sampler` stores one; a stale one is refused with a warning)."""
  from tfvae import samplers  # pylint: disable=import-outside-toplevel
  return samplers.load(str(workdir), step, model)


def _run_strategy(workdir: PathLike, name: str) -> tf.distribute.Strategy:
  """The strategy of `load(workdir, strategy="run")`."""
  if name != "run":
    raise ValueError(f"strategy={name!r}: expected a tf.distribute.Strategy, None or 'run'.")
  try:
    config = config_io.load(workdir)
  except FileNotFoundError:
    lock.refuse_unfinished(workdir, config_io.CONFIG_FILENAME)
    raise
  if config.execution.strategy == "multi_worker":  # evaluated in this one process
    config = config.replace(**{"strategy": "mirrored"})
  return strategy_for(config)


def strategy_for(config: Config) -> tf.distribute.Strategy:
  """The tf.distribute.Strategy `fit` trains `config` under (--strategy), the CPU first split
  into --num_cpu_devices logical devices. Call it before any TensorFlow op of the process
  (a split, and multi-worker collectives, must be configured first).

  Raises:
    tfvae.ConfigError: the batch does not split over the replicas, TF_CONFIG is missing or
      invalid (multi_worker), or TensorFlow started in this process with another split.
  """
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  if config.execution.strategy != "multi_worker":
    try:
      distribute.split_cpu(config.execution.num_cpu_devices)
    except RuntimeError:
      raise ConfigError(f"--num_cpu_devices={config.execution.num_cpu_devices}: TensorFlow has already "
                        "started in this process with another split of the CPU; split it "
                        "first (tfvae.training.distribute.split_cpu before any TensorFlow "
                        "op), or use a new process.") from None
  return distribute.make_strategy(config)


