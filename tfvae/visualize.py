"""Entry point: `python -m tfvae.visualize --workdir=DIR [--what=NAME[,NAME...]]`.

Writes WORKDIR/figures/NAME.png for each figure, and the same images to TensorBoard
(WORKDIR/tensorboard/eval, tag figures/NAME) at the checkpoint's step. NAME is one of
reconstructions, samples, class_samples (label-conditional models: m2, cvae), interpolation,
traversals, manifold, latent_pca, histograms, curves.
"""

import io
import os

from tfvae import atomic
from tfvae import cli

if __name__ == "__main__":
  cli.quiet_start()  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

FIGURES = ("reconstructions", "samples", "class_samples", "interpolation", "traversals",
           "manifold", "latent_pca", "histograms", "curves")
# Figures of the posterior q(z|x): drawn for models that have one (not M2, whose q(z|x, y) needs
# a class).
LATENT_FIGURES = ("interpolation", "traversals", "manifold", "latent_pca", "histograms")
# Figures drawn as pictures of x: not for vectors (tabular data).
IMAGE_FIGURES = ("reconstructions", "samples", "class_samples", "interpolation", "traversals",
                 "manifold")

FLAGS = flags.FLAGS


def define_flags():
  """Defines this entry point's flags; called only from __main__, so importing defines none."""
  flags.DEFINE_string("workdir", None, "A tfvae run folder (config.json and ckpt/).")
  flags.DEFINE_list("what", list(FIGURES), f"Figures to draw: {', '.join(FIGURES)}.")
  flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Images to use.")
  flags.DEFINE_integer("num_examples", 3000, "Examples for latent_pca and histograms.",
                       lower_bound=10)
  flags.DEFINE_integer("seed", 0, "Seed of the samples.")
  flags.DEFINE_enum("sampler", None, ["standard", "gmm", "two_stage"],
                    "Where the samples figure draws z from: the run's sampler (default: the one "
                    "fitted to the codes by tfvae.fit_sampler, else the prior), or standard "
                    "(the prior), or the kind fitted.")


def _pairs_of_different_classes(images, labels, num_pairs=4):
  """(x_a, x_b) with x_a the first image of class 2i and x_b of class 2i+1 (or any images)."""
  first = {}
  for i, label in enumerate(labels):
    first.setdefault(int(label), i)
  classes = sorted(first)
  if len(classes) >= 2 * num_pairs:
    return [(images[first[classes[2 * i]]], images[first[classes[2 * i + 1]]])
            for i in range(num_pairs)]
  return [(images[2 * i], images[2 * i + 1]) for i in range(num_pairs)]


def draw(workdir: str, what: tuple[str, ...] | list[str] = FIGURES, split: str = "test",
         num_examples: int = 3000, seed: int = 0, data=None,
         sampler: str | None = None) -> dict[str, str]:
  """Draws the figures named in `what` into WORKDIR/figures; returns {name: path of the PNG}.

  What `python -m tfvae.visualize` does, from Python. A run trained from in-memory arrays
  (`tfvae.fit(config, workdir, data=x)`) gets its figures here, given the same data:
  `tfvae.draw(workdir, data=x)` (no command can read the arrays again).

  Args:
    workdir: a run folder.
    what: names among FIGURES.
    split: "train", "validation" or "test": the images drawn from.
    num_examples: examples for latent_pca and histograms.
    seed: seed of the samples.
    data: the run's data when it was trained from arrays (a tfvae.data Source or a numpy
      array, as given to `tfvae.fit`); None reads config.data.dataset again (with the reader
      options config.json records).
    sampler: where the samples figure draws z from (TrainedModel.sample's `sampler`): None,
      the run's (the one fitted to the codes and stored, tfvae/samplers, else the prior);
      "standard" the prior; or the kind fitted ("gmm", "two_stage"). A deterministic AE
      without a fitted sampler gets no samples figure.

  Raises:
    tfvae.data.DataError: if the data cannot be read or differ from the run's (saying what).
    tfvae.config.ConfigError: naming the figure, for an unknown name.
    ValueError: a sampler that is not fitted to this run (before anything is drawn).
    FileNotFoundError: if the workdir has no config.json or checkpoint.
    tfvae.lock.WorkdirInUse: if another process holds the workdir.
  """
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  from tfvae import lock  # pylint: disable=import-outside-toplevel
  unknown = sorted(set(what) - set(FIGURES))
  if unknown:
    raise config_lib.ConfigError(f"--what={','.join(unknown)}: unknown figure; choose from "
                                 f"{', '.join(FIGURES)}.")
  config_io.load(workdir)  # not a run: say so before a lock file is written there
  with lock.hold(workdir):
    return _draw(workdir, what, split, num_examples, seed, data, sampler)


def _draw(workdir, what, split, num_examples, seed, data, sampler_name):
  """draw, once the workdir's lock is held."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import figures  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  from tfvae import api  # pylint: disable=import-outside-toplevel

  from tfvae import samplers  # pylint: disable=import-outside-toplevel
  trained = api.load(workdir)
  config, model, step = trained.config, trained.model, trained.step
  sampler = samplers.choose(trained.sampler, sampler_name)
  data = trained.data(data)
  part = getattr(data, split)
  images = (part.images[:num_examples] / data.max_value).astype(np.float32)
  labels = part.labels[:num_examples]
  conditions = None if part.conditions is None else part.conditions[:num_examples]
  from tfvae.models import interface  # pylint: disable=import-outside-toplevel
  generative = isinstance(model, interface.LatentVariableModel)
  if len(config.data.image_shape) == 1:
    skipped = [name for name in what if name in IMAGE_FIGURES]
    if skipped:
      logging.info("--what=%s: pictures of images; %s holds vectors: skipped.", ",".join(skipped),
                   config.data.dataset)
    what = [name for name in what if name not in IMAGE_FIGURES]
  if "samples" in what and not generative and sampler.kind == "standard":
    logging.warning("--what=samples: model %s has no prior p(z) to sample from and no sampler "
                    "fitted to its codes (python -m tfvae.fit_sampler); skipped.", config.family)
    what = [name for name in what if name != "samples"]
  if "class_samples" in what and not isinstance(model, interface.LabelConditional):
    logging.info("--what=class_samples: model %s does not sample given a class; skipped.",
                 config.family)
    what = [name for name in what if name != "class_samples"]
  has_posterior = not isinstance(model, (interface.LabelConditional, interface.Conditional))
  skipped = [name for name in what if name in LATENT_FIGURES and not has_posterior]
  if skipped:
    logging.warning("--what=%s: model %s has no q(z|x) (its posterior needs a class); skipped.",
                    ",".join(skipped), config.family)
    what = [name for name in what if name not in skipped]
  # A cvae on conditions samples only given them: the samples figure gives it those of the
  # split's first examples, cycled to 100.
  given_100 = (None if conditions is None or not isinstance(model, interface.Conditional)
               else np.resize(conditions, (100, conditions.shape[1])))
  means, rates = [], []
  for start in range(0, len(images) if has_posterior else 0, 500):
    q_z = model.posterior(images[start:start + 500])
    means.append(np.asarray(q_z.mean()))
    per_dim = model.rate_per_dimension(q_z, tf.constant([seed, 1])) if generative else None
    if per_dim is not None:
      rates.append(np.asarray(per_dim))
  means = np.concatenate(means) if means else np.zeros([0, config.model.latent_dim], np.float32)
  # Dimensions are ranked by their average KL (VAE) or, for deterministic AEs, by code variance.
  if generative and rates:
    scores, score_label = np.concatenate(rates).mean(axis=0), "{:.2f} nats"
    center = scale = None
  elif not len(means):  # no posterior without a class (m2, cvae): no latent figures
    scores, score_label, center, scale = None, "", None, None
  else:
    scores, score_label = means.var(axis=0), "var {:.2f}"
    center, scale = means.mean(axis=0), means.std(axis=0)
  curve_tags = ("elbo", "rate", "distortion") if generative else ("loss", "distortion")
  title = (f"{config.family} ({config.model.architecture}, latent_dim={config.model.latent_dim}, "
           f"{config.model.likelihood}), {config.data.dataset} {split}, step {step}")
  tensorboard = os.path.join(workdir, "tensorboard")
  makers = {
      "reconstructions": lambda: figures.reconstructions(
          model, images[:30], title, labels=labels[:30],
          conditions=None if conditions is None else conditions[:30]),
      "samples": lambda: figures.samples(
          model, 100, tf.constant([seed, 0]), title,
          drawn=trained.sample(100, seed, sampler=sampler_name, condition=given_100),
          sampler=sampler, given="" if given_100 is None else f"of {split} examples (cycled)"),
      "class_samples": lambda: figures.class_samples(model, 10, tf.constant([seed, 0]), title,
                                                     data.class_names),
      "interpolation": lambda: figures.interpolation(
          model, _pairs_of_different_classes(images, labels), title),
      "traversals": lambda: figures.traversals(model, images[0], scores, title, center=center,
                                               scale=scale, score_label=score_label),
      "manifold": lambda: figures.manifold(model, means, title),
      "latent_pca": lambda: figures.latent_pca(means, labels, data.class_names, title),
      "histograms": lambda: figures.histograms(
          means, labels, data.class_names, scores, title,
          score_label=("KL " if generative else "") + score_label),
      "curves": lambda: figures.curves(
          {s: summaries.read_scalars(os.path.join(tensorboard, s), list(curve_tags))
           for s in ("train", "eval")}, title, tags=curve_tags),
  }
  out_dir = os.path.join(workdir, "figures")
  os.makedirs(out_dir, exist_ok=True)
  writer = tf.summary.create_file_writer(os.path.join(tensorboard, "eval"))
  paths = {}
  for name in what:
    fig = makers[name]()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths[name] = os.path.join(out_dir, f"{name}.png")
    atomic.write_bytes(paths[name], buffer.getvalue())
    with writer.as_default(step=step):
      tf.summary.image(f"figures/{name}", tf.image.decode_png(buffer.getvalue())[None])
    logging.info("wrote %s", paths[name])
  writer.close()
  return paths


def main(argv):
  del argv
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  config_io.load(FLAGS.workdir)  # a mistyped --workdir is told before TensorFlow's import
  cli.import_tensorflow()
  draw(FLAGS.workdir, FLAGS.what, FLAGS.split, FLAGS.num_examples, FLAGS.seed,
       sampler=FLAGS.sampler)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("workdir")
  cli.run("tfvae.visualize", main)
