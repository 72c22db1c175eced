"""Entry point: `python -m tfvae.export --workdir=DIR`: the run's best (else latest) checkpoint
as a SavedModel.

Writes WORKDIR/export (signatures: tfvae/serving.py).
"""

import os

from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv):
  del argv
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  from tfvae import lock  # pylint: disable=import-outside-toplevel
  workdir = flags.FLAGS.workdir
  config_io.load(workdir)  # not a run: say so before a lock file is written there
  cli.import_tensorflow()
  import tfvae  # pylint: disable=import-outside-toplevel
  with lock.hold(workdir):  # before the restore: a busy workdir is refused at once
    model = tfvae.load(workdir)
    path = os.path.join(workdir, "export")
    model.export(path)
  print(f"Exported the step-{model.step} model to {path}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "A tfvae run folder (holds config.json and ckpt/).")
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.export", main)
