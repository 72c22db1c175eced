"""Node counts of the Trainer's traced functions, by op type: whether two trees compute the same.

  cd TREE && python tools/graph_ops.py --output=ops.json   # in each tree, then compare the JSON

Builds the Trainer `python -m tfvae.train` uses for tools/peer_benchmark.py's model (MLP
784-512-256-32 on Fashion-MNIST, batch 128), runs 2 train steps and one validation, and counts
the nodes of every concrete function of `_train_loop`, `_one_step`, `_grads` and the
Evaluator's steps, their function libraries included. Identical counts per op type mean the
same computation; timing lives in the benchmarks (tools/trainer_throughput.py,
tools/peer_benchmark.py), never here or in a test.
"""

import collections
import dataclasses
import json
import os

from absl import app
from absl import flags

flags.DEFINE_string("output", "", "Write {function: {op type: count}} here as JSON.")
FLAGS = flags.FLAGS


def _count(functions):
  counts = collections.Counter()
  for function in functions:
    for concrete in function._list_all_concrete_functions():  # pylint: disable=protected-access
      graph = concrete.graph.as_graph_def()
      counts.update(node.op for node in graph.node)
      for library_function in graph.library.function:
        counts.update("library:" + node.op for node in library_function.node_def)
  return counts


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(dataset="fashion_mnist", hidden_sizes=(512, 256), latent_dim=32,
                             batch_size=128)
  data = data_lib.load(config)
  # Trees before the sectioned Config (719bb55 and older): a flat dataclass, make_strategy in
  # the trainer module.
  config = (config.replace(image_shape=data.image_shape) if hasattr(config, "sections")
            else dataclasses.replace(config, image_shape=data.image_shape))
  make_strategy = getattr(distribute, "make_strategy", None) or trainer_lib.make_strategy
  trainer = trainer_lib.Trainer(config, make_strategy(config))
  trainer.train(trainer.train_iterator(data), 2)
  metrics = trainer.evaluate(data_lib.eval_dataset(data, "validation", 1000))
  out = {name: dict(_count([getattr(trainer, name)]))
         for name in ("_train_loop", "_one_step", "_grads")}
  out["evaluator"] = dict(_count(trainer.evaluator._steps.values()))  # pylint: disable=protected-access
  for name, counts in out.items():
    print(f"{name}: {sum(counts.values())} nodes")
  print(f"validation elbo {metrics['elbo']:.3f} iwae_bound {metrics.get('iwae_bound', 0):.3f}")
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
  app.run(main)
