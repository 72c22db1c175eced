import numpy as np
import pytest
import tensorflow as tf

from tfvae import config as config_lib
from tfvae.evaluation import figures
from tfvae import models


def test_slerp_ends_at_both_points_and_keeps_the_norm_on_the_great_circle():
  a, b = np.array([3.0, 0.0, 0.0]), np.array([0.0, 0.0, 3.0])
  path = figures.slerp(a, b, np.linspace(0, 1, 7))
  np.testing.assert_allclose(path[0], a, atol=1e-12)
  np.testing.assert_allclose(path[-1], b, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0)
  assert np.linalg.norm((a + b) / 2) < 2.2  # the straight line passes closer to the origin


@pytest.fixture(scope="module")
def model():
  return models.build(config_lib.Config(hidden_sizes=(8,), latent_dim=3, image_shape=(8, 8, 1)))


def _texts(fig):
  return [fig._suptitle.get_text()] + [t for ax in fig.axes
                                       for t in (ax.get_xlabel(), ax.get_ylabel())]


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_manifold_decodes_a_grid_over_prior_quantiles_or_principal_directions(latent_dim):
  m = models.build(config_lib.Config(hidden_sizes=(8,), latent_dim=latent_dim,
                                     image_shape=(8, 8, 1)))
  means = np.random.default_rng(0).normal(size=[50, latent_dim]).astype(np.float32)
  fig = figures.manifold(m, means, "T", size=5)
  image = fig.axes[0].get_images()[0].get_array()
  assert image.shape == (5 * 9 - 1, 5 * 9 - 1)  # 8x8 tiles, 1 pixel apart
  expected = "prior quantiles" if latent_dim == 2 else "principal direction"
  assert expected in fig.axes[0].get_xlabel() and "T" in fig._suptitle.get_text()


def test_every_figure_has_a_title_and_axis_labels(model):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=[40, 8, 8, 1]).astype(np.float32)
  means = rng.normal(size=[40, 3]).astype(np.float32)
  labels = np.arange(40) % 4
  rates = np.array([0.1, 2.0, 0.5])
  steps = np.arange(1, 4)
  made = [figures.reconstructions(model, images[:20], "T"),
          figures.samples(model, 20, tf.constant([0, 1]), "T"),
          figures.interpolation(model, [(images[0], images[1])], "T"),
          figures.traversals(model, images[0], rates, "T"),
          figures.latent_pca(means, labels, ("a", "b", "c", "d"), "T"),
          figures.histograms(means, labels, ("a", "b", "c", "d"), rates, "T", num_dims=2),
          figures.curves({"train": {"elbo": (steps, -steps)}}, "T", tags=("elbo",))]
  for fig in made:
    texts = _texts(fig)
    assert texts[0].endswith("- T") and any(texts[1:]), texts
  traversal_rows = [t.get_text() for t in made[3].axes[0].get_yticklabels()]
  assert traversal_rows[0].startswith("z1 (2.00")  # highest KL first
  assert [t.get_text() for t in made[4].axes[0].get_legend().get_texts()] == ["a", "b", "c", "d"]


def test_autoencoder_manifold_spans_its_codes_and_traversals_use_their_spread():
  ae = models.build(config_lib.Config(model="ae", hidden_sizes=(8,), latent_dim=2,
                                      image_shape=(8, 8, 1)))
  rng = np.random.default_rng(0)
  codes = rng.normal(loc=[10.0, -4.0], scale=[3.0, 0.5], size=[200, 2]).astype(np.float32)
  fig = figures.manifold(ae, codes, "T", size=5)
  grid_ax, codes_ax = fig.axes
  assert grid_ax.get_images()[0].get_array().shape == (5 * 9 - 1, 5 * 9 - 1)
  assert "percentile of the codes" in grid_ax.get_xlabel()
  low, high = np.percentile(codes[:, 0], [1, 99])
  np.testing.assert_allclose(codes_ax.get_xlim(), (low, high), rtol=1e-6)
  assert len(codes_ax.collections[0].get_offsets()) == 200  # the data's codes are drawn
  x = rng.uniform(size=[8, 8, 1]).astype(np.float32)
  fig = figures.traversals(ae, x, codes.var(0), "T", center=codes.mean(0), scale=codes.std(0),
                           score_label="var {:.2f}")
  rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
  assert rows == [f"z0 (var {codes.var(0)[0]:.2f})", f"z1 (var {codes.var(0)[1]:.2f})"]
  assert "std of the codes" in fig.axes[0].get_xlabel()


def test_image_grid_separates_tiles_with_padding():
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  images = np.ones([5, 3, 2, 1], np.float32)  # white tiles
  grid = summaries.image_grid(images, columns=3)[0, ..., 0]
  assert grid.shape == (2 * 4 - 1, 3 * 3 - 1)
  np.testing.assert_array_equal(grid[3, :], summaries.PAD_VALUE)  # the row between the rows
  np.testing.assert_array_equal(grid[:3, 2], summaries.PAD_VALUE)  # between columns 0 and 1
  np.testing.assert_array_equal(grid[:3, :2], 1.0)  # tile (0, 0)
  np.testing.assert_array_equal(grid[4:, 6:], 0.0)  # the blank sixth cell
  assert summaries.image_grid(images, columns=3, pad=0).shape == (1, 6, 6, 1)


def test_samples_figure_draws_the_pixels_from_their_own_seed_as_the_export_does(model):
  seed = tf.constant([4, 2])
  fig = figures.samples(model, 20, seed, "T")
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  drawn = model.sample(20, seed)
  mean_panel, pixel_panel = [ax.get_images()[0].get_array() for ax in fig.axes]
  np.testing.assert_allclose(mean_panel, summaries.image_grid(drawn["mean"], 10)[0, ..., 0])
  np.testing.assert_allclose(pixel_panel, summaries.image_grid(drawn["sample"], 10)[0, ..., 0])
  # z and the pixels come from the two halves of the split seed, not both from `seed`.
  z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  p_x = model.decoder(model.prior().sample(20, seed=z_seed))
  np.testing.assert_array_equal(drawn["sample"], p_x.sample(seed=x_seed))
  assert not np.array_equal(drawn["sample"], model.decoder(model.prior().sample(
      20, seed=seed)).sample(seed=seed))
  from tfvae import serving  # pylint: disable=import-outside-toplevel
  exported = serving._Exported(model).sample(tf.constant(20), seed)  # pylint: disable=protected-access
  np.testing.assert_array_equal(exported["sample"], drawn["sample"])


@pytest.mark.parametrize("family", ["cvae", "m2"])
def test_class_samples_has_one_row_per_class_of_the_model_s_draws_of_that_class(family):
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from conftest import tiny_model  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  model = tiny_model(model=family, num_classes=3)
  seed = tf.constant([4, 2])
  fig = figures.class_samples(model, 5, seed, "T", ("a", "b", "c"))
  shown = fig.axes[0].get_images()[0].get_array()
  rows = np.concatenate([model.sample(5, seed, label=k)["mean"] for k in range(3)])
  np.testing.assert_allclose(shown, summaries.image_grid(rows, 5)[0, ..., 0])
  assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]
  plt.close(fig)
