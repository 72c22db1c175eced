import numpy as np
import pytest
import tensorflow as tf

from tfvae import noise

SEED = tf.constant([5, 6], tf.int32)


def test_replica_noise_is_the_global_batch_noise_split_across_replicas():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  per_replica = strategy.run(lambda: noise.replica_normal_noise(2, 3, 4, SEED))
  parts = strategy.experimental_local_results(per_replica)
  np.testing.assert_array_equal(tf.concat(parts, axis=1),
                                noise.replica_normal_noise(2, 6, 4, SEED))
  assert not np.allclose(parts[0], parts[1])


@pytest.mark.parametrize("dim", [1, 3, 4, 7, 32])
@pytest.mark.parametrize("first_row", [0, 1, 2, 5, 40])
def test_stream_rows_are_the_rows_of_the_whole_draw(first_row, dim):
  whole = tf.random.stateless_normal([60, dim], SEED, alg="philox")
  rows = noise.stream_rows(SEED, first_row, 13, dim)
  np.testing.assert_array_equal(rows, whole[first_row:first_row + 13])
  in_graph = tf.function(lambda start: noise.stream_rows(SEED, start, 13, dim), autograph=False)
  np.testing.assert_array_equal(in_graph(tf.constant(first_row)), rows)


def test_stream_rows_are_standard_normal():
  rows = noise.stream_rows(SEED, 123457, 20000, 3).numpy()
  assert abs(rows.mean()) < 4 / np.sqrt(rows.size)
  assert abs(rows.var() - 1) < 6 * np.sqrt(2 / rows.size)


def test_importance_noise_per_example_is_its_own_stream_whatever_the_chunk_and_batch():
  index = tf.constant([4, 0, 9], tf.int32)
  key = tf.random.experimental.stateless_fold_in(SEED, 0)[0]
  streams = [tf.random.stateless_normal([60, 5], tf.stack([key, i]), alg="philox")
             for i in index]  # sample k of example b is row k of its stream
  expected = tf.stack(streams, axis=1)  # [60, 3, 5]
  for first_block, num_blocks in [(0, 6), (0, 1), (2, 3), (5, 1)]:
    eps = noise.importance_noise(3, 5, first_block, num_blocks, SEED, index)
    rows = slice(first_block * noise.NOISE_BLOCK, (first_block + num_blocks) * noise.NOISE_BLOCK)
    np.testing.assert_array_equal(eps, expected[rows])
  alone = noise.importance_noise(1, 5, 2, 1, SEED, index[2:])
  np.testing.assert_array_equal(alone[:, 0], expected[20:30, 2])


def test_example_noise_does_not_depend_on_the_batch():
  both = noise.example_normal_noise([SEED], tf.constant([3, 8]), [2, 4])[0]
  alone = noise.example_normal_noise([SEED], tf.constant([8]), [2, 4])[0]
  np.testing.assert_array_equal(both[1], alone[0])
  assert not np.allclose(both[0], both[1])
