"""Entry point: `python -m tfvae.train --flagfile=configs/NAME.cfg [--workdir=DIR] [--flag=value]`.

Trains (resuming from WORKDIR's latest checkpoint if there is one), evaluates on the validation
and test splits, and exports a SavedModel to WORKDIR/export. A flagfile may include another
(`--flagfile=configs/base.cfg`); flags given later on the command line override it.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from tfvae import config as config_lib

flags.DEFINE_string("workdir", "/tmp/tfvae", "Folder for everything this run writes.")
flags.DEFINE_bool("overwrite", False, "If --workdir holds a run with a different config, delete "
                  "it and start over (otherwise that is refused).")
config_lib.define_flags()
FLAGS = flags.FLAGS


class _TfvaeInfoOnly:
  """Drops the INFO lines of TF's own modules (saver, signature renames); keeps tfvae's."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "tfvae" in record.pathname


def _exit(error, code):
  """One sentence on stderr and a non-zero exit; the traceback only with --verbosity >= 1."""
  if logging.get_verbosity() >= 1:
    logging.exception("")
  print(f"tfvae.train: {error}", file=sys.stderr)
  sys.exit(code)


def main(argv):
  logging.get_absl_handler().python_handler.addFilter(_TfvaeInfoOnly())
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    config = config_lib.from_flags(FLAGS)
  except config_lib.ConfigError as e:
    _exit(e, 2)
  from tfvae import data  # pylint: disable=import-outside-toplevel
  from tfvae import run  # pylint: disable=import-outside-toplevel
  from tfvae import trainer  # pylint: disable=import-outside-toplevel
  trainer.split_cpu(config.num_cpu_devices)  # before any TF op
  try:
    results = run.train_and_evaluate(config, FLAGS.workdir, FLAGS.overwrite)
  except (config_lib.ConfigError, data.DataError) as e:
    _exit(e, 2)
  except run.TrainingError as e:
    _exit(e, 1)
  except run.Interrupted as e:
    _exit(e, 128 + e.signum)
  logging.info("Done: test elbo %.3f nats. Outputs in %s (tensorboard --logdir %s)",
               results["test"]["elbo"], FLAGS.workdir, os.path.join(FLAGS.workdir, "tensorboard"))


if __name__ == "__main__":
  app.run(main)
