"""Stateless noise that depends on (seed, step, example), never on the batch size or replica count.

Two ways of drawing it, both stateless Philox (`alg="philox"` named: "auto_select" is ThreeFry
under XLA, 7x slower there for 128x784 uniforms on a 2-core Xeon, docs/speed.md). Under XLA on
a CPU even Philox gives other numbers than TensorFlow's own kernel for the same seed (TF 2.21),
so the noise of a train step depends on --jit_compile; within one setting it depends only on
(seed, step, example):
- Training draws the noise of the whole global batch from one seed and each replica takes its
  own rows (`replica_normal_noise`, `replica_noise`): one op per step, and a global batch gets the
  same noise on 1 or N replicas.
- Evaluation draws each example's noise from the seed and the example's index in its split
  (`example_normal_noise`, `importance_noise` with `index`), so a number does not depend on
  --eval_batch_size, the replica count or how the importance samples are chunked.

Importance samples come in blocks of NOISE_BLOCK, so a bound computed in chunks of any multiple
of it sees the same noise as one computed at once.
"""

import tensorflow as tf

# Importance samples are drawn in blocks of this many, each block from its own folded seed, so a
# bound computed in chunks of any multiple of it sees the same noise as one computed at once.
NOISE_BLOCK = 10

# TF's Philox normal sampler turns one 128-bit counter value into this many float32 normals
# and fills its output in order, counter value n giving elements 4n ... 4n + 3 (tests/test_noise.py
# checks stream_rows against the slice of a whole draw).
_NORMALS_PER_COUNTER = 4


def _example_keys(seeds):
  # stateless_fold_in(seed, i) == [hash(seed), i]: hash each seed once, pair it with every index.
  return tf.stack([tf.random.experimental.stateless_fold_in(s, 0)[0] for s in seeds])


def example_normal_noise(seeds, index, shape):
  """Standard normal noise drawn per example: an example's noise depends on its index only.

  Slice [j, b] is drawn from the stateless seed `stateless_fold_in(seeds[j], index[b])`, so an
  example gets the same noise whatever batch it is in (its size, its other rows, the replica
  that holds it). Evaluation uses it (batches carry an "index"), so numbers do not depend on
  --eval_batch_size or the replica count. It costs one small op per example and seed (a
  `tf.map_fn`), which is why training draws its noise for the global batch at once instead.

  Args:
    seeds: list of J int32 Tensors [2] (J static).
    index: int Tensor [b], the examples' indices in their split.
    shape: list of ints (or int32 scalars), the shape of one draw.

  Returns:
    float32 Tensor [J, b, *shape].
  """
  keys = _example_keys(seeds)
  index = tf.cast(index, tf.int32)

  def one_example(i):
    return tf.stack([tf.random.stateless_normal(shape, tf.stack([keys[j], i]), alg="philox")
                     for j in range(len(seeds))])

  noise = tf.map_fn(one_example, index, fn_output_signature=tf.float32, parallel_iterations=32)
  return tf.transpose(noise, [1, 0, *range(2, 2 + len(shape))])  # [J, b, *shape]


def stream_rows(seed, first_row, num_rows, dim):
  """Rows first_row ... first_row + num_rows - 1 of `tf.random.stateless_normal([N, dim], seed,
  alg="philox")` for any N beyond them, drawn without the rows before them.

  The Philox counter is advanced past the first_row * dim normals that precede the rows, so the
  cost is that of the rows asked for, not of the whole stream up to them.

  Args:
    seed: int32 Tensor [2], a stateless seed.
    first_row: int32 scalar (Python int or Tensor), >= 0.
    num_rows: int (static or an int32 scalar), >= 0.
    dim: Python int, the row length.

  Returns:
    float32 Tensor [num_rows, dim].
  """
  key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
  offset = tf.cast(first_row, tf.int64) * dim
  skip = tf.cast(offset // _NORMALS_PER_COUNTER, tf.uint64)
  within = tf.cast(offset % _NORMALS_PER_COUNTER, tf.int32)
  # Philox's seed gives counter [0, c1]: adding to the low word cannot carry.
  counter = counter + tf.stack([skip, tf.zeros([], tf.uint64)])
  size = within + tf.cast(num_rows, tf.int32) * dim
  flat = tf.raw_ops.StatelessRandomNormalV2(shape=tf.reshape(size, [1]), key=key,
                                            counter=counter, alg=1)  # 1: Philox
  return tf.reshape(flat[within:], [num_rows, dim])


def replica_normal_noise(num_samples, batch_size, latent_dim, seed, index=None):
  """Standard normal noise [L, b, D] for this replica's slice of the global batch.

  Without `index`, the noise is drawn for the whole global batch (b * num_replicas_in_sync
  rows) from `seed` and this replica takes its own rows, so every replica draws different noise
  and the result for a given global batch does not depend on how many replicas share it
  (exactly so when every replica holds b examples). Outside a distribution strategy it is plain
  stateless noise. With `index` (evaluation), each example's noise is drawn from `seed` and its
  index (`example_normal_noise`), independent of the batch and the replicas.

  Args:
    num_samples: int L.
    batch_size: int32 scalar b, this replica's batch size.
    latent_dim: int D.
    seed: int32 Tensor [2], a stateless seed.
    index: optional int Tensor [b], the examples' indices in their split.

  Returns:
    float32 Tensor [L, b, D].
  """
  if index is not None:
    return tf.transpose(example_normal_noise([seed], index, [num_samples, latent_dim])[0],
                        [1, 0, 2])
  context = tf.distribute.get_replica_context()
  num_replicas = context.num_replicas_in_sync if context else 1
  replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
  noise = tf.random.stateless_normal([num_samples, batch_size * num_replicas, latent_dim], seed,
                                     alg="philox")  # auto_select is ThreeFry under XLA
  return noise[:, replica * batch_size:(replica + 1) * batch_size]


def importance_noise(batch_size, dim, first_block, num_blocks, seed, index=None):
  """The standard normal noise of importance samples k = first_block * NOISE_BLOCK ...
  (first_block + num_blocks) * NOISE_BLOCK - 1.

  Without `index`, block j draws its noise with `replica_normal_noise` from the seed folded with
  j. With `index` (evaluation), example b's sample k is row k of one stream drawn from
  `stateless_fold_in(seed, index[b])` with shape [K, dim] (whatever the chunk and the batch);
  each chunk draws only its own rows (`stream_rows`), at one op per example and chunk.

  Args:
    batch_size: int32 scalar B (this replica's).
    dim: int, the noise dimension of one sample (a model's noise_dim).
    first_block: int32 scalar (Python int or Tensor), index of the first noise block.
    num_blocks: Python int, number of blocks (static: it sets the chunk's memory).
    seed: int32 Tensor [2].
    index: optional int Tensor [B], the examples' indices in their split.

  Returns:
    float32 Tensor [num_blocks * NOISE_BLOCK, B, dim].
  """
  if index is None:
    return tf.concat([replica_normal_noise(
        NOISE_BLOCK, batch_size, dim,
        tf.random.experimental.stateless_fold_in(seed, first_block + j))
                      for j in range(num_blocks)], axis=0)
  key = _example_keys([seed])[0]
  rows = num_blocks * NOISE_BLOCK
  first_row = first_block * NOISE_BLOCK

  def one_example(i):
    return stream_rows(tf.stack([key, i]), first_row, rows, dim)

  eps = tf.map_fn(one_example, tf.cast(index, tf.int32), fn_output_signature=tf.float32,
                  parallel_iterations=32)  # [B, rows, dim]
  return tf.transpose(eps, [1, 0, 2])


def replica_noise(sample, batch_size, event_shape, seed):
  """Noise for this replica's slice of the global batch, as `replica_normal_noise` draws it.

  Args:
    sample: callable (shape, seed) -> Tensor, a stateless sampler.
    batch_size: int32 scalar b, this replica's batch size.
    event_shape: list of ints, the shape of one example's noise.
    seed: int32 Tensor [2].

  Returns:
    Tensor [b, *event_shape].
  """
  context = tf.distribute.get_replica_context()
  num_replicas = context.num_replicas_in_sync if context else 1
  replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
  noise = sample(tf.concat([[batch_size * num_replicas], event_shape], 0), seed)
  return noise[replica * batch_size:(replica + 1) * batch_size]
