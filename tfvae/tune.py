"""Entry point: `python -m tfvae.tune --flagfile=configs/tune_NAME.cfg [--workdir=DIR]`.

Runs the keras-tuner search of tfvae/tuning/search.py (workdir layout and resumption there).
"""

import math
import os
import time

from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging

from tfvae import config_flags
from tfvae.tuning import settings as tune_settings


def main(argv):
  del argv
  fv = flags.FLAGS
  settings = tune_settings.settings_from_flags(fv)
  config = config_flags.from_flags(fv)
  cli.import_tensorflow()
  from tfvae.tuning import report  # pylint: disable=import-outside-toplevel
  from tfvae.tuning import search  # pylint: disable=import-outside-toplevel
  began = time.perf_counter()
  result = search.search(config, settings, fv.workdir)
  print(report.format_table(result["trials"], settings.objective,
                                   tune_settings.OBJECTIVES[settings.objective] == "max"))
  best = result["best"]
  logging.info("Search done in %.0f s: %d trials in %s. Best: %s (validation %s %.3f), exported "
               "to %s. TensorBoard (HParams): tensorboard --logdir %s", time.perf_counter() -
               began, len(result["trials"]), os.path.join(fv.workdir, report.TRIALS_CSV),
               best["trial"] if best else None, settings.objective,
               best["objective"] if best else math.nan, os.path.join(fv.workdir, "best", "export"),
               os.path.join(fv.workdir, "tensorboard"))


if __name__ == "__main__":
  tune_settings.define_flags()
  flags.adopt_module_key_flags(config_flags)  # --help lists the search and Config flags
  cli.run("tfvae.tune", main)
