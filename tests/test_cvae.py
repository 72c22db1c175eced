"""The conditional VAE (tfvae/models/cvae.py): its bound, training, conditioning on digits, the
Python API, the SavedModel, and the per-class sample accuracy (tfvae/evaluation/conditional.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from sklearn import linear_model

import tfvae
from conftest import run_module, saved_config
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import models
from tfvae import noise
from tfvae import serving
from tfvae.evaluation import conditional
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.models import interface
from tfvae.trained import TrainedModel
from tfvae.training import workdir_setup
from tfvae.training import trainer as trainer_lib

tfd = tfp.distributions
K = 4


def _config(**overrides):
  values = dict(model="cvae", hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1),
                num_classes=K)
  values.update(overrides)
  return config_lib.Config(**values)


def _batch(n=6):
  rng = np.random.default_rng(0)
  return {"image": tf.constant(rng.integers(0, 2, [n, 8, 8, 1]).astype(np.float32)),
          "label": tf.constant(np.arange(n) % K, tf.int64),
          "index": tf.range(n, dtype=tf.int64)}


def _perturb(variables, seed):
  for i, v in enumerate(variables):
    v.assign(0.3 * tf.random.stateless_normal(v.shape, [seed, i]))


@pytest.mark.parametrize("prior", ["learned", "standard"])
def test_the_terms_are_the_conditional_kl_and_likelihood(prior):
  model = models.build(_config(conditional_prior=prior, beta=2.0), seed=0)
  assert isinstance(model, interface.Conditional) and isinstance(model,
                                                                 interface.LabelConditional)
  if prior == "learned":  # off its N(0, I) start, so that p(z|c) depends on c
    _perturb(model.prior_network.trainable_variables, 5)
  batch, seed = _batch(), tf.constant([3, 4], tf.int32)
  terms = model.losses(batch, seed, tf.constant(0, tf.int64), training=False)
  c = tf.one_hot(batch["label"], K)
  q_z, p_z = model.encoder(batch["image"], c), model.conditional_prior(c)
  np.testing.assert_allclose(terms["rate"], tfd.kl_divergence(q_z, p_z), rtol=1e-5)
  if prior == "learned":
    assert np.abs(p_z.mean()[0] - p_z.mean()[1]).max() > 1e-3  # classes 0 and 1 differ
  else:
    np.testing.assert_allclose(terms["rate"], tfd.kl_divergence(q_z, tfd.MultivariateNormalDiag(
        tf.zeros(3), tf.ones(3))), rtol=1e-5)
  # The distortion: the decoder at [z, c], z from the noise the model draws.
  eps = noise.replica_normal_noise(1, 6, 3, seed, batch["index"])
  z = q_z.loc + q_z.stddev() * eps  # [1, B, D]
  c_l = tf.broadcast_to(c, [1, 6, K])
  expected = -model.decoder(tf.concat([z, c_l], -1)).log_prob(batch["image"])[0]
  np.testing.assert_allclose(terms["distortion"], expected, rtol=1e-5)
  np.testing.assert_allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]), rtol=1e-6)
  trained = model.losses(batch, seed, tf.constant(0, tf.int64), training=True)
  np.testing.assert_allclose(trained["loss"], trained["distortion"] + 2.0 * trained["rate"],
                             rtol=1e-5)  # beta weighs the rate in training only
  np.testing.assert_allclose(terms["loss"], -terms["elbo"], rtol=1e-6)


def test_the_marginal_prior_is_the_uniform_mixture_of_the_conditional_ones():
  model = models.build(_config(), seed=0)
  _perturb(model.prior_network.trainable_variables, 7)
  z = tf.random.stateless_normal([5, 3], [1, 1])
  per_class = tf.stack([model.conditional_prior(tf.one_hot([k] * 5, K)).log_prob(z)
                        for k in range(K)])  # [K, 5]
  np.testing.assert_allclose(model.prior().log_prob(z),
                             tf.reduce_logsumexp(per_class, 0) - np.log(K), rtol=1e-5)


def test_vectors_are_conditioned_as_images():
  model = models.build(_config(image_shape=(5,), likelihood="normal", binarization="none"),
                       seed=0)
  batch = {"image": tf.random.stateless_normal([6, 5], [0, 1]),
           "label": tf.constant(np.arange(6) % K, tf.int64)}
  terms = model.losses(batch, tf.constant([1, 2]), tf.constant(0, tf.int64), training=False)
  assert terms["elbo"].shape == (6,) and np.all(np.isfinite(terms["elbo"]))
  drawn = model.sample(tf.constant(3), tf.constant([0, 1]), tf.constant(2, tf.int64))
  assert drawn["mean"].shape == (3, 5) and list(drawn["label"].numpy()) == [2, 2, 2]


def test_every_variable_gets_a_gradient():
  model = models.build(_config(), seed=0)
  _perturb(model.prior_network.trainable_variables, 5)  # its output layer starts at zero
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model.losses(_batch(), tf.constant([1, 2]), tf.constant(0, tf.int64))[
        "loss"])
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None and np.abs(g).max() > 0 for g in grads), [
      v.name for v, g in zip(model.trainable_variables, grads)
      if g is None or not np.abs(g).max() > 0]


@pytest.mark.parametrize("prior", ["learned", "standard"])
@pytest.mark.slow
def test_train_steps_change_every_part_and_evaluation_changes_nothing(prior):
  config = _config(conditional_prior=prior, dataset="digits", batch_size=32, learning_rate=3e-3)
  data = data_lib.load(config)
  config = workdir_setup.resolve(config, data)  # image_shape, num_classes 10, pixel_levels 17
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  trainer = trainer_lib.Trainer(config, strategy)
  model = trainer.model
  before = [v.numpy().copy() for v in model.trainable_variables]
  validation = data_lib.eval_dataset(data, "validation", 100)
  evaluator = evaluator_lib.Evaluator(model, strategy, num_importance_samples=16)
  first = evaluator(validation)
  assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
  trainer.train(trainer.train_iterator(data), 40)
  changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
  assert all(changed), [v.name for v, c in zip(model.trainable_variables, changed) if not c]
  assert len(before) == (len(model.encoder.trainable_variables)
                         + len(model.decoder.trainable_variables)
                         + (len(model.prior_network.trainable_variables) if prior == "learned"
                            else 0))
  after = [v.numpy().copy() for v in model.trainable_variables]
  metrics = evaluator(validation)
  assert all(np.array_equal(a, v.numpy()) for a, v in zip(after, model.trainable_variables))
  assert metrics["elbo"] > first["elbo"] + 5  # it trained
  for name in ("iwae_bound", "nll", "active_units", "rate_per_dimension", "squared_error"):
    assert name in metrics, name
  assert metrics["iwae_bound"] >= metrics["elbo"]
  np.testing.assert_allclose(sum(metrics["rate_per_dimension"]), metrics["rate"], rtol=1e-4)
  # TrainedModel gives each example the noise the evaluation gave it, given its class.
  x, y = data.validation.images, data.validation.labels
  trained = TrainedModel(config, model, 40)
  np.testing.assert_allclose(trained.elbo(x, batch_size=64, label=y).mean(), metrics["elbo"],
                             rtol=1e-4)
  np.testing.assert_allclose(trained.iwae_bound(x, 16, batch_size=64, label=y).mean(),
                             metrics["iwae_bound"], rtol=1e-4)


def test_the_python_api_takes_the_class_and_refuses_what_it_cannot_use():
  model = models.build(_config(), seed=0)
  trained = TrainedModel(_config(), model, 0)
  x = np.random.default_rng(1).integers(0, 2, [5, 8, 8, 1]).astype(np.float32)
  drawn = trained.sample(6, seed=3, label=2)
  assert drawn["mean"].shape == (6, 8, 8, 1) and list(drawn["label"]) == [2] * 6
  assert np.array_equal(drawn["mean"], trained.sample(6, seed=3, label=2)["mean"])
  assert set(trained.sample(200, seed=1)["label"]) == set(range(K))  # label=None: uniform
  assert trained.elbo(x, label=[0, 1, 2, 3, 0]).shape == (5,)
  assert not np.allclose(trained.elbo(x, label=0), trained.elbo(x, label=1))
  assert trained.reconstruct(x, label=1).shape == (5, 8, 8, 1)
  c = tf.one_hot([3] * 5, K)
  np.testing.assert_allclose(trained.encode(x, label=3).mean(), model.encode(x, c).mean())
  np.testing.assert_allclose(trained.decode(np.zeros([5, 3]), label=3).mean(),
                             model.decode(tf.zeros([5, 3]), c).mean())
  for call, match in [(lambda: trained.elbo(x), "give label="),
                      (lambda: trained.elbo(x, label=[0, 1]), r"one per example \[5\]"),
                      (lambda: trained.iwae_bound(x, 4, label=K), rf"in \[0, {K}\)"),
                      (lambda: trained.elbo(x, label=0.5), "dtype float"),
                      (lambda: trained.reconstruct(x), "give label="),
                      (lambda: trained.sample(2, label=K), "label=4"),
                      (lambda: trained.encode(x), "give label="),
                      (lambda: trained.decode(np.zeros([2, 3])), "give label=")]:
    with pytest.raises(ValueError, match=match) as raised:
      call()
    assert "\n" not in str(raised.value)
  vae = TrainedModel(config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1)),
                     models.build(config_lib.Config(hidden_sizes=(8,), latent_dim=2,
                                                    image_shape=(8, 8, 1)), seed=0), 0)
  with pytest.raises(ValueError, match="is not conditional"):
    vae.elbo(x, label=0)


def test_data_without_labels_is_refused_in_one_line_before_anything_is_written(tmp_path):
  x = np.random.default_rng(0).integers(0, 17, [200, 8, 8, 1]).astype(np.uint8)
  with pytest.raises(tfvae.ConfigError, match="--model=cvae generates given a class.*no "
                     "labels") as raised:
    tfvae.fit(tfvae.Config(model="cvae", hidden_sizes=(8,), latent_dim=2, train_steps=2),
              str(tmp_path / "run"), data=x)
  assert "\n" not in str(raised.value)
  assert not (tmp_path / "run" / "config.json").exists()
  with pytest.raises(tfvae.ConfigError, match="no labels"):
    _config(num_classes=0)


_SAVED = """
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = tf.constant(np.load(sys.argv[2]))
y = tf.constant([0, 1, 2, 3, 1], tf.int64)
s = m.signatures
drawn = s["sample"](n=tf.constant(4), seed=tf.constant([4, 2]), label=tf.constant(3))
print(json.dumps({
    "signatures": sorted(s),
    "elbo": s["elbo"](x=x, y=y)["elbo"].numpy().tolist(),
    "loc": s["encode"](x=x, y=y)["loc"].numpy().tolist(),
    "reconstruction": s["reconstruct"](x=x, y=y)["reconstruction"].numpy().tolist(),
    "style": list(s["style_transfer"](x=x, y=y)["images"].shape),
    "sample": drawn["mean"].numpy().tolist(), "label": drawn["label"].numpy().tolist(),
    "again": s["sample"](n=tf.constant(4), seed=tf.constant([4, 2]), label=tf.constant(3))
             ["mean"].numpy().tolist(),
    "tfp_imported": "tensorflow_probability" in sys.modules}))
"""


@pytest.mark.slow
def test_the_saved_model_takes_the_class_and_loads_without_tfp(tmp_path):
  model = models.build(_config(), seed=0)
  _perturb(model.prior_network.trainable_variables, 3)
  serving.export(model, str(tmp_path / "export"))
  x = _batch(5)["image"].numpy()
  np.save(tmp_path / "x.npy", x)
  proc = subprocess.run([sys.executable, "-c", _SAVED, str(tmp_path / "export"),
                         str(tmp_path / "x.npy")], capture_output=True, text=True, check=True)
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert not out["tfp_imported"]
  assert out["signatures"] == sorted(["serving_default", "encode", "decode", "sample",
                                      "reconstruct", "elbo", "style_transfer"])
  c = tf.one_hot([0, 1, 2, 3, 1], K)
  expected = model.elbo(tf.constant(x), tf.constant(serving._ELBO_SEED), c)  # pylint: disable=protected-access
  np.testing.assert_allclose(out["elbo"], expected["elbo"], rtol=1e-5)
  np.testing.assert_allclose(out["loc"], model.encode(x, c).mean(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["reconstruction"], model.reconstruct(x, c), rtol=1e-5,
                             atol=1e-6)
  assert out["style"] == [5, K, 8, 8, 1]
  assert out["label"] == [3] * 4 and out["sample"] == out["again"]
  mine = model.sample(tf.constant(4), tf.constant([4, 2]), tf.constant(3, tf.int64))
  np.testing.assert_allclose(out["sample"], mine["mean"], rtol=1e-5, atol=1e-6)


def _digits_classifier():
  """LogisticRegression fitted on the digits train split ([0, 1] pixels), its test accuracy,
  and the test split."""
  data = data_lib.load(config_lib.Config(dataset="digits"))
  flat = lambda images: (images / 16.0).reshape(len(images), -1)  # pylint: disable=unnecessary-lambda-assignment
  clf = linear_model.LogisticRegression(max_iter=2000).fit(flat(data.train.images),
                                                           data.train.labels)
  return clf, clf.score(flat(data.test.images), data.test.labels), data.test


class _Replay(interface.LatentVariableModel, interface.LabelConditional):
  """A 'generator' of real test images of the class asked for, or (ignore_label) of any."""

  def __init__(self, test, ignore_label=False):
    super().__init__(name="replay")
    self.num_classes, self.test, self.ignore_label = 10, test, ignore_label

  def sample(self, n, seed, label=None):
    rng = np.random.default_rng(int(seed[0]))
    pool = np.arange(len(self.test)) if self.ignore_label else np.flatnonzero(
        self.test.labels == int(label))
    return {"mean": self.test.images[rng.choice(pool, int(n))] / 16.0}


def test_conditional_sample_accuracy_of_a_perfect_and_of_an_unconditional_generator():
  clf, test_accuracy, test = _digits_classifier()
  classify = lambda x: clf.predict(x.reshape(len(x), -1))  # pylint: disable=unnecessary-lambda-assignment
  perfect = conditional.conditional_sample_accuracy(_Replay(test), classify, 50, seed=1)
  assert abs(perfect["accuracy"] - test_accuracy) < 0.05 and len(perfect["per_class"]) == 10
  assert perfect["chance"] == 0.1
  # A model that ignores the class: the same draws for every class, so the per-class
  # accuracies sum to 1 and their mean is 1/K exactly.
  blind = conditional.conditional_sample_accuracy(_Replay(test, True), classify, 50, seed=1)
  assert blind["accuracy"] == pytest.approx(0.1)
  with pytest.raises(ValueError, match="does not sample given a class"):
    conditional.conditional_sample_accuracy(models.build(config_lib.Config(
        hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1))), classify, 5)
  with pytest.raises(ValueError, match="classify returned shape"):
    conditional.conditional_sample_accuracy(_Replay(test), lambda x: classify(x)[:2], 5)


@pytest.mark.parametrize("prior", ["standard", "learned"])
@pytest.mark.slow
def test_on_digits_samples_of_class_k_are_classified_as_k(tmp_path, prior):
  """The conditioning works: a classifier fitted on real digits labels the CVAE's samples of
  class k as k far more often than chance (0.1, what any model that ignores the class gets:
  see the test above); the run evaluates, draws its per-class figure and exports as any.
  With the standard prior the class reaches the samples through the decoder only (a decoder
  that ignores c fails here); with the learned one through p(z|c) too."""
  workdir = str(tmp_path / "run")
  trained = tfvae.fit(tfvae.Config(model="cvae", dataset="digits", latent_dim=8,
                                   hidden_sizes=(128,), batch_size=64, learning_rate=3e-3,
                                   train_steps=500, steps_per_loop=100, eval_every=500,
                                   eval_importance_samples=20, conditional_prior=prior),
                      workdir)
  test = trained.results["test"]
  assert test["nll"] <= -test["elbo"] and test["iwae_bound"] > -40  # a bound given c, in nats
  clf, test_accuracy, _ = _digits_classifier()
  classify = lambda x: clf.predict(x.reshape(len(x), -1))  # pylint: disable=unnecessary-lambda-assignment
  result = tfvae.conditional_sample_accuracy(trained, classify, num_per_class=50, seed=0)
  assert result["accuracy"] > 0.6, result  # chance: 0.1; the classifier's test accuracy ~0.95
  assert min(result["per_class"]) > 0.2, result
  paths = tfvae.draw(workdir, ["class_samples", "reconstructions", "samples"])
  assert sorted(paths) == ["class_samples", "reconstructions", "samples"]
  assert tfvae.load(workdir).elbo(trained.data().test.images[:8], label=3).shape == (8,)
  if prior == "learned":  # evaluate --sample_quality: the same accuracy, by the domain classifier
    from tfvae.evaluation import sample_quality  # pylint: disable=import-outside-toplevel
    cache = str(tmp_path / "feature_networks")
    quality = trained.sample_quality(num_samples=500, cache_dir=cache)
    assert quality["class_samples_per_class"] == 50 and quality["class_sample_accuracy"] > 0.6
    network = sample_quality.classifier_for(trained.config,
                                            sample_quality.real_data(trained.config), cache)
    direct = tfvae.conditional_sample_accuracy(trained, network.classify, 50, seed=0)
    assert quality["class_sample_accuracy"] == direct["accuracy"]
    assert quality["class_sample_accuracy_per_class"] == direct["per_class"]


@pytest.mark.slow
def test_the_command_line_trains_evaluates_and_draws_and_refuses_a_table_without_labels(
    tmp_path):
  workdir = str(tmp_path / "run")
  run_module("tfvae.train", "--flagfile=configs/digits_cvae.cfg", "--train_steps=40",
             "--eval_every=40", "--steps_per_loop=20", f"--workdir={workdir}")
  assert saved_config(workdir)["model"] == "cvae"
  assert saved_config(workdir)["conditional_prior"] == "learned"
  reported = json.loads(run_module("tfvae.evaluate", f"--workdir={workdir}",
                                   "--num_importance_samples=10").stdout)
  assert reported["nll"] == -reported["iwae_bound"] and reported["rate"] > 0
  run_module("tfvae.visualize", f"--workdir={workdir}", "--what=class_samples")
  assert os.path.getsize(os.path.join(workdir, "figures", "class_samples.png")) > 1000
  table = tmp_path / "table.csv"
  rows = np.random.default_rng(0).normal(size=[60, 3])
  table.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows))
  proc = run_module("tfvae.train", f"--dataset={table}", "--model=cvae", "--likelihood=normal",
                    "--train_steps=2", "--batch_size=8", f"--workdir={tmp_path / 't'}",
                    check=False)
  last = proc.stderr.strip().splitlines()[-1]  # (after the data's log line)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert last.startswith("tfvae.train: --model=cvae generates given a class") and (
      "has no labels" in last), last
  assert not os.path.exists(tmp_path / "t" / "config.json")
