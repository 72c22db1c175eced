"""Prints the scalars of a tfvae run's TensorBoard event files as a table.

  python tools/read_scalars.py --workdir=/tmp/tfvae/quickstart [--split=eval] [--tags=elbo,rate]

Reads with TensorBoard's own EventAccumulator, so what it prints is what TensorBoard shows.
"""

import os

from absl import app
from absl import flags
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

flags.DEFINE_string("workdir", None, "A tfvae run folder.")
flags.DEFINE_enum("split", "eval", ["train", "eval"], "Which event folder.")
flags.DEFINE_list("tags", ["elbo", "rate", "distortion"], "Scalar tags to print.")
FLAGS = flags.FLAGS


def read(event_dir, tags):
  """Returns {step: {tag: value}} for the given tags (tensor summaries, as tf.summary writes)."""
  acc = event_accumulator.EventAccumulator(event_dir, size_guidance={"tensors": 0})
  acc.Reload()
  rows = {}
  for tag in tags:
    if tag not in acc.Tags()["tensors"]:
      raise ValueError(f"No scalar '{tag}' in {event_dir}; it has {sorted(acc.Tags()['tensors'])}")
    for event in acc.Tensors(tag):
      rows.setdefault(event.step, {})[tag] = float(tf.make_ndarray(event.tensor_proto))
  return rows


def main(argv):
  del argv
  rows = read(os.path.join(FLAGS.workdir, "tensorboard", FLAGS.split), FLAGS.tags)
  print("| step | " + " | ".join(FLAGS.tags) + " |")
  print("|---" * (len(FLAGS.tags) + 1) + "|")
  for step in sorted(rows):
    print(f"| {step} | " + " | ".join(f"{rows[step].get(t, float('nan')):.3f}"
                                      for t in FLAGS.tags) + " |")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
