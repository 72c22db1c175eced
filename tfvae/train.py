"""Entry point: `python -m tfvae.train --flagfile=configs/NAME.cfg [--workdir=DIR] [--flag=value]`.

Trains (resuming from WORKDIR's latest checkpoint if there is one), evaluates on the validation
and test splits, and exports a SavedModel to WORKDIR/export. A flagfile may include another
(`--flagfile=configs/base.cfg`); flags given later on the command line override it.

With --strategy=multi_worker every worker runs this same command with its own TF_CONFIG
(`python tools/launch_local_workers.py --num_workers=2 -- python -m tfvae.train ...` on one
machine); only the chief writes to --workdir.
"""

import os

from absl import app
from absl import flags
from absl import logging

from tfvae import cli
from tfvae import config as config_lib

flags.DEFINE_string("workdir", "/tmp/tfvae", "Folder for everything this run writes.")
flags.DEFINE_bool("overwrite", False, "If --workdir holds a run with a different config, delete "
                  "it and start over (otherwise that is refused).")
config_lib.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  cli.quiet_tf_info_logs()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  with cli.user_errors("tfvae.train"):
    config = config_lib.from_flags(FLAGS)
  from tfvae import run  # pylint: disable=import-outside-toplevel
  from tfvae import trainer  # pylint: disable=import-outside-toplevel
  with cli.user_errors("tfvae.train"):
    if config.strategy != "multi_worker":
      trainer.split_cpu(config.num_cpu_devices)  # before any TF op
    strategy = trainer.make_strategy(config)  # before any TF op (data loading runs some)
    results = run.train_and_evaluate(config, FLAGS.workdir, FLAGS.overwrite, strategy)
  logging.info("Done: test %s. Outputs in %s (tensorboard --logdir %s)",
               run.describe(results["test"], config), FLAGS.workdir,
               os.path.join(FLAGS.workdir, "tensorboard"))


if __name__ == "__main__":
  app.run(main)
