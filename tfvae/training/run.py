"""One training run in a workdir: resume, the train/evaluate/checkpoint loop, signals, export.

Workdir layout: config.json, ckpt/, tensorboard/{train,eval}/, export (a link to export.<time>),
eval.json, figures/. In a multi-worker run every worker runs this same function; only the chief
writes to the workdir (see tfvae/training/distribute.py).
"""

import contextlib
import os
from typing import Any, NamedTuple
import time

from absl import logging
import tensorflow as tf

from tfvae import config as config_lib
from tfvae import config_io
from tfvae import data as data_lib
from tfvae import lock
from tfvae import network_checks
from tfvae import network_factories
from tfvae import samplers
from tfvae.training import distribute
from tfvae.training import early_stopping
from tfvae.training import failures
from tfvae.training.failures import Interrupted, TrainingError  # noqa: F401 (re-exported)
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.evaluation.evaluator import describe  # noqa: F401 (also run.describe)
from tfvae import serving
from tfvae.training import progress as progress_lib
from tfvae import summaries
from tfvae import user_networks
from tfvae.training import trainer as trainer_lib
from tfvae.training import workdir_setup
from tfvae import workdir as workdir_lib
from tfvae.models import interface

_NUM_SUMMARY_IMAGES = 8


class Trained(NamedTuple):
  """What `train_model` returns: the resolved Config (as config.json holds it), the model with
  the weights that were evaluated and exported (the best checkpoint's), their step, and the
  results of `train_and_evaluate`."""
  config: Any
  model: Any
  step: int
  results: dict


def train_and_evaluate(config, workdir, overwrite=False, strategy=None, source=None,
                       parts=None):
  """`train_model(...).results`: the final metrics (Returns of `train_model`)."""
  return train_model(config, workdir, overwrite, strategy, source, parts).results


def train_model(config, workdir, overwrite=False, strategy=None, source=None, parts=None):
  """Trains `config` in `workdir`, resuming from its latest checkpoint, then evaluates and exports.

  With --early_stopping_patience, training stops after that many evaluations (after the
  warm-up) without a lower validation loss. Either way the checkpoint of the lowest validation
  loss is kept in WORKDIR/ckpt/best (tfvae/training/early_stopping.py), and it is what the final
  evaluation and the export use. With a calibrated likelihood (--likelihood=normal) every
  validation first fits its scale on the validation split (Evaluator.calibrate), so the
  checkpoints of that step, the best one, the test metrics and the export carry a held-out sigma.

  Options the model ignores (`--model=ae --beta=4`) are put back to their defaults with a
  warning each (Config.normalized), so config.json holds what defines the run.

  Returns:
    Trained: (config, model, step, results), results a dict with the final "validation" and
    "test" metrics (nats per example; each with its
    split, step (the run's), checkpoint_step (that of the weights evaluated: the best
    checkpoint's) and, with an iwae_bound, num_importance_samples) and "step"; they are merged
    into WORKDIR/eval.json under keys that name split and K (tfvae/workdir.py), keeping the
    entries other commands wrote.

  Args:
    config: the Config to train.
    workdir: the run folder.
    overwrite: if the workdir holds a run with a different config, delete it
      (workdir_setup.RUN_OUTPUTS) instead of refusing.
    strategy: the tf.distribute.Strategy to train under; default `distribute.make_strategy(config)`.
      Pass it when it must exist before any TF op (--strategy=multi_worker: the entry point
      creates it first). Under MultiWorkerMirroredStrategy every worker calls this function;
      the chief alone writes to the workdir (config.json, ckpt/, tensorboard/, eval.json,
      export), and all workers stop together after SIGTERM/SIGINT to any of them.
    source: optional tfvae.data.arrays.Source to train on instead of reading config.data.dataset;
      config.data.dataset becomes its origin (a path, which later commands read again with the
      reader options recorded beside it, or "in-memory arrays"): see `workdir_setup.with_source`.
    parts: optional tfvae.user_networks.Parts, the user's Keras networks: checked against the
      data before anything is written, stored in WORKDIR/networks, trained as copies. Without
      them a run that stored networks resumes with those. A config that names factories
      (--encoder/--decoder=module:function) has them called once the data are read
      (network_factories.from_config), their networks used as if given here.

  Raises:
    tfvae.config.ConfigError: if workdir holds a run with a different config (and not
      overwrite), or the batch does not split over the replicas.
    tfvae.lock.WorkdirInUse: if another process holds the workdir (tfvae/lock.py).
    tfvae.data.DataError: if the dataset cannot be had, or the batch is larger than its train
      split; before anything is written.
    tfvae.user_networks.NetworkError: a user network that does not fit the data or the model,
      cannot be stored, or differs from the one the run stored; a factory that cannot be
      imported or called or does not return a keras.Model; a network both given and named by
      factory; before anything is written.
    checkpoints.CheckpointMismatch: if WORKDIR/ckpt holds checkpoints and none restores into
      this config (e.g. config.json was lost and other flags were given); before anything is
      written.
    TrainingError: after --max_consecutive_skips non-finite updates in a row.
    Interrupted: after SIGTERM/SIGINT, once a checkpoint is written.
  """
  config, ignored = config.normalized()  # what defines the run, as config.json says
  for message in ignored:
    logging.warning("%s", message)
  strategy = strategy or distribute.make_strategy(config)  # checks the batch split first
  chief = distribute.is_chief(strategy)
  if source is not None:
    config = workdir_setup.with_source(config, source)
  config = workdir_setup.auto_as_in_workdir(config, workdir)
  data = data_lib.load(config, source)
  config = workdir_setup.resolve(config, data)
  mismatch = config_lib.likelihood_mismatch(config)
  if mismatch:
    logging.warning("%s", mismatch)
  data_lib.TrainBatches(data, config)  # a batch the data cannot fill: before anything is written
  parts = network_factories.from_config(config, parts)  # --encoder/--decoder, called
  network_checks.check(parts, config)  # before any write
  with contextlib.ExitStack() as held:
    refused = None
    try:
      if chief:
        held.enter_context(lock.hold(workdir))  # creates the workdir
        workdir_setup.check_workdir(config, workdir, overwrite)
      try:
        parts = user_networks.reconcile(workdir, parts)  # those given, or those the run stored
      except user_networks.NetworkError:
        if not (chief and overwrite):
          raise
        logging.warning("--overwrite: deleting the run in %s (other networks)", workdir)
        workdir_setup.delete_run(workdir)
    except config_lib.ConfigError as e:  # WorkdirInUse and NetworkError included
      refused = e
    return _train_in_workdir(config, data, workdir, strategy, chief, refused, parts)


def _export_loads(path):
  """Whether the SavedModel at `path` loads; a warning says why not."""
  try:
    tf.saved_model.load(path)
    return True
  except (OSError, ValueError, tf.errors.OpError) as e:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    logging.warning("The SavedModel in %s does not load (%s): exporting it again.", path, reason)
    return False


# --eval_every=0 evaluates once per epoch, but never more often than every this many steps: on
# small data (300 examples, batch 64: 5 steps an epoch) an evaluation every epoch is a validation
# line and a K = 10 bound every few steps.
MIN_EVAL_EVERY = 100


def eval_interval(config, steps_per_epoch):
  """Steps between validations: --eval_every, else one epoch rounded up to whole epochs of at
  least MIN_EVAL_EVERY steps (a run also validates at its last step)."""
  if config.training.eval_every:
    return config.training.eval_every
  return -(-MIN_EVAL_EVERY // steps_per_epoch) * steps_per_epoch


def _train_in_workdir(config, data, workdir, strategy, chief, refused, parts):
  """train_and_evaluate once the data are read and checked, and the chief holds the lock (or
  was refused: `refused`, which every worker learns)."""
  # The other workers learn that the chief refused (and stop) instead of waiting for it; once
  # this returns, the chief has replaced any run --overwrite deletes, so all restore the same.
  if distribute.any_worker(strategy, [refused is not None])[0]:
    raise refused or config_lib.ConfigError(
        f"The chief refused to train in --workdir={workdir} (its log says why).")

  trainer = trainer_lib.Trainer(config, strategy, workdir, parts)
  start = trainer.restore()  # checkpoints of another model: refused before config.json is written
  if chief:
    user_networks.save(workdir, parts)
    if start and not os.path.exists(os.path.join(workdir, config_io.CONFIG_FILENAME)):
      logging.warning("%s had checkpoints but no config.json; they restored into this "
                      "command's config, which is written there now.", workdir)
    workdir_lib.remove_leftovers(workdir)
    config_io.save(config, workdir)
  per_epoch = data_lib.steps_per_epoch(data, config)
  total = config.training.train_steps or config.training.epochs * per_epoch
  eval_every = eval_interval(config, per_epoch)
  logging.info("%s: %d train / %d validation / %d test %s %s, %d replicas",
               config.data.dataset, len(data.train), len(data.validation), len(data.test),
               "images" if len(data.image_shape) == 3 else "vectors", data.image_shape,
               strategy.num_replicas_in_sync)
  ckpt_dir = os.path.join(workdir, "ckpt")
  best = early_stopping.BestCheckpoint(trainer.checkpoint, config, eval_every, workdir, strategy)
  stopped_early = best.should_stop(start)
  if stopped_early:
    logging.info("Early stopping: the validation loss has not improved for %d evaluations "
                 "since step %d (--early_stopping_patience=%d).",
                 best.evaluations_without_improvement(start), best.best_step,
                 config.training.early_stopping_patience)
    total = start
  if start >= total:
    finished = workdir_lib.finished_results(workdir, start)
    if finished and not _export_loads(os.path.join(workdir, "export")):
      finished = None  # damaged (a truncated saved_model.pb): evaluated and exported again
    if finished:
      logging.info("Nothing left to train: %s holds a finished run at step %d (%s). Its results "
                   "are in %s, its SavedModel in %s.", workdir, start,
                   "stopped early: raise --early_stopping_patience to train on" if stopped_early
                   else f"this command asks for {total} steps; raise --train_steps or --epochs "
                   "to train on",
                   os.path.join(workdir, workdir_lib.EVAL_FILENAME),
                   os.path.join(workdir, "export"))
      return Trained(config, trainer.model,
                     early_stopping.restore_best(trainer, workdir, best, start, False), finished)
    logging.info("The checkpoint in %s is at step %d of %d: evaluating and exporting it.",
                 ckpt_dir, start, total)
  elif start:
    logging.info("Resuming from %s at step %d of %d", ckpt_dir, start, total)
  else:
    logging.info("Training from step 0 to %d", total)

  validation = data_lib.eval_dataset(data, "validation", config.execution.eval_batch_size)
  summary_images = (tf.constant(data.validation.images[:_NUM_SUMMARY_IMAGES] / data.max_value,
                                tf.float32) if len(data.image_shape) == 3 else None)
  iterator = trainer.train_iterator(data, start)
  step, validation_metrics = start, None
  with failures.StopSignals() as stop, contextlib.ExitStack() as cleanup:
    writers = {name: tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", name))
               if chief else tf.summary.create_noop_writer() for name in ("train", "eval")}
    for writer in writers.values():
      cleanup.callback(writer.close)  # also when the loop raises: no buffered event is lost
    progress = cleanup.enter_context(progress_lib.Progress(total, start,
                                                           config.training.batch_size))
    while step < total:
      boundary = min(total, step + config.execution.steps_per_loop,
                     (step // eval_every + 1) * eval_every,
                     (step // config.execution.checkpoint_every + 1) * config.execution.checkpoint_every)
      began, num_steps = time.perf_counter(), boundary - step
      metrics = trainer.train(iterator, num_steps)
      examples_per_second = num_steps * config.training.batch_size / (time.perf_counter() - began)
      step = boundary
      skipped = metrics.pop("skipped")
      if skipped:
        logging.warning("step %d: skipped %d of the last %d updates for a non-finite loss or "
                        "gradient (%d in a row, %d in this run)", step, skipped, num_steps,
                        int(trainer.consecutive_skips.numpy()),
                        int(trainer.skipped_updates.numpy()))
      if int(trainer.consecutive_skips.numpy()) >= config.execution.max_consecutive_skips:
        raise failures.too_many_skips(int(trainer.consecutive_skips.numpy()),
                                      config.execution.max_consecutive_skips, step, workdir)
      if isinstance(trainer.model, interface.LatentVariableModel):
        metrics["beta"] = float(trainer.model.beta(step))  # the scheduled rate weight, now
      summaries.write_scalars(writers["train"], step, {
          **metrics, "learning_rate": config.training.learning_rate,
          "examples_per_second": examples_per_second,
          "skipped_updates": int(trainer.skipped_updates.numpy())})
      progress.update(step, metrics["loss"])
      failures.stop_if_signalled(stop, strategy, trainer, writers, step, workdir, saved=False)
      if step % eval_every == 0 or step == total:
        trainer.calibrate(validation)  # a held-out sigma: evaluated, checkpointed, exported
        metrics = validation_metrics = trainer.evaluate(validation)
        summaries.write_scalars(writers["eval"], step, metrics)
        if chief and summary_images is not None:
          summaries.write_images(writers["eval"], step, trainer.model, summary_images,
                                 tf.constant(evaluator_lib.EVAL_SEED, tf.int32),
                                 data.validation.labels[:_NUM_SUMMARY_IMAGES],
                                 None if data.validation.conditions is None else
                                 data.validation.conditions[:_NUM_SUMMARY_IMAGES])
        writers["eval"].flush()
        writers["train"].flush()
        improved = best.update(step, metrics["loss"])
        logging.info("step %d  epoch %.2f  validation %s  (%.0f examples/s)%s", step,
                     step / per_epoch, describe(metrics, config), examples_per_second,
                     "  best" if improved else "")
        if best.should_stop(step):
          logging.info("Early stopping at step %d: no better validation loss than %.3f (step "
                       "%d) in %d evaluations (--early_stopping_patience=%d).", step,
                       best.best_loss, best.best_step, best.evaluations_without_improvement(step),
                       config.training.early_stopping_patience)
          total = step
      if step % config.execution.checkpoint_every == 0 or step == total:
        trainer.save()
    # A signal during the last loop's validation or checkpoint write stops here, like the others
    # (that loop saved at `step`; with no loop, `step` is the restored checkpoint's).
    failures.stop_if_signalled(stop, strategy, trainer, writers, step, workdir, saved=True)
  checkpoint_step = early_stopping.restore_best(trainer, workdir, best, step)  # evaluated, exported
  if checkpoint_step != step:
    validation_metrics = None
  if validation_metrics is None:  # the same held-out sigma a best checkpoint was evaluated with
    trainer.calibrate(validation)
  results = {"step": step,
             "validation": validation_metrics or trainer.evaluate(validation),
             "test": trainer.evaluate(data_lib.eval_dataset(data, "test",
                                                            config.execution.eval_batch_size))}
  entries = {"step": step, "final": {}}
  for split in ("validation", "test"):
    metrics = results[split] = dict(results[split], split=split, step=step,
                                    checkpoint_step=checkpoint_step)
    if "iwae_bound" in metrics:
      metrics["num_importance_samples"] = config.training.eval_importance_samples
    entries["final"][split] = workdir_lib.eval_key(split, metrics)
    entries[entries["final"][split]] = metrics
  skips = failures.skips(workdir, step, int(trainer.skipped_updates.numpy()), step - start)
  failed = failures.diverged(results, checkpoint_step) or failures.untrained(skips, workdir)
  if chief:
    workdir_lib.merge_eval_json(  # non-finite values as null, with the reason
        workdir, {**entries, failures.SKIPS_KEY: skips} if skips["updates"] else entries)
  if failed:
    raise failed
  logging.info("step %d  test %s", step, describe(results["test"], config))
  # A sampler fitted to these very weights (tfvae/samplers: a run evaluated and exported again
  # without training) stays in the export; a stale one is left out, with a warning.
  sampler = samplers.load(workdir, checkpoint_step, trainer.model)
  with distribute.write_dir(strategy, workdir) as export_dir:  # every worker saves
    serving.export(trainer.model, os.path.join(export_dir, "export"), step=step,
                   checkpoint_step=checkpoint_step, sampler=sampler)
  return Trained(config, trainer.model, checkpoint_step, results)
