"""Hyperparameter search over beta, latent size (and learning rate) with keras-tuner: `search`.

`python -m tfvae.tune --flagfile=configs/tune_NAME.cfg [--workdir=DIR]` (tfvae/tune.py) runs it.

keras-tuner only proposes hyperparameters; every trial is an ordinary tfvae run
(`tfvae.fit`: the project's trainer, under the same distribution strategy as
`python -m tfvae.train`) in its own folder, so it can be evaluated, visualized and exported like
any run. Trials are ranked by a held-out objective (validation `nll` at K =
--eval_importance_samples, or validation `elbo` at beta = 1), never by the beta-weighted training
loss, which does not compare across beta. Any Config flag not searched is fixed for all trials.

Workdir layout:
  tune.json        the search (tune settings and base config); a re-run must match it
  keras_tuner/     keras-tuner's state (oracle.json, trial_*/trial.json)
  trial_NNN/       one tfvae run per trial: config.json, ckpt/, tensorboard/, eval.json, export
  trials.csv       one row per trial: hyperparameters, objective, elbo, nll, active units, time
  tensorboard/     the HParams dashboard: hparams_config, and one run per trial with its metrics
  best             a symbolic link to the best trial's folder (best/export is its SavedModel)

Re-running the same command continues the search: finished trials are not rerun, a trial that
was interrupted resumes from its last checkpoint, and a larger --max_trials runs only the new
trials. Hyperband promotes a trial by copying its checkpoint (and event files) into the new
trial's folder, so training continues from the step where the promoted trial stopped.
"""

import json
import math
import os
import shutil
import time

from absl import logging
import keras_tuner as kt
import tensorflow as tf

from tfvae import atomic
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import api
from tfvae import errors
from tfvae import lock
from tfvae.tuning import report as tune_report
from tfvae.tuning.report import TRIALS_CSV
from tfvae.tuning.report import trial_name
from tfvae.tuning.settings import OBJECTIVES
from tfvae.tuning.settings import TuneSettings

TUNE_FILENAME = "tune.json"
KERAS_TUNER_DIR = "keras_tuner"

def search_space(settings):
  """The keras-tuner search space, declared up front (Hyperband runs 0 trials otherwise).

  Returns:
    keras_tuner.HyperParameters with "beta" (log-uniform), "latent_dim" (a choice) and, if
    searched, "learning_rate" (log-uniform). A range whose ends are equal is a fixed value.
  """
  space = kt.HyperParameters()
  ranges = [("beta", settings.beta_min, settings.beta_max)]
  if settings.searches_learning_rate:
    ranges.append(("learning_rate", settings.learning_rate_min, settings.learning_rate_max))
  for name, low, high in ranges:
    if low == high:
      space.Fixed(name, low)
    else:
      space.Float(name, low, high, sampling="log")
  space.Choice("latent_dim", list(settings.latent_dims))
  return space


def trial_config(base_config, values):
  """The Config of one trial: `base_config` with the trial's hyperparameters replaced.

  Args:
    base_config: Config of the fixed flags.
    values: dict of the trial's hyperparameter values (keras-tuner's `hyperparameters.values`):
      beta, latent_dim, optionally learning_rate, and Hyperband's "tuner/epochs".

  Returns:
    Config. With "tuner/epochs" the budget is that many epochs (train_steps = 0).
  """
  changes = {"beta": float(values["beta"]), "latent_dim": int(values["latent_dim"])}
  if "learning_rate" in values:
    changes["learning_rate"] = float(values["learning_rate"])
  if "tuner/epochs" in values:
    changes.update(epochs=int(values["tuner/epochs"]), train_steps=0)
  return base_config.replace(**{**changes})


def _copy_tree_atomically(source, target):
  if os.path.exists(target + ".tmp"):
    shutil.rmtree(target + ".tmp")
  shutil.copytree(source, target + ".tmp")
  os.replace(target + ".tmp", target)


class _Tuner(kt.engine.base_tuner.BaseTuner):
  """keras-tuner worker that runs each trial with the project's trainer (no model.fit)."""

  def __init__(self, oracle, base_config, settings, workdir):
    self.base_config, self.settings, self.workdir = base_config, settings, workdir
    super().__init__(oracle, directory=workdir, project_name=KERAS_TUNER_DIR, overwrite=False)

  def run_trial(self, trial, *args, **kwargs):
    """Trains the trial in WORKDIR/trial_NNN (resuming there) and returns its metrics."""
    del args, kwargs
    values = trial.hyperparameters.values
    config = trial_config(self.base_config, values)
    name = trial_name(trial.trial_id)
    trial_dir = os.path.join(self.workdir, name)
    parent = values.get("tuner/trial_id")
    if parent is not None and tf.train.latest_checkpoint(os.path.join(trial_dir, "ckpt")) is None:
      # Hyperband promoted `parent`: continue its training instead of starting over.
      parent_dir = os.path.join(self.workdir, trial_name(parent))
      if tf.train.latest_checkpoint(os.path.join(parent_dir, "ckpt")) is None:
        raise FileNotFoundError(f"Hyperband continues {parent_dir}, which has no checkpoint.")
      for entry in ("tensorboard", "ckpt"):  # ckpt last: its presence means "copied"
        _copy_tree_atomically(os.path.join(parent_dir, entry), os.path.join(trial_dir, entry))
    logging.info("%s: beta %.4g  latent_dim %d  learning_rate %.3g%s", name, config.model.beta,
                 config.model.latent_dim, config.training.learning_rate,
                 f"  epochs {config.training.epochs}, continuing {trial_name(parent)}"
                 if parent is not None else "")
    began = time.perf_counter()
    results = api.fit(config, trial_dir).results
    validation = results["validation"]
    metrics = {"nll": validation.get("nll", math.nan), "elbo": validation["elbo"],
               "active_units": validation["active_units"], "step": results["step"],
               "wall_time_s": round(time.perf_counter() - began, 1)}
    if self.settings.objective == "m1_accuracy":
      metrics["m1_accuracy"] = _m1_validation_accuracy(trial_dir)
    metrics = {k: float(v) for k, v in metrics.items()}
    tune_report.write_trial_hparams(self.workdir, name, config, values, metrics)
    logging.info("%s: validation %s %.3f (nll %.3f, elbo %.3f, %d active units, %.0f s)", name,
                 self.settings.objective, metrics[self.settings.objective], metrics["nll"],
                 metrics["elbo"], metrics["active_units"], metrics["wall_time_s"])
    return metrics

  def _try_run_and_update_trial(self, trial, *args, **kwargs):
    # keras-tuner's own version turns EVERY exception into a failed trial and goes on with the
    # next one, which would swallow a SIGTERM (tfvae.Interrupted), bad input or a missing dataset.
    # Here only a trial that cannot train (non-finite updates) fails; the rest propagates, and
    # keras-tuner's saved state keeps the trial as ongoing, so a re-run resumes it.
    try:
      self._run_and_update_trial(trial, *args, **kwargs)
      trial.status = kt.engine.trial.TrialStatus.COMPLETED
    except errors.TrainingError as e:
      logging.warning("%s failed: %s", trial_name(trial.trial_id), e)
      trial.status = kt.engine.trial.TrialStatus.FAILED
      trial.message = str(e)

  def on_trial_end(self, trial):
    super().on_trial_end(trial)
    tune_report.write_trials_csv(self.workdir, tune_report.trial_rows(self.oracle,
                                                                      self.base_config))


def _make_oracle(settings):
  objective = kt.Objective(settings.objective, OBJECTIVES[settings.objective])
  # keras-tuner replaces a seed of 0 by a random one; tune_seed + 1 keeps 0 a valid seed.
  common = dict(objective=objective, hyperparameters=search_space(settings),
                seed=settings.tune_seed + 1)
  if settings.tuner == "random":
    return kt.oracles.RandomSearchOracle(max_trials=settings.max_trials, **common)
  if settings.tuner == "bayesian":
    return kt.oracles.BayesianOptimizationOracle(max_trials=settings.max_trials, **common)
  oracle = kt.oracles.HyperbandOracle(max_epochs=settings.hyperband_max_epochs,
                                      factor=settings.hyperband_factor, **common)
  oracle.max_trials = settings.max_trials  # Oracle.create_trial stops there (not in its state)
  return oracle


def _m1_validation_accuracy(trial_dir):
  """M1 accuracy on the validation split of a trained trial (its config's labels)."""
  model = api.load(trial_dir)
  return model.m1_accuracy(int(model.config.data.num_labels), model.config.data.label_seed,
                           split="validation", write=False)["accuracy"]


def _check_search(base_config, settings):
  """Errors that can be known before training: each naming its flag (ConfigError)."""
  if base_config.family != "vae":
    raise config_lib.ConfigError(f"--model={base_config.family}: the search is over beta and "
                                 "latent size and ranks by a bound on log p(x), so it needs "
                                 "--model=vae.")
  if base_config.execution.strategy == "multi_worker":
    raise config_lib.ConfigError("--strategy=multi_worker: tfvae.tune runs its trials in one "
                                 "process; use mirrored or one_device.")
  if settings.objective == "m1_accuracy" and not base_config.data.num_labels.isdigit():
    raise config_lib.ConfigError("--objective=m1_accuracy needs --num_labels=N (the labeled "
                                 "train examples of M1), not "
                                 f"--num_labels={base_config.data.num_labels}.")
  if settings.objective == "nll" and base_config.training.eval_importance_samples < 1:
    raise config_lib.ConfigError("--objective=nll needs --eval_importance_samples >= 1 (the K "
                                 "of the validation bound).")
  for latent_dim in settings.latent_dims:  # every trial config must be valid
    trial_config(base_config, {"beta": settings.beta_min, "latent_dim": latent_dim})


def _check_or_write_tune_json(workdir, base_config, settings):
  """Refuses a workdir holding another search; writes tune.json for a new one."""
  path = os.path.join(workdir, TUNE_FILENAME)
  saved_dict = {"tune": settings.to_dict(), "base_config": base_config.to_dict()}
  if os.path.exists(path):
    try:
      with open(path) as f:
        saved = json.load(f)
      old_settings = TuneSettings.from_dict(saved["tune"])
      old_base = config_lib.Config.from_dict(saved["base_config"])
    except (ValueError, TypeError, KeyError) as e:
      raise config_lib.ConfigError(
          f"{path} is not a tfvae search record ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:200] if str(e) else ''}): restore it from a copy, or "
          "search in a new --workdir.") from None
    searched = {"beta", "latent_dim"} | ({"learning_rate"} if settings.searches_learning_rate
                                         else set())
    # A continued search may change what never changes a result (config.CONTINUABLE_ROLES) and
    # raise --max_trials; the searched fields are replaced per trial anyway.
    diffs = config_lib.differences(old_settings, settings, {config_lib.SCHEDULE})
    diffs += config_lib.differences(old_base, base_config, config_lib.CONTINUABLE_ROLES,
                                    ignore=searched)
    if diffs:
      raise config_lib.ConfigError(
          "The workdir holds a search with other settings (" + "; ".join(
              f"--{n}: {old!r} in the workdir, {new!r} now" for n, old, new in diffs) +
          "). Use a new --workdir, or the same flags (any --max_trials) to continue it.")
  os.makedirs(workdir, exist_ok=True)
  atomic.write_json(path, saved_dict, indent=2, sort_keys=True)


def _torn_state_files(workdir):
  """The JSON files of keras-tuner's state (WORKDIR/keras_tuner: oracle.json, trial.json, which
  keras-tuner writes in place) that do not parse, relative to the workdir."""
  torn = []
  for root, _, names in os.walk(os.path.join(workdir, "keras_tuner")):
    for name in sorted(names):
      if name.endswith(".json"):
        path = os.path.join(root, name)
        try:
          with open(path) as f:
            json.load(f)
        except (ValueError, UnicodeDecodeError):
          torn.append(os.path.relpath(path, workdir))
  return sorted(torn)


def _link_best(workdir, name):
  link = os.path.join(workdir, "best")
  if os.path.lexists(link + ".tmp"):
    os.remove(link + ".tmp")
  os.symlink(name, link + ".tmp")
  os.replace(link + ".tmp", link)  # atomic: `best` is always a complete trial


def search(base_config, settings, workdir):
  """Runs (or continues) a hyperparameter search in `workdir`.

  Args:
    base_config: Config of the fixed flags; beta, latent_dim (and learning_rate when searched)
      are replaced per trial, and with hyperband epochs/train_steps too.
    settings: TuneSettings.
    workdir: str, the search folder (layout in the module docstring).

  Returns:
    dict: "trials", one dict per trial (see trial_rows; metrics in nats per example, wall time
    in seconds), and "best", the row of the best completed trial (None if none completed).

  Raises:
    tfvae.config.ConfigError: for settings that cannot run, or a workdir holding another
      search; before anything is written.
    tfvae.lock.WorkdirInUse: if another process holds the search folder.
    tfvae.data.DataError: if the dataset cannot be had; before anything is written.
    tfvae.Interrupted: after SIGTERM/SIGINT, once the running trial wrote a
      checkpoint; the same call resumes it.
    tfvae.TrainingError: when keras-tuner stops the search after 3 trials in a
      row failed (non-finite updates; a single failed trial is recorded as FAILED and the search
      goes on).
  """
  _check_search(base_config, settings)
  api.strategy_for(base_config)  # splits the CPU before any TF op; batch split (ConfigError)
  data_lib.load(base_config)  # fail fast (DataError) before writing
  with lock.hold(workdir):
    return _search(base_config, settings, workdir)


def _search(base_config, settings, workdir):
  """search, once the search folder's lock is held."""
  _check_or_write_tune_json(workdir, base_config, settings)
  torn = _torn_state_files(workdir)
  if torn:
    raise config_lib.ConfigError(
        f"keras-tuner's state is torn ({', '.join(torn)} do not parse: a write was "
        "interrupted), so this search cannot continue. The trials' runs are intact in "
        f"{os.path.join(workdir, 'trial_*')} (each evaluates and exports like any run); "
        "continue the search in a new --workdir.")
  tuner = _Tuner(_make_oracle(settings), base_config, settings, workdir)
  tune_report.write_hparams_config(workdir, settings)
  if tuner.oracle.trials:
    logging.info("Continuing the search in %s: %d trials so far", workdir,
                 len(tuner.oracle.trials))
  try:
    tuner.search(verbose=0)
  except RuntimeError as e:
    if "consecutive failures" not in str(e):
      raise
    tune_report.write_trials_csv(workdir, tune_report.trial_rows(tuner.oracle, base_config))
    raise errors.TrainingError(
        f"keras-tuner stopped the search: {str(e).splitlines()[0]} (trials that could not "
        f"train for non-finite updates; see {os.path.join(workdir, TRIALS_CSV)}). The last "
        "trial's message: " + (str(e).splitlines()[1] if "\n" in str(e) else "")) from None
  rows = tune_report.trial_rows(tuner.oracle, base_config)
  tune_report.write_trials_csv(workdir, rows)
  best = [r for r in rows if r["status"] == kt.engine.trial.TrialStatus.COMPLETED]
  best = sorted(best, key=lambda r: r["objective"],
                reverse=OBJECTIVES[settings.objective] == "max")[:1]
  if best:
    _link_best(workdir, best[0]["trial"])
  return {"trials": rows, "best": best[0] if best else None}
