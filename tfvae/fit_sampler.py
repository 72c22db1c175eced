"""Entry point: `python -m tfvae.fit_sampler --workdir=DIR [--sampler=gmm] [options]`.

Fits a sampler of codes to the run's train codes E[q(z|x)] and stores it in WORKDIR/sampler
(TrainedModel.fit_sampler; tfvae/samplers, docs/samplers.md), then exports the run again
(WORKDIR/export; --noexport to skip) so that its SavedModel's `sample` draws z from it.
`tfvae.load`, `python -m tfvae.visualize` (the samples figure) and later exports use it too.

  --sampler=gmm        a Gaussian mixture (Ghosh et al. 2020): --num_components,
                       --covariance_type, --reg_covar, --max_iter, --seed
  --sampler=two_stage  a second VAE (Dai & Wipf 2019): --second_latent_dim,
                       --second_hidden_sizes, --epochs, --train_steps, --batch_size,
                       --learning_rate, --seed
  --sampler=standard   the prior again: removes the stored sampler
"""

import os

from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
KINDS = ("standard", "gmm", "two_stage")  # tfvae.samplers.KINDS (importing it imports TF)
# The options of each kind (tfvae.samplers.option_names), passed to fit_sampler when they apply.
OPTIONS = {"standard": (),
           "gmm": ("num_components", "covariance_type", "reg_covar", "max_iter", "seed"),
           "two_stage": ("second_latent_dim", "second_hidden_sizes", "epochs", "train_steps",
                         "batch_size", "learning_rate", "seed")}


def define_flags():
  """Defines this entry point's flags; called only from __main__, so importing defines none."""
  flags.DEFINE_string("workdir", None, "A tfvae run folder (config.json and ckpt/).")
  flags.DEFINE_string("sampler", "gmm", f"What to fit to the codes: {', '.join(KINDS)}.")
  flags.DEFINE_integer("num_components", 10, "gmm: mixture components K.")
  flags.DEFINE_string("covariance_type", "full",
                      "gmm: full, tied, diag or spherical (sklearn GaussianMixture's).")
  flags.DEFINE_float("reg_covar", 1e-6, "gmm: added to the covariance diagonals.")
  flags.DEFINE_integer("max_iter", 100, "gmm: EM iterations at most.")
  flags.DEFINE_integer("second_latent_dim", 0,
                       "two_stage: latent dimension of the second VAE (0: the code dimension).")
  flags.DEFINE_list("second_hidden_sizes", ["256", "256"],
                    "two_stage: hidden layer widths of the second VAE's MLP.")
  flags.DEFINE_integer("epochs", 50, "two_stage: passes over the train codes.")
  flags.DEFINE_integer("train_steps", 0, "two_stage: training steps (0: --epochs).")
  flags.DEFINE_integer("batch_size", 128, "two_stage: batch size.")
  flags.DEFINE_float("learning_rate", 1e-3, "two_stage: Adam learning rate.")
  flags.DEFINE_integer("seed", 0, "gmm: the initialization; two_stage: weights, batches, noise.")
  flags.DEFINE_bool("export", True, "Export the run again (WORKDIR/export) with the sampler.")


def _options(kind):
  """{name: value} of the flags `kind` takes; a flag given that it does not take is refused."""
  from tfvae.errors import ConfigError  # pylint: disable=import-outside-toplevel
  if kind not in OPTIONS:  # (the library's message, before TensorFlow is imported)
    raise ConfigError(f"--sampler={kind!r} is not one of {', '.join(KINDS)}.")
  ignored = [name for names in OPTIONS.values() for name in names
             if name not in OPTIONS[kind] and FLAGS[name].present]
  if ignored:
    raise ConfigError(f"--{ignored[0]} is not an option of --sampler={kind} (its options: "
                      f"{', '.join(OPTIONS[kind]) or 'none'}).")
  values = {name: FLAGS[name].value for name in OPTIONS[kind]}
  if "second_hidden_sizes" in values:
    try:
      values["second_hidden_sizes"] = tuple(int(v) for v in values["second_hidden_sizes"])
    except ValueError:
      raise ConfigError(f"--second_hidden_sizes={','.join(values['second_hidden_sizes'])} must "
                        "be comma-separated positive integers.") from None
  return values


def main(argv):
  del argv
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  from tfvae import lock  # pylint: disable=import-outside-toplevel
  workdir = FLAGS.workdir
  options = _options(FLAGS.sampler)
  config_io.load(workdir)  # not a run: say so before a lock file is written there
  cli.import_tensorflow()
  import tfvae  # pylint: disable=import-outside-toplevel
  with lock.hold(workdir):  # before the restore: a busy workdir is refused at once
    model = tfvae.load(workdir)
    sampler = model.fit_sampler(FLAGS.sampler, **options)
    logging.info("sampler of %s: %s", workdir, sampler.info)
    if FLAGS.export:
      model.export()  # WORKDIR/export, a link to the new SavedModel
    path = os.path.join(workdir, "export") if FLAGS.export else None
  print(f"Fitted the {sampler.kind} sampler to the codes of the step-{model.step} model"
        + (f"; exported to {path}" if path else ""))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.fit_sampler", main)
