"""Multi-worker training: TF_CONFIG, MultiWorkerMirroredStrategy, the chief, agreement across workers.

Every worker runs the same program. Collective ops (the gradient all-reduce, evaluation sums,
the end of a distributed dataset, the decisions below) must run in the same order on every
worker or they wait forever, so everything that decides whether a collective runs is either the
same on every worker by construction (steps, config) or agreed by an all-reduce (`any_worker`).
Only the chief writes into the workdir; where TF may need every worker to take part in a save,
the others save into a temporary folder (`write_dir`) that is deleted at once.
"""

import contextlib
import json
import os
import shutil
import tempfile
import weakref

import numpy as np
import tensorflow as tf

from tfvae import config as config_lib

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def split_cpu(num_devices):
  """Splits the first CPU into `num_devices` logical devices (a no-op when it is split so
  already, e.g. by an earlier `tfvae.fit` in this process).

  Raises:
    RuntimeError: if TensorFlow has started in this process with another split.
  """
  if num_devices > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) == num_devices:
      return
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(config):
  """The strategy of --strategy: MirroredStrategy over all GPUs (else all logical CPUs),
  OneDeviceStrategy, or MultiWorkerMirroredStrategy over the cluster of TF_CONFIG.

  With --strategy=multi_worker, call it before any other TF op runs in the process.

  Raises:
    tfvae.config.ConfigError: if the batch does not split over the replicas, or TF_CONFIG is
      missing or invalid (multi_worker).
  """
  if config.execution.strategy == "multi_worker":
    return multi_worker_strategy(config)
  gpus = tf.config.list_logical_devices("GPU")
  devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
  if config.execution.strategy == "one_device":
    return tf.distribute.OneDeviceStrategy(devices[0])
  if config.training.batch_size % len(devices):
    raise config_lib.ConfigError(f"--batch_size={config.training.batch_size} is not divisible by the "
                                 f"{len(devices)} replicas of --strategy=mirrored.")
  return _mirrored(tuple(devices))


_MIRRORED = {}  # devices -> the process's MirroredStrategy over them


def _mirrored(devices):
  """One MirroredStrategy per set of devices and process. Each new MirroredStrategy numbers its
  all-reduces from the same collective keys, so a second run in a process (a notebook's second
  `tfvae.fit`, a tuner's next trial) with other variable shapes failed with "Shape mismatch in
  the collective instance 101"; one strategy keeps numbering on."""
  if devices not in _MIRRORED:
    _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
  return _MIRRORED[devices]


def parse_tf_config(environ=None):
  """Reads and checks the TF_CONFIG environment variable (the cluster and this task).

  Args:
    environ: mapping to read TF_CONFIG from; default os.environ.

  Returns:
    (cluster, task_type, task_index): cluster is {"chief": [address], "worker": [addresses]}
    ("chief" optional), task_type is "chief" or "worker", task_index an int.

  Raises:
    tfvae.config.ConfigError: naming TF_CONFIG, if it is missing, not JSON, or does not
      describe a cluster of chief/worker tasks that holds this task.
  """
  raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
  where = "--strategy=multi_worker needs the TF_CONFIG environment variable"
  if not raw:
    raise config_lib.ConfigError(
        f"{where} (the cluster and this task, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'); it is "
        "not set. For workers on this machine: python tools/launch_local_workers.py "
        "--num_workers=2 -- python -m tfvae.train ...")
  try:
    tf_config = json.loads(raw)
  except ValueError as e:
    raise config_lib.ConfigError(f"TF_CONFIG is not valid JSON ({e}): {raw!r}.") from None
  cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
  task = tf_config.get("task") if isinstance(tf_config, dict) else None
  if (not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief")
      or any(not isinstance(v, list) or not all(isinstance(a, str) for a in v)
             for v in cluster.values())):
    raise config_lib.ConfigError(f"TF_CONFIG has no cluster of 'worker' (and 'chief') address "
                                 f"lists, e.g. {TF_CONFIG_EXAMPLE}; got {raw!r}.")
  unsupported = sorted(set(cluster) - {"chief", "worker"})
  if unsupported or len(cluster.get("chief", [])) > 1:
    raise config_lib.ConfigError(f"TF_CONFIG: --strategy=multi_worker runs one 'chief' (optional) "
                                 f"and 'worker' tasks only; got {raw!r}.")
  task_type = task.get("type") if isinstance(task, dict) else None
  task_index = task.get("index", 0) if isinstance(task, dict) else None
  if (task_type not in cluster or not isinstance(task_index, int)
      or not 0 <= task_index < len(cluster[task_type])):
    raise config_lib.ConfigError(f"TF_CONFIG's task (type and index) is not one of its cluster's "
                                 f"tasks; got {raw!r}.")
  return cluster, task_type, task_index


def multi_worker_strategy(config, environ=None):
  """A MultiWorkerMirroredStrategy (RING collectives) over the cluster of TF_CONFIG.

  Call it before any other TF op runs in the process ("Collective ops must be configured at
  program startup"). Each worker has one replica per GPU, else one CPU replica.

  Args:
    config: the Config (batch_size, num_cpu_devices).
    environ: mapping to read TF_CONFIG from; default os.environ (TF reads it from there too).

  Raises:
    tfvae.config.ConfigError: if TF_CONFIG is missing or invalid (see parse_tf_config), or
      --batch_size is not divisible by the number of replicas of all workers.
  """
  cluster, _, _ = parse_tf_config(environ)
  if config.execution.num_cpu_devices > 1:
    raise config_lib.ConfigError(f"--num_cpu_devices={config.execution.num_cpu_devices}: with "
                                 "--strategy=multi_worker each worker has one CPU replica.")
  num_workers = sum(len(v) for v in cluster.values())
  replicas = num_workers * max(1, len(tf.config.list_physical_devices("GPU")))
  if config.training.batch_size % replicas:
    raise config_lib.ConfigError(
        f"--batch_size={config.training.batch_size} is not divisible by the {replicas} replicas of "
        f"--strategy=multi_worker ({num_workers} workers in TF_CONFIG).")
  options = tf.distribute.experimental.CommunicationOptions(
      implementation=tf.distribute.experimental.CommunicationImplementation.RING)
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_multi_worker(strategy):
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def on_cpu(strategy):
  """True when every replica of `strategy` computes on a CPU device."""
  return all(tf.DeviceSpec.from_string(d).device_type == "CPU"
             for d in strategy.extended.worker_devices)


def is_chief(strategy):
  """True in a single process, and on the chief of a multi-worker cluster: the "chief" task if
  the cluster has one, else worker 0."""
  if not is_multi_worker(strategy):
    return True
  resolver = strategy.cluster_resolver
  if "chief" in resolver.cluster_spec().as_dict():
    return resolver.task_type == "chief"
  return resolver.task_type == "worker" and resolver.task_id == 0


@contextlib.contextmanager
def write_dir(strategy, workdir):
  """Where this worker writes a save that every worker must run: `workdir` on the chief;
  elsewhere a new temporary folder, deleted when the block exits."""
  if is_chief(strategy):
    yield workdir
    return
  scratch = tempfile.mkdtemp(prefix="tfvae_worker_")
  try:
    yield scratch
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def any_worker(strategy, flags):
  """Which of `flags` is true on at least one worker (a collective; every worker must call it).

  Args:
    strategy: a tf.distribute.Strategy.
    flags: sequence of bools, this worker's.

  Returns:
    list of bools, the same on every worker; `flags` itself outside multi-worker training.
  """
  flags = [bool(f) for f in flags]
  if not is_multi_worker(strategy):
    return flags
  local = tf.constant(flags, tf.float32)
  summed = _all_reduce_fn(strategy)(local)
  return [bool(v > 0) for v in np.asarray(summed)]


_ALL_REDUCE = weakref.WeakKeyDictionary()  # strategy -> its traced all-reduce, one per strategy


def _all_reduce_fn(strategy):
  if strategy not in _ALL_REDUCE:
    _ALL_REDUCE[strategy] = tf.function(
        lambda x: strategy.reduce("SUM", strategy.run(tf.identity, args=(x,)), axis=None),
        autograph=False)
  return _ALL_REDUCE[strategy]


def distribute_dataset(strategy, dataset):
  """`strategy.experimental_distribute_dataset` with the DATA auto-shard policy.

  Each global batch is split into per-replica slices; with several workers, worker i keeps
  the i-th slice(s) of every global batch (no file sharding of in-memory data), so the workers
  together see exactly the batches one process would, and the noise each replica slices from
  the global batch (noise.replica_normal_noise) lines up with its rows. A finite dataset
  ends on every worker at the same step (TF agrees on it), also with a partial last batch.

  Args:
    strategy: a tf.distribute.Strategy.
    dataset: tf.data.Dataset of global batches.

  Returns:
    A tf.distribute.DistributedDataset.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return strategy.experimental_distribute_dataset(dataset.with_options(options))
