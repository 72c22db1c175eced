import numpy as np
import pytest
import tensorflow as tf

from tfvae import config as config_lib
from tfvae import figures
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
  assert image.shape == (5 * 8, 5 * 8)
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
