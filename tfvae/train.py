"""Entry point: `python -m tfvae.train --flagfile=configs/NAME.cfg [--workdir=DIR] [--flag=value]`.

Trains (resuming from WORKDIR's latest checkpoint if there is one), evaluates on the validation
and test splits, and exports a SavedModel to WORKDIR/export. A flagfile may include another
(a line `--flagfile=configs/NAME.cfg` in it); flags given later on the command line override it.

With --strategy=multi_worker every worker runs this same command with its own TF_CONFIG
(`python tools/launch_local_workers.py --num_workers=2 -- python -m tfvae.train ...` on one
machine); only the chief writes to --workdir.
"""

import os

from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfvae import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("workdir", "/tmp/tfvae", "Folder for everything this run writes.")
flags.DEFINE_bool("overwrite", False, "If --workdir holds a run with a different config, delete "
                  "it and start over (otherwise that is refused).")
config_flags.define_flags()
flags.adopt_module_key_flags(config_flags)  # --help lists the model flags, not only these two
FLAGS = flags.FLAGS


def main(argv):
  del argv
  config = config_flags.from_flags(FLAGS)
  cli.import_tensorflow()
  import tfvae  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import evaluator  # pylint: disable=import-outside-toplevel
  # fit creates the strategy (and splits the CPU) before any TF op: multi-worker needs that.
  model = tfvae.fit(config, FLAGS.workdir, overwrite=FLAGS.overwrite)
  logging.info("Done: test %s. Outputs in %s (tensorboard --logdir %s)",
               evaluator.describe(model.results["test"], model.config), FLAGS.workdir,
               os.path.join(FLAGS.workdir, "tensorboard"))


if __name__ == "__main__":
  cli.run("tfvae.train", main)
