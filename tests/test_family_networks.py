"""User networks in pc_vae, m2 and hvae (tfvae/user_networks.py, tfvae/network_checks.py, each
family's `accepts()`): what each part is called on (the decoder's concatenated input), the
one-line errors, the user classifier's accuracy term, training on digits, the stored parts
loaded in a fresh process, and the network knobs that factories make inactive."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from conftest import ROOT
from tfvae import models
from tfvae import user_networks

tfd = tfp.distributions
LATENT, CLASSES, SHAPE = 3, 10, (8, 8, 1)
LABELED = {"pc_vae": {"num_labels": "50"}, "m2": {"num_labels": "50"}, "hvae": {}}
# What each family's decoder reads: z, [z, y_onehot] or [z1, z2], concatenated.
DECODER_WIDTH = {"pc_vae": LATENT, "m2": LATENT + CLASSES, "hvae": 2 * LATENT}


def _config(family, **kwargs):
  values = dict(model=family, latent_dim=LATENT, hidden_sizes=(16,), train_steps=30,
                steps_per_loop=10, eval_every=0, eval_importance_samples=0,
                **LABELED[family])
  values.update(kwargs)
  return tfvae.Config(**values)


def _encoder():
  return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                           keras.layers.Dense(16, activation="relu")], name="my_encoder")


def _decoder(width):
  return keras.Sequential([keras.Input((width,)), keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(64), keras.layers.Reshape(SHAPE)],
                          name="my_decoder")


def _classifier(family, classes=CLASSES):
  """pc_vae: z [B, latent_dim] -> logits; m2: x [B, 8, 8, 1] -> logits."""
  inputs = [keras.Input((LATENT,))] if family == "pc_vae" else [keras.Input(SHAPE),
                                                                keras.layers.Flatten()]
  return keras.Sequential(inputs + [keras.layers.Dense(classes)], name="my_classifier")


def _parts(family):
  parts = dict(encoder=_encoder(), decoder=_decoder(DECODER_WIDTH[family]))
  if family != "hvae":
    parts["classifier"] = _classifier(family)
  return parts


@keras.saving.register_keras_serializable("tfvae_family_tests")
class CategoricalClassifier(keras.Model):
  """x [B, 8, 8, 1] -> tfd.Categorical of its own."""

  def __init__(self, classes=CLASSES, **kwargs):
    super().__init__(**kwargs)
    self.classes = classes
    self.flatten = keras.layers.Flatten()
    self.logits = keras.layers.Dense(classes)

  def call(self, x):
    return tfd.Categorical(logits=self.logits(self.flatten(x)))

  def get_config(self):
    return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable("tfvae_family_tests")
class GaussianEncoder(keras.Model):
  """x -> MultivariateNormalDiag q(z|x) of its own (m2 refuses it: q(z|x, y) needs y)."""

  def call(self, x):
    x = keras.layers.Flatten()(x)[:, :LATENT]
    return tfd.MultivariateNormalDiag(x, tf.ones_like(x))


@pytest.mark.parametrize("family,parts,message", [
    ("hvae", dict(decoder=_decoder(LATENT)),
     "decoder: expected input [z1, z2] [B, 6] (z1 [3] and z2 [3] joined on the last axis), "
     "got a network whose input is [None, 3]."),
    ("m2", dict(decoder=_decoder(LATENT)),
     "decoder: expected input [z, y_onehot] [B, 13] (z [3] and y_onehot [10] joined on the "
     "last axis), got a network whose input is [None, 3]."),
    ("pc_vae", dict(decoder=_decoder(2 * LATENT)),
     "decoder: expected input z [B, 3] (--latent_dim), got a network whose input is "
     "[None, 6]."),
    ("m2", dict(decoder=keras.Sequential([keras.Input((LATENT + CLASSES,)),
                                          keras.layers.Dense(5)])),
     "decoder: for [z, y_onehot] [2, 13] and --likelihood=bernoulli expected parameters "
     "[2, 8, 8, 1], got a Tensor [2, 5]."),
    ("pc_vae", dict(classifier=_classifier("pc_vae", classes=4)),
     "classifier: for z [2, 3] expected logits [2, 10] (10 classes) or a tfd.Categorical "
     "with batch [2] over 10 classes, got a Tensor [2, 4]."),
    ("pc_vae", dict(classifier=_classifier("m2")),
     "classifier: expected input z [B, 3] (--latent_dim), got a network whose input is "
     "[None, 8, 8, 1]."),
    ("m2", dict(classifier=CategoricalClassifier(classes=4)),
     "classifier: for x [2, 8, 8, 1] expected logits [2, 10] (10 classes) or a "
     "tfd.Categorical with batch [2] over 10 classes, got a Categorical with batch [2] and "
     "event [] over 4 classes."),
    ("m2", dict(encoder=GaussianEncoder()),
     "encoder: it returns a distribution, so --model=m2 joins the features with y for "
     "q(z|x, y): return features [B, F] instead."),
    ("m2", dict(prior=keras.layers.Dense(1)),
     "prior: --model=m2 takes no prior network (it takes encoder, decoder, likelihood, "
     "classifier)."),
    ("hvae", dict(classifier=_classifier("pc_vae")),
     "classifier: --model=hvae takes no classifier network (it takes encoder, decoder, "
     "likelihood, prior)."),
], ids=["hvae_decoder_width", "m2_decoder_width", "pc_vae_decoder_width", "m2_decoder_params",
        "pc_vae_classes", "pc_vae_classifier_input", "m2_categorical_classes",
        "m2_distribution_encoder", "m2_prior", "hvae_classifier"])
def test_networks_that_do_not_fit_the_family_are_one_line_before_anything_is_written(
    tmp_path, family, parts, message):
  with pytest.raises(user_networks.NetworkError) as raised:
    tfvae.fit(_config(family), str(tmp_path / "run"), **parts)
  assert str(raised.value) == message
  assert not (tmp_path / "run").exists()


def _built(family, **parts):
  config = _config(family).replace(image_shape=SHAPE, num_classes=CLASSES,
                                   labeled_examples=50)
  return models.build(config, seed=0, parts=user_networks.Parts(**parts))


@pytest.mark.parametrize("family,returns", [("pc_vae", "logits"), ("m2", "logits"),
                                             ("m2", "categorical")])
def test_a_user_classifier_gives_the_accuracy_term(family, returns):
  template = CategoricalClassifier() if returns == "categorical" else _classifier(family)
  inputs = tf.zeros([1, LATENT] if family == "pc_vae" else [1, *SHAPE])
  template(inputs)  # built: the model's copy starts from these weights
  model = _built(family, classifier=template)
  x = tf.cast(tf.random.stateless_uniform([40, *SHAPE], seed=[1, 2]) > 0.5, tf.float32)
  on = model.posterior(x).mean() if family == "pc_vae" else x
  out = template(on)
  logits = out.logits_parameter() if isinstance(out, tfd.Distribution) else out
  predicted = np.argmax(logits, -1)
  labels = np.arange(40) % CLASSES
  labels[::4] = -1  # unknown: 0 accuracy, not counted
  terms = model.losses({"image": x, "label": tf.constant(labels, tf.int64),
                        "index": tf.range(40)}, tf.constant([3, 4]),
                       tf.constant(0, tf.int64), training=False)
  np.testing.assert_array_equal(terms["accuracy"], (predicted == labels) & (labels >= 0))
  assert model.classifier.net is not template  # a copy is trained, not the caller's object
  variables = {id(v) for v in model.trainable_variables}
  assert all(id(v) in variables for v in model.classifier.net.trainable_variables)


@keras.saving.register_keras_serializable("tfvae_family_tests")
class ShiftedPrior(keras.layers.Layer):
  """call() -> N(loc, I) over [LATENT], loc a learned weight (initialized to 0.5)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.loc = self.add_weight(shape=(LATENT,), initializer=keras.initializers.Constant(0.5),
                               name="loc")

  def call(self):
    return tfd.MultivariateNormalDiag(self.loc, tf.ones([LATENT]))


def test_hvae_decodes_z1_and_z2_concatenated_and_its_top_prior_is_the_users():
  template = _decoder(2 * LATENT)
  model = _built("hvae", decoder=template, prior=ShiftedPrior())
  z2 = tf.random.stateless_normal([5, LATENT], seed=[5, 6])
  z1 = model.p_z1([z2]).mean()
  expected = tf.sigmoid(template(tf.concat([z1, z2], -1)))  # Bernoulli means of the logits
  np.testing.assert_allclose(model.decode(z2).mean(), expected, rtol=1e-5, atol=1e-6)
  # p(z2) is the user's: log_prior = log p(z1|z2) + log N(z2; 0.5, I).
  x = tf.zeros([5, *SHAPE])
  eps = tf.random.stateless_normal([1, 5, 2 * LATENT], seed=[7, 8])
  terms = model.log_weight_terms(x, model.posterior(x), eps)
  z2 = terms["z"][0]
  p_z1 = model.p_z1([z2])
  z1 = model.q_z1([tf.reshape(x, [5, -1]), z2]).bijector.forward(eps[0, :, LATENT:])
  expected = p_z1.log_prob(z1) + tfd.MultivariateNormalDiag(
      0.5 * tf.ones([LATENT]), tf.ones([LATENT])).log_prob(z2)
  np.testing.assert_allclose(terms["log_prior"][0], expected, rtol=1e-5)
  assert any(v.name == "loc" for v in model.trainable_variables)


def _elbo_script(workdir):
  return f"""
import numpy as np
from sklearn.datasets import load_digits
import tfvae
m = tfvae.load({workdir!r})
x = (load_digits().images[:50, :, :, None] / 16.0 > 0.5).astype(np.float32)
print("ELBO", repr(float(np.mean(m.elbo(x)))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pc_vae", "m2", "hvae"])
def test_user_networks_train_are_stored_and_a_fresh_process_gets_the_same_elbo(tmp_path,
                                                                             family):
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "run")
  parts = _parts(family)  # built (keras.Input): the run starts from their weights
  before = {name: network.weights[0].numpy().copy() for name, network in parts.items()}
  model = tfvae.fit(_config(family), workdir, **parts)
  assert model.results["step"] == 30 and np.isfinite(model.results["test"]["elbo"])
  if family != "hvae":  # the user classifier's accuracy, over the labeled test examples
    assert 0 <= model.results["test"]["accuracy"] <= 1
  assert sorted(os.listdir(os.path.join(workdir, "networks"))) == sorted(
      f"{name}.json" for name in parts)
  trained = {"encoder": model.model.encoder.body, "decoder": model.model.decoder.net}
  if family != "hvae":
    trained["classifier"] = model.model.classifier.net
  for name, network in trained.items():  # the copies trained; the templates did not change
    assert network.name == f"my_{name}"
    assert not np.allclose(network.weights[0].numpy(), before[name]), name
    np.testing.assert_array_equal(parts[name].weights[0].numpy(), before[name])
  if family != "hvae":  # load(workdir, classifier=) takes the run's own, refuses another
    tfvae.load(workdir, classifier=_classifier(family))
    with pytest.raises(user_networks.NetworkError, match="^classifier: differs from the one "
                       "stored"):
      tfvae.load(workdir, classifier=_classifier(family, classes=CLASSES + 1))
  x = (load_digits().images[:50, :, :, None] / 16.0 > 0.5).astype(np.float32)
  here = float(np.mean(model.elbo(x)))
  proc = subprocess.run([sys.executable, "-c", _elbo_script(workdir)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  there = float(proc.stdout.split("ELBO")[-1])
  assert there == pytest.approx(here, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("family,reset", [
    ("vae", ["architecture", "hidden_sizes", "conv_filters"]),
    ("ae", ["architecture", "hidden_sizes", "conv_filters"]),
    ("pc_vae", ["architecture", "conv_filters"]),  # the classifier reads hidden_sizes[-1]
    ("hvae", ["conv_filters"]),  # q(z1|x, z2) and p(z1|z2) read architecture, hidden_sizes
    ("m2", []),  # the classifier q(y|x) reads all three
    ("cvae", ["architecture", "conv_filters"]),  # q(z|x, c)'s joint layer reads hidden_sizes
])
def test_factories_make_the_network_knobs_nothing_else_reads_inactive(family, reset):
  knobs = dict(architecture="conv", hidden_sizes=(16,), conv_filters=(8,))
  config = tfvae.Config(model=family, encoder="m:f", decoder="m:g", **knobs,
                        **LABELED.get(family, {}))
  normalized, messages = config.normalized()
  changed = [name for name, value in knobs.items() if getattr(normalized.model, name) != value]
  assert changed == reset
  for name in reset:
    assert any(m.startswith(f"--{name}=") and "has no effect with --encoder=m:f and "
               "--decoder=m:g: ignored" in m for m in messages), messages
  # One factory only: tfvae builds the other network from the knobs.
  _, messages = tfvae.Config(model=family, encoder="m:f", **knobs,
                             **LABELED.get(family, {})).normalized()
  assert not [m for m in messages if "--hidden_sizes" in m or "--architecture" in m]


def test_an_iaf_posterior_keeps_hidden_sizes_with_factories():
  config = tfvae.Config(encoder="m:f", decoder="m:g", posterior="iaf", hidden_sizes=(16,))
  normalized, _ = config.normalized()
  assert normalized.model.hidden_sizes == (16,)
