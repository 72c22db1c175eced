"""What a search reports: trials.csv, the printed table, and TensorBoard's HParams dashboard.

`trial_rows` reads keras-tuner's oracle; the writers take plain dicts, so a finished search can be
reported again without keras-tuner state.
"""

import csv
import os

from tensorboard.plugins.hparams import api as hp_api
import tensorflow as tf

from tfvae import atomic

TRIALS_CSV = "trials.csv"
# Metrics reported per trial (besides the hyperparameters); also the HParams metrics.
METRICS = ("nll", "elbo", "m1_accuracy", "active_units", "step", "wall_time_s")


def trial_name(trial_id):
  """keras-tuner's trial id ("3", "03", ...; its width follows max_trials) as 'trial_003'."""
  return f"trial_{int(trial_id):03d}"


def trial_rows(oracle, base_config):
  """One dict per trial, in trial order: name, status, hyperparameters and metrics."""
  rows = []
  for trial_id in sorted(oracle.trials, key=int):
    trial = oracle.trials[trial_id]
    values = trial.hyperparameters.values
    parent = values.get("tuner/trial_id")
    row = {"trial": trial_name(trial_id), "status": trial.status,
           "beta": values.get("beta"), "latent_dim": values.get("latent_dim"),
           "learning_rate": values.get("learning_rate", base_config.training.learning_rate),
           "parent": trial_name(parent) if parent is not None else "",
           "objective": None}
    for name in METRICS:
      value = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
      row[name] = int(value) if name in ("step", "active_units") and value is not None else value
    if trial.metrics.exists(oracle.objective.name):
      row["objective"] = trial.metrics.get_last_value(oracle.objective.name)
    rows.append(row)
  return rows


CSV_COLUMNS = ("trial", "status", "beta", "latent_dim", "learning_rate", "parent", "step",
               "objective", "elbo", "nll", "m1_accuracy", "active_units", "wall_time_s")


def write_trials_csv(workdir, rows):
  """Writes WORKDIR/trials.csv (atomically), one row per trial, columns CSV_COLUMNS."""
  path = os.path.join(workdir, TRIALS_CSV)
  with atomic.replacing(path, newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
      writer.writerow({k: "" if v is None else v for k, v in row.items()})


# The table's validation metrics besides the objective: (row key, header, format).
_TABLE_METRICS = (("nll", "validation nll", ".2f"), ("elbo", "validation elbo", ".2f"),
                  ("m1_accuracy", "validation m1_accuracy", ".4f"))


def format_table(rows, objective, maximize):
  """Markdown table of the trials, best `objective` first (failed/unfinished trials last).

  The objective's column comes first, named "validation OBJECTIVE (objective)"; the other
  validation metrics (nll, elbo) follow, each once.
  """
  done = [r for r in rows if r["objective"] is not None]
  done.sort(key=lambda r: r["objective"], reverse=maximize)
  others = [m for m in _TABLE_METRICS if m[0] != objective and m[0] != "m1_accuracy"]
  headers = ["trial", "beta", "latent_dim", "learning_rate", "steps",
             f"validation {objective} (objective)", *(m[1] for m in others), "active units",
             "wall time (s)"]
  lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
  for r in done:
    parent = f" (from {r['parent']})" if r["parent"] else ""
    cells = [f"{r['trial']}{parent}", f"{r['beta']:.3g}", str(r["latent_dim"]),
             f"{r['learning_rate']:.3g}", str(int(r["step"])), f"{r['objective']:.4g}",
             *("" if r[key] is None else f"{r[key]:{spec}}" for key, _, spec in others),
             str(int(r["active_units"])), f"{r['wall_time_s']:.0f}"]
    lines.append("| " + " | ".join(cells) + " |")
  for r in rows:
    if r["objective"] is None:
      cells = [r["trial"], f"{r['beta']:.3g}", str(r["latent_dim"]), f"{r['learning_rate']:.3g}",
               r["status"].lower()] + [""] * (len(headers) - 5)
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_hparams_config(workdir, settings):
  hparams = [hp_api.HParam("beta", hp_api.RealInterval(settings.beta_min, settings.beta_max)),
             hp_api.HParam("latent_dim", hp_api.Discrete(list(settings.latent_dims))),
             hp_api.HParam("learning_rate")]
  if settings.tuner == "hyperband":
    hparams.append(hp_api.HParam("epochs"))
  writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
  with writer.as_default():
    hp_api.hparams_config(hparams=hparams, metrics=[hp_api.Metric(m) for m in METRICS])
  writer.close()  # entry points end in os._exit (tfvae/cli.py): nothing may stay buffered


def write_trial_hparams(workdir, name, config, values, metrics):
  hparams = {"beta": config.model.beta, "latent_dim": config.model.latent_dim,
             "learning_rate": config.training.learning_rate}
  if "tuner/epochs" in values:
    hparams["epochs"] = config.training.epochs
  writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", name))
  with writer.as_default():
    hp_api.hparams(hparams, trial_id=name)
    for key, value in metrics.items():
      tf.summary.scalar(key, value, step=int(metrics["step"]))
  writer.close()
