"""Sample quality (tfvae/evaluation/sample_quality.py, feature_networks.py): the Fréchet distance
and precision/recall on cases with known answers, the domain classifier of digits and its cache,
Inception-v3's plumbing, and `python -m tfvae.evaluate --sample_quality` end to end."""

import json
import os

import numpy as np
import pytest
from scipy import linalg
from scipy.spatial import distance

import tfvae
from tfvae import summaries
from tfvae.evaluation import feature_networks
from tfvae.evaluation import sample_quality as sq


def _random_covariance(rng, dim, rank=None):
  factor = rng.normal(size=(dim, rank or dim))
  return factor @ factor.T / dim


def test_closed_form_in_one_dimension_and_for_commuting_covariances():
  # 1-D: (m1 - m2)^2 + (s1 - s2)^2, the 2-Wasserstein distance of two normals, squared.
  assert sq.frechet_distance_gaussians([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(
      9 + (2 - 3) ** 2)
  # Diagonal covariances: sum_d (sqrt(a_d) - sqrt(b_d))^2 plus the squared mean difference.
  a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
  mu = np.array([0.5, 0.0, -1.0])
  assert sq.frechet_distance_gaussians(mu, np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(
      np.sum(mu ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_closed_form_matches_scipy_sqrtm_for_non_commuting_covariances():
  rng = np.random.default_rng(0)
  cov1, cov2 = _random_covariance(rng, 6), _random_covariance(rng, 6)
  mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
  reference = (np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2)
               - 2 * np.trace(linalg.sqrtm(cov1 @ cov2).real))
  assert sq.frechet_distance_gaussians(mu1, cov1, mu2, cov2) == pytest.approx(reference, rel=1e-9)


def test_the_sample_estimate_converges_to_the_closed_form():
  rng = np.random.default_rng(1)
  cov1, cov2 = _random_covariance(rng, 5), 2 * _random_covariance(rng, 5)
  mu1, mu2 = np.zeros(5), rng.normal(size=5)
  a = rng.multivariate_normal(mu1, cov1, size=200_000)
  b = rng.multivariate_normal(mu2, cov2, size=200_000)
  exact = sq.frechet_distance_gaussians(mu1, cov1, mu2, cov2)
  assert exact > 1
  assert sq.frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("num", [60, 2000])  # fewer rows than features: singular covariances
def test_a_set_against_itself_is_zero_and_a_shifted_copy_gives_the_shift_squared(num):
  rng = np.random.default_rng(2)
  features = rng.gamma(1.0, size=(num, 128)) @ rng.normal(size=(128, 128))  # correlated
  shift = rng.normal(size=128)
  scale = np.trace(np.cov(features, rowvar=False))
  assert sq.frechet_distance(features, features) <= 1e-8 * scale
  assert sq.frechet_distance(features, features + shift) == pytest.approx(
      np.sum(shift ** 2), abs=1e-8 * scale)


def test_frechet_distance_refuses_features_that_do_not_fit():
  with pytest.raises(ValueError, match="features_a has 2 features, features_b 3"):
    sq.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="features_a has shape"):
    sq.frechet_distance(np.zeros(5), np.zeros((5, 1)))


def _brute_force_precision_recall(real, fake, k):
  """The paper's definition, with every pairwise distance (scipy)."""
  def radii(x):
    return np.sort(distance.cdist(x, x), axis=1)[:, k]
  inside = lambda points, centers: np.mean(  # noqa: E731
      np.any(distance.cdist(points, centers) <= radii(centers)[None], axis=1))
  return inside(fake, real), inside(real, fake)


def test_precision_and_recall_on_identical_far_apart_and_collapsed_sets():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(500, 8))
  assert sq.precision_recall(real, real.copy()) == (1.0, 1.0)
  assert sq.precision_recall(real, real + 100.0) == (0.0, 0.0)
  # Mode collapse: samples close to 20 of the real points are all realistic (precision 1) but
  # cover little of the data (recall about 20 / 500): the two are not swapped.
  collapsed = np.repeat(real[:20], 25, axis=0) + 1e-3 * rng.normal(size=(500, 8))
  precision, recall = sq.precision_recall(real, collapsed)
  assert precision == 1.0 and recall < 0.1


def test_precision_and_recall_match_the_definition_computed_by_brute_force():
  rng = np.random.default_rng(4)
  real, fake = rng.normal(size=(300, 5)), 0.7 * rng.normal(size=(250, 5)) + 0.5
  for k in (1, 3, 5):
    got = sq.precision_recall(real, fake, k)
    want = _brute_force_precision_recall(real, fake, k)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert 0.05 < got[0] < 0.999 and 0.05 < got[1] < 0.999, got  # a case with both in between


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("feature_networks"))


@pytest.fixture(scope="module")
def digits(cache_dir):
  """(Data of digits as the feature networks see it, its DomainClassifier trained now)."""
  config = tfvae.Config(dataset="digits")
  data = sq.real_data(config)
  return data, sq.classifier_for(config, data, cache_dir)


@pytest.mark.slow
def test_the_domain_classifier_of_digits_is_accurate_and_recorded_beside_its_weights(digits):
  data, classifier = digits
  assert not classifier.info["loaded"]
  with open(os.path.join(classifier.path, feature_networks.INFO_FILENAME)) as f:
    recorded = json.load(f)
  x_test, y_test = sq.inputs(data, "test")
  assert recorded["test_accuracy"] > 0.8
  assert recorded["test_accuracy"] == pytest.approx(classifier.accuracy(x_test, y_test))
  assert recorded["architecture"]["kind"] == "conv" and recorded["num_classes"] == 10
  assert recorded["input_shape"] == [8, 8, 1] and recorded["dataset"] == "digits"
  assert os.path.exists(os.path.join(classifier.path, feature_networks.MODEL_FILENAME))
  assert classifier.features(x_test[:7]).shape == (7, 128)
  assert classifier.classify(x_test[:7]).dtype == np.int64


@pytest.mark.slow
def test_the_second_call_loads_the_cached_classifier_with_the_same_features(digits, cache_dir):
  data, first = digits
  second = sq.classifier_for(tfvae.Config(dataset="digits"), data, cache_dir)
  assert second.info["loaded"] and second.path == first.path
  x_test = sq.inputs(data, "test")[0]
  np.testing.assert_allclose(second.features(x_test), first.features(x_test), atol=1e-5)
  # Other training data (a changed label) are another classifier: not the cached one.
  x, y = sq.inputs(data, "train")
  y = y.copy()
  y[0] = (y[0] + 1) % 10
  assert feature_networks._key((x, y), sq.inputs(data, "test"), 0) != first.info["key"]  # pylint: disable=protected-access


@pytest.mark.slow
def test_the_domain_classifier_of_a_table_standardizes_raw_features_and_reloads(tmp_path):
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  x, y = datasets.load_wine(return_X_y=True)  # 13 raw features of very different scales
  order = np.random.default_rng(0).permutation(len(x))
  train, test = order[:140], order[140:]
  first = feature_networks.domain_classifier(x[train], y[train], x[test], y[test], "wine",
                                             str(tmp_path))
  assert first.info["architecture"]["kind"] == "mlp" and first.info["test_accuracy"] > 0.8
  second = feature_networks.domain_classifier(x[train], y[train], x[test], y[test], "wine",
                                              str(tmp_path))
  assert second.info["loaded"] and not first.info["loaded"]
  np.testing.assert_allclose(second.features(x[test]), first.features(x[test]), atol=1e-5)
  np.testing.assert_array_equal(second.classify(x[test]), first.classify(x[test]))
  with pytest.raises(tfvae.DataError, match="--dataset=wine has 1 classes"):
    feature_networks.domain_classifier(x[train], 0 * y[train], x[test], y[test], "wine",
                                       str(tmp_path))


def test_inception_v3_is_refused_for_vectors_before_any_work():
  import types  # pylint: disable=import-outside-toplevel
  trained = types.SimpleNamespace(config=tfvae.Config(image_shape=(13,)))
  with pytest.raises(tfvae.ConfigError, match="inception_v3 takes images"):
    sq.measure(trained, feature_network="inception_v3")


@pytest.mark.slow
def test_inception_v3_with_random_weights_gives_2048_features_of_small_gray_images():
  network = feature_networks.InceptionFeatures(weights=None)
  x = np.random.default_rng(5).random((3, 8, 8, 1)).astype(np.float32)
  features = network.features(x)
  assert features.shape == (3, 2048) and np.all(np.isfinite(features))
  assert np.ptp(features, axis=0).max() > 0  # the images differ, so do their features
  with pytest.raises(ValueError, match="inception_v3 takes images"):
    network.features(np.zeros((2, 5)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("quality") / "run")
  tfvae.fit(tfvae.Config(dataset="digits", latent_dim=4, hidden_sizes=(32,), train_steps=40,
                         steps_per_loop=20, eval_importance_samples=0), workdir)
  return workdir


def test_sample_quality_checks_its_arguments_before_any_work(monkeypatch):
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import models  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(dataset="digits", hidden_sizes=(16,), latent_dim=3,
                             image_shape=(8, 8, 1))
  model = tfvae.TrainedModel(config, models.build(config), step=0)
  monkeypatch.setattr(sq, "measure", lambda *a, **k: pytest.fail("measured"))
  for kwargs, name in [({"num_samples": -1}, "num_samples"), ({"k": 0}, "k"),
                       ({"split": "dev"}, "split"), ({"feature_network": "vgg"}, "feature_network"),
                       ({"seed": 2 ** 31}, "seed"), ({"num_samples": 70000}, "num_samples"),
                       ({"num_samples": 3, "k": 3}, "num_samples")]:
    with pytest.raises(ValueError, match=f"^{name}="):
      model.sample_quality(**kwargs)


def test_a_model_that_cannot_sample_is_told_in_one_line_before_any_work(monkeypatch):
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import models  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(model="ae", dataset="digits", hidden_sizes=(16,), latent_dim=3,
                             image_shape=(8, 8, 1))
  model = tfvae.TrainedModel(config, models.build(config), step=0)
  monkeypatch.setattr(sq, "real_data", lambda *a, **k: pytest.fail("read the data"))
  with pytest.raises(tfvae.ConfigError, match="^--sample_quality: --model=ae has no prior"):
    model.sample_quality()


@pytest.mark.slow
def test_evaluate_sample_quality_writes_eval_json_and_tensorboard(run, digits, cache_dir):
  from conftest import run_module  # pylint: disable=import-outside-toplevel
  proc = run_module("tfvae.evaluate", f"--workdir={run}", "--sample_quality",
                    "--sample_quality_samples=300", f"--feature_network_dir={cache_dir}")
  printed = json.loads(proc.stdout)
  with open(os.path.join(run, "eval.json")) as f:
    entry = json.load(f)["sample_quality_test_domain_classifier_standard_300samples_seed0"]
  assert entry == printed
  assert entry["classifier"] == digits[1].path  # the cached classifier, not a new one
  assert entry["num_samples"] == 300 and entry["num_real"] == len(digits[0].test)
  # 40 steps of training: far from the data, whose own train examples are close to its test ones.
  assert entry["reference_split"] == "train" and entry["num_reference"] == 300
  assert entry["frechet_distance"] > 2 * entry["reference_frechet_distance"] > 0
  assert entry["reference_precision"] > 0.5 and entry["reference_recall"] > 0.5
  tags = [f"sample_quality_test_domain_classifier_standard_300samples_seed0/{name}"
          for name in ("frechet_distance", "precision", "recall")]
  scalars = summaries.read_scalars(os.path.join(run, "tensorboard", "eval"), tags)
  steps, values = scalars[tags[0]]
  assert list(steps) == [40]
  assert values[0] == pytest.approx(entry["frechet_distance"], rel=1e-6)
  np.testing.assert_allclose(scalars[tags[1]][1], [entry["precision"]], rtol=1e-6)


@pytest.mark.slow
def test_the_samples_come_from_the_sampler_asked_for_and_each_has_its_own_entry(run, digits,
                                                                                cache_dir):
  model = tfvae.load(run)
  with pytest.raises(tfvae.ConfigError, match="^--sample_quality: sampler='gmm'"):
    model.sample_quality(num_samples=100, sampler="gmm", cache_dir=cache_dir)  # not fitted yet
  model.fit_sampler("gmm", num_components=3)
  model = tfvae.load(run)
  results = {name: model.sample_quality(num_samples=200, sampler=name, cache_dir=cache_dir)
             for name in ("standard", "gmm")}
  fitted = model.sample_quality(num_samples=200, cache_dir=cache_dir)  # the run's: the gmm
  assert [r["sampler"] for r in (*results.values(), fitted)] == ["standard", "gmm", "gmm"]
  assert fitted["frechet_distance"] == results["gmm"]["frechet_distance"]
  assert results["gmm"]["frechet_distance"] != results["standard"]["frechet_distance"]
  with open(os.path.join(run, "eval.json")) as f:
    saved = json.load(f)
  for name, result in results.items():
    key = f"sample_quality_test_domain_classifier_{name}_200samples_seed0"
    assert saved[key]["frechet_distance"] == result["frechet_distance"]


class _PixelFeatures:
  """A stand-in feature network: an image's (or vector's) values as its features."""
  info = {"test_accuracy": 1.0}
  path = "pixels"

  def features(self, x):
    x = np.asarray(x, np.float64)
    return x.reshape(len(x), -1)


@pytest.fixture
def untrained(monkeypatch):
  """A TrainedModel of an untrained digits VAE (no workdir), measured in pixel features."""
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import models  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(dataset="digits", hidden_sizes=(16,), latent_dim=3,
                             image_shape=(8, 8, 1))
  monkeypatch.setattr(sq, "classifier_for", lambda *a, **k: _PixelFeatures())
  return tfvae.TrainedModel(config, models.build(config, seed=0), step=7)


def test_the_floor_is_a_seeded_random_subset_of_the_reference_split(untrained):
  data = sq.real_data(untrained.config)
  real, reference = sq.inputs(data, "test")[0], sq.inputs(data, "train")[0]
  state = np.random.get_state()[1].copy()
  first = untrained.sample_quality(num_samples=100, seed=3, write=False)
  np.testing.assert_array_equal(np.random.get_state()[1], state)  # no global seeding
  assert first["num_reference"] == 100 and first["reference_split"] == "train"
  features = _PixelFeatures().features
  floor_of_first_rows = sq.frechet_distance(features(real), features(reference[:100]))
  assert first["reference_frechet_distance"] != pytest.approx(floor_of_first_rows, rel=1e-6)
  chosen = sq.reference_indices(len(reference), 100, 3)
  assert len(set(chosen)) == 100 and chosen.max() >= 100  # not the first rows
  assert first["reference_frechet_distance"] == pytest.approx(
      sq.frechet_distance(features(real), features(reference[chosen])), rel=1e-9)
  again = untrained.sample_quality(num_samples=100, seed=3, write=False)
  other = untrained.sample_quality(num_samples=100, seed=4, write=False)
  assert again["reference_frechet_distance"] == first["reference_frechet_distance"]
  assert other["reference_frechet_distance"] != first["reference_frechet_distance"]
  assert not np.array_equal(sq.reference_indices(len(reference), 100, 4), chosen)


def test_a_floor_with_fewer_reference_examples_than_samples_says_so(untrained, caplog):
  data = sq.real_data(untrained.config)
  available = len(data.validation)
  assert available < 500 < len(data.train)
  caplog.clear()
  result = untrained.sample_quality(num_samples=500, split="train", write=False)
  assert result["num_samples"] == 500 and result["num_reference"] == available
  assert result["reference_split"] == "validation"
  warned = [r.getMessage() for r in caplog.records if "the floor" in r.getMessage()]
  assert len(warned) == 1 and f"num_reference={available}" in warned[0], warned


def test_tensorboard_tags_carry_the_number_of_samples_and_the_seed(untrained, tmp_path):
  untrained.workdir = str(tmp_path)
  results = {(n, seed): untrained.sample_quality(num_samples=n, seed=seed)
             for n, seed in ((100, 0), (150, 0), (100, 1))}
  with open(tmp_path / "eval.json") as f:
    saved = json.load(f)
  keys = {(n, seed): f"sample_quality_test_domain_classifier_standard_{n}samples_seed{seed}"
          for n, seed in results}
  tags = [f"{key}/{name}" for key in keys.values()
          for name in ("frechet_distance", "precision", "recall")]
  scalars = summaries.read_scalars(str(tmp_path / "tensorboard" / "eval"), tags)
  for identity, result in results.items():
    assert saved[keys[identity]]["frechet_distance"] == result["frechet_distance"]
    steps, values = scalars[f"{keys[identity]}/frechet_distance"]
    assert list(steps) == [7]  # one point each: no measurement overwrote another's
    assert values[0] == pytest.approx(result["frechet_distance"], rel=1e-6)
    assert scalars[f"{keys[identity]}/recall"][1][0] == pytest.approx(result["recall"], rel=1e-6)
  assert len({results[k]["frechet_distance"] for k in results}) == 3
