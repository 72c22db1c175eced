"""The semi-supervised experiment: test accuracy of every method with N labels and with all labels.

  python tools/ssl_table.py --dataset=fashion_mnist --num_labels=100 --label_seeds=3 \\
      --epochs=50 --workdir=/tmp/tfvae/ssl_fashion_mnist [--output=ssl.md]

For each seed s = 0 .. label_seeds-1 (label subset --label_seed=s and weights/data order
--seed=s, so every method of a seed sees the same labeled subset), and for --num_labels=N and
--num_labels=all (the supervised ceiling, on the dataset's own train/test split: 80/20 for digits):
  1. logistic regression (scikit-learn) on raw pixels of the labeled examples;
  2. a network with the encoder's architecture trained on the labeled pixels only;
  3. M1: logistic regression on the posterior means of a VAE trained on all train images;
  4. PC-VAE: logistic regression on its posterior means, and its own classifier;
  5. M2's classifier q(y|x), and its generative model's classifier argmax_y ELBO(x, y).
Prints (and with --output writes) a markdown table of test accuracy, mean +- std over the seeds.
Each trained model lives in WORKDIR/LABELS/MODEL_seedS; re-running reads back finished cells
(WORKDIR/LABELS/seedS.json; refused, naming the flag, if a field that defines its numbers differs
from the values recorded in it) and resumes unfinished runs from their checkpoints.
"""

import json
import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("workdir", "/tmp/tfvae/ssl", "Root folder of the runs.")
flags.DEFINE_string("dataset", "fashion_mnist", "As tfvae.train's --dataset.")
flags.DEFINE_string("data_dir", "", "As tfvae.train's --data_dir.")
flags.DEFINE_string("num_labels", "100", "Labeled train examples N (balanced).")
flags.DEFINE_integer("label_seeds", 3, "Number of seeds (labeled subsets).", lower_bound=1)
flags.DEFINE_bool("with_all", True, "Also run every method with --num_labels=all.")
flags.DEFINE_enum("binarization", "dynamic", ["dynamic", "static", "none"],
                  "As tfvae.train's --binarization, for every method (pixels included).")
flags.DEFINE_enum("likelihood", "bernoulli", ["bernoulli", "continuous_bernoulli"],
                  "As tfvae.train's --likelihood (VAE, PC-VAE, M2). With --binarization=none, "
                  "bernoulli is the cross-entropy on gray levels (not a log-likelihood).")
flags.DEFINE_enum("architecture", "mlp", ["mlp", "conv"], "Networks of every method.")
flags.DEFINE_list("hidden_sizes", ["300", "300"], "MLP widths.")
flags.DEFINE_list("conv_filters", ["32", "64"], "Conv filters.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimension of the VAE, PC-VAE and M2.")
flags.DEFINE_integer("epochs", 50, "Training epochs of the VAE, PC-VAE and M2.")
flags.DEFINE_integer("train_steps", 0, "If > 0, training steps instead of --epochs.")
flags.DEFINE_integer("batch_size", 128, "Global batch size of the generative models.")
flags.DEFINE_integer("labeled_batch_size", 32, "Labeled rows per batch (PC-VAE, M2).")
flags.DEFINE_float("prediction_weight", 10.0, "PC-VAE's lambda.")
flags.DEFINE_float("classifier_weight", 0.0, "M2's alpha (0: 0.1 * N).")
flags.DEFINE_integer("nn_epochs", 200, "Epochs of the supervised network over the labeled set.")
flags.DEFINE_integer("nn_max_steps", 5000,
                     "At most this many steps (batch 32) of the supervised network: caps the "
                     "epochs when the labeled set is large (--num_labels=all).", lower_bound=1)
flags.DEFINE_integer("all_label_seeds", 0,
                     "Seeds (weights) of the --num_labels=all ceiling; 0: --label_seeds.",
                     lower_bound=0)
flags.DEFINE_string("output", "", "Also write the markdown table to this file.")
FLAGS = flags.FLAGS

# This tool's own flags that define a cell's numbers; with the Config fields of
# config.RESULT_ROLES of the cell's base config they are recorded in it, and a cached cell is
# reused only if they match.
TOOL_FLAGS = ("nn_epochs", "nn_max_steps")
# The knobs of pc_vae and m2 that their cells' numbers depend on (not in the vae base config).
_FAMILY_FLAGS = ("labeled_batch_size", "prediction_weight", "classifier_weight")
# What cells cached before the flags were recorded were computed with (the only choices then).
_UNRECORDED = {"binarization": "dynamic", "likelihood": "bernoulli"}

METHODS = (("raw_lr", "logistic regression on pixels"),
           ("raw_nn", "network (encoder architecture) on labeled pixels"),
           ("m1", "M1: logistic regression on VAE posterior means"),
           ("pc_vae_lr", "PC-VAE: logistic regression on posterior means"),
           ("pc_vae", "PC-VAE: its classifier"),
           ("m2", "M2: classifier q(y|x)"),
           ("m2_generative", "M2: its generative model, argmax_y ELBO(x, y)"))


def _base_config(num_labels, seed, family="vae"):
  """The Config of `family` (vae, pc_vae or m2) for one cell: the flags, and the family's own."""
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  own = {"pc_vae": dict(labeled_batch_size=FLAGS.labeled_batch_size,
                        prediction_weight=FLAGS.prediction_weight),
         "m2": dict(labeled_batch_size=FLAGS.labeled_batch_size,
                    classifier_weight=FLAGS.classifier_weight)}.get(family, {})
  return config_lib.Config(
      model=family, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, binarization=FLAGS.binarization,
      likelihood=FLAGS.likelihood, architecture=FLAGS.architecture,
      hidden_sizes=tuple(int(h) for h in FLAGS.hidden_sizes),
      conv_filters=tuple(int(f) for f in FLAGS.conv_filters), latent_dim=FLAGS.latent_dim,
      batch_size=FLAGS.batch_size, epochs=FLAGS.epochs, train_steps=FLAGS.train_steps,
      steps_per_loop=100, eval_importance_samples=0, checkpoint_every=5000,
      num_labels=num_labels, label_seed=seed, seed=seed, **own)


def _train(config, workdir):
  """Trains (or resumes) one model; returns (model, test metrics)."""
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  from tfvae import loading  # pylint: disable=import-outside-toplevel
  per_epoch = data_lib.steps_per_epoch(data_lib.load(config), config)
  total = config.training.train_steps or config.training.epochs * per_epoch
  config = config.replace(eval_every=total)  # validation once, at the end
  results = run.train_and_evaluate(config, workdir)
  _, model, _ = loading.restore_model(workdir)
  return model, results["test"]


def _defining(config):
  """What a cell's numbers depend on: the base config's fields of config.RESULT_ROLES (but
  --model, which each method sets) and TOOL_FLAGS."""
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  names = [n for n in config_lib.names_with_roles(config_lib.RESULT_ROLES, config)
           if n != "model"]
  values = {n: config.flat()[n] for n in names}
  values.update({n: FLAGS[n].value for n in TOOL_FLAGS + _FAMILY_FLAGS})
  return {n: list(v) if isinstance(v, tuple) else v for n, v in values.items()}


def _normal(value):
  """A recorded value in one form (cells written earlier recorded list flags as strings)."""
  return [str(v) for v in value] if isinstance(value, list) else value


def _nn_epochs(num_labeled, batch_size=32):
  """--nn_epochs, capped so the supervised network takes at most --nn_max_steps steps."""
  steps_per_epoch = -(-num_labeled // batch_size)
  return max(1, min(FLAGS.nn_epochs, FLAGS.nn_max_steps // steps_per_epoch))


def _cell(num_labels, seed):
  """Test accuracies of every method for one (num_labels, seed), cached in a json file."""
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
  root = os.path.join(FLAGS.workdir, f"labels_{num_labels}")
  done = os.path.join(root, f"seed{seed}.json")
  if os.path.exists(done):
    with open(done) as f:
      cell = json.load(f)
    recorded, now = cell.get("flags", _UNRECORDED), _defining(_base_config(num_labels, seed))
    for name, value in recorded.items():
      if name in now and _normal(value) != _normal(now[name]):
        raise app.UsageError(f"{done} was computed with --{name}={value}, not "
                             f"--{name}={now[name]}: use another --workdir.")
    return cell
  config = _base_config(num_labels, seed)
  data = data_lib.load(config)
  config = config.replace(num_classes=data.num_classes)
  chosen = data_lib.labeled_indices(data, config)
  train_x, train_y = ssl.split_arrays(data_lib.fixed_train(data, config), "train")
  test_x, test_y = ssl.split_arrays(data, "test")
  began = time.perf_counter()
  out = {"raw_lr": ssl.logistic_regression_accuracy(train_x[chosen], train_y[chosen], test_x,
                                                    test_y),
         "raw_nn": ssl.supervised_network_accuracy(train_x[chosen], train_y[chosen], test_x,
                                                   test_y, config, _nn_epochs(len(chosen)),
                                                   seed=seed)}
  vae, _ = _train(config, os.path.join(root, f"vae_seed{seed}"))
  out["m1"] = ssl.m1_accuracy(vae, data, config)["accuracy"]
  pc_vae, test = _train(_base_config(num_labels, seed, "pc_vae").replace(
      num_classes=data.num_classes), os.path.join(root, f"pc_vae_seed{seed}"))
  out["pc_vae_lr"] = ssl.m1_accuracy(pc_vae, data, config)["accuracy"]
  out["pc_vae"] = test["accuracy"]
  _, test = _train(_base_config(num_labels, seed, "m2").replace(
      num_classes=data.num_classes), os.path.join(root, f"m2_seed{seed}"))
  out["m2"] = test["accuracy"]
  out["m2_generative"] = test["generative_accuracy"]
  out["num_labels"] = len(chosen)
  out["flags"] = _defining(_base_config(num_labels, seed))
  out["wall_s"] = round(time.perf_counter() - began)
  os.makedirs(root, exist_ok=True)
  with open(done + ".tmp", "w") as f:
    json.dump(out, f, indent=2)
  os.replace(done + ".tmp", done)
  return out


def _mean_std(values):
  import numpy as np  # pylint: disable=import-outside-toplevel
  if any(v is None for v in values):
    return "–"  # a cell cached before this row existed
  values = 100 * np.asarray(values)
  if len(values) == 1:
    return f"{values[0]:.1f} (1 seed)"
  return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def table(cells):
  """Markdown table from {num_labels: [cell per seed]}: rows METHODS, a column per setting."""
  settings = list(cells)
  header = "| method | " + " | ".join(
      f"{cells[s][0]['num_labels']} labels" + (" (all)" if s == "all" else "")
      for s in settings) + " |"
  lines = [header, "|---|" + "---|" * len(settings)]
  for key, label in METHODS:
    lines.append(f"| {label} | " + " | ".join(_mean_std([c.get(key) for c in cells[s]])
                                             for s in settings) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  settings = [FLAGS.num_labels] + (["all"] if FLAGS.with_all else [])
  cells = {}
  for num_labels in settings:
    cells[num_labels] = []
    seeds = FLAGS.label_seeds
    if num_labels == "all" and FLAGS.all_label_seeds:
      seeds = FLAGS.all_label_seeds
    for seed in range(seeds):
      cells[num_labels].append(_cell(num_labels, seed))
      print(f"num_labels={num_labels} seed={seed}: {json.dumps(cells[num_labels][-1])}",
            flush=True)
  lines = [f"Test accuracy (%) on {FLAGS.dataset}, mean ± std over {FLAGS.label_seeds} label "
           f"seeds; {FLAGS.architecture} "
           f"{'-'.join(FLAGS.hidden_sizes if FLAGS.architecture == 'mlp' else FLAGS.conv_filters)}"
           f", latent_dim {FLAGS.latent_dim}, "
           + (f"{FLAGS.train_steps} steps" if FLAGS.train_steps else f"{FLAGS.epochs} epochs")
           + f" at batch {FLAGS.batch_size}; binarization {FLAGS.binarization}, "
           f"{FLAGS.likelihood} likelihood.", "", table(cells)]
  text = "\n".join(lines)
  print(text)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
