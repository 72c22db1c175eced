"""Prints the scalars of a tfvae run's TensorBoard event files as a markdown table.

  python tools/read_scalars.py --workdir=/tmp/tfvae/quickstart [--split=eval] [--tags=elbo,rate]
"""

import os

from absl import app
from absl import flags

from tfvae import summaries

flags.DEFINE_string("workdir", None, "A tfvae run folder.")
flags.DEFINE_enum("split", "eval", ["train", "eval"], "Which event folder.")
flags.DEFINE_list("tags", ["elbo", "rate", "distortion"], "Scalar tags to print.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  scalars = summaries.read_scalars(os.path.join(FLAGS.workdir, "tensorboard", FLAGS.split),
                                   FLAGS.tags)
  rows = {}
  for tag, (steps, values) in scalars.items():
    for step, value in zip(steps, values):
      rows.setdefault(int(step), {})[tag] = value
  print("| step | " + " | ".join(FLAGS.tags) + " |")
  print("|---" * (len(FLAGS.tags) + 1) + "|")
  for step in sorted(rows):
    print(f"| {step} | " + " | ".join(f"{rows[step].get(t, float('nan')):.3f}"
                                      for t in FLAGS.tags) + " |")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
