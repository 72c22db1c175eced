"""Model families: each loss against a hand computation, and every model x architecture trains a
few steps on digits, exports, and reloads."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import conftest

from tfvae import config as config_lib
from tfvae import flows
from tfvae import serving
from tfvae.models import interface
from tfvae import objectives
from tfvae.training import run

SEED = tf.constant([7, 8], tf.int32)
STEP = tf.constant(0, tf.int64)


_build = conftest.tiny_model


def _batch(n=6, binary=True):
  x = tf.random.stateless_uniform([n, 8, 8, 1], [1, 2])
  return {"image": tf.cast(x < 0.5, tf.float32) if binary else x,
          "label": tf.zeros([n], tf.int64)}


def _bce(x, logits):
  """-sum log Bernoulli(x; sigmoid(logits)) per example, by hand."""
  x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
  per_pixel = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
  return per_pixel.reshape(len(x), -1).sum(-1)


def _code(model, x):
  return model.encoder(x).mean().numpy()


def _logits(model, code):
  return model.decoder(tf.constant(code)).distribution.logits.numpy()


def test_ae_loss_is_the_binary_cross_entropy_of_its_reconstruction():
  model, batch = _build(model="ae"), _batch()
  terms = model.losses(batch, SEED, STEP)
  assert sorted(terms) == ["distortion", "loss"]
  expected = _bce(batch["image"], _logits(model, _code(model, batch["image"])))
  np.testing.assert_allclose(terms["loss"], expected, rtol=1e-5)
  assert not isinstance(model, interface.LatentVariableModel)


def test_ae_with_normal_likelihood_is_a_scaled_squared_error():
  """Training: sigma^2 is the batch's mean squared error (calibrated); evaluation: the stored
  sigma (1 at initialization)."""
  model, batch = _build(model="ae", likelihood="normal"), _batch(binary=False)
  x = batch["image"].numpy()
  recon = model.decoder(model.encoder(x).mean()).mean().numpy()
  squared_error = ((x - recon) ** 2).reshape(len(x), -1).sum(-1)
  for training, sigma in [(True, np.sqrt(squared_error.sum() / x.size)),
                          (False, float(model.decoder.scale()))]:
    expected = squared_error / (2 * sigma**2) + 64 * np.log(sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(model.losses(batch, SEED, STEP, training)["loss"], expected,
                               rtol=1e-5)


@pytest.mark.parametrize("family", ["vae", "hvae", "m2", "pc_vae"])
def test_normal_train_loss_uses_the_batch_optimal_sigma(family):
  """sigma-VAE (issue 33 item 4): in training the distortion summed over the batch is
  B * P / 2 * (1 + log(2 pi sigma^2)) with sigma^2 the batch's mean squared error (returned as
  mean_squared_error [B]); evaluation uses the stored sigma instead and returns the same
  squared error (what Evaluator.calibrate fits the stored sigma to)."""
  model = _build(model=family, likelihood="normal", num_classes=3)
  assert model.calibrated
  batch = _batch(binary=False)
  terms = model.losses(batch, SEED, STEP, training=True)
  variance = float(np.mean(terms["mean_squared_error"]))
  assert terms["mean_squared_error"].shape == [6] and 0 < variance < 1
  if family != "m2":  # m2's distortion weighs the classes by q(y|x): not one sum of squares
    np.testing.assert_allclose(np.sum(terms["distortion"]),
                               6 * 64 / 2 * (1 + np.log(2 * np.pi * variance)), rtol=1e-4)
  evaluated = model.losses(batch, SEED, STEP, training=False)  # the same noise
  np.testing.assert_allclose(evaluated["mean_squared_error"], terms["mean_squared_error"],
                             rtol=1e-5)
  stored = float(model.decoder.scale()) ** 2  # 1 (+ 1e-3) at initialization
  if family != "m2":
    np.testing.assert_allclose(
        np.sum(evaluated["distortion"]),
        6 * 64 * (variance / (2 * stored) + 0.5 * np.log(2 * np.pi * stored)), rtol=1e-4)


@pytest.mark.parametrize("family", ["vae", "m2", "ae"])
def test_only_a_calibrated_model_takes_a_held_out_scale(family):
  model = _build(model=family, likelihood="normal", num_classes=3)
  model.calibrate(tf.constant(0.04))
  np.testing.assert_allclose(model.decoder.scale(), 0.2, rtol=1e-5)
  other = _build(model=family, likelihood="bernoulli", num_classes=3)
  assert not other.calibrated
  with pytest.raises(ValueError, match="has no calibrated likelihood scale"):
    other.calibrate(tf.constant(0.04))


def test_sparse_ae_adds_lambda_times_the_l1_norm_of_the_code():
  model, batch = _build(model="sparse_ae", sparsity_weight=0.3), _batch()
  terms = model.losses(batch, SEED, STEP)
  code = _code(model, batch["image"])
  np.testing.assert_allclose(terms["sparsity_penalty"], 0.3 * np.abs(code).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(terms["loss"], _bce(batch["image"], _logits(model, code))
                             + 0.3 * np.abs(code).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("corruption", ["masking", "gaussian"])
def test_denoising_ae_at_level_zero_equals_the_ae(corruption):
  batch = _batch()
  ae = _build(model="ae")
  dae = _build(model="denoising_ae", corruption=corruption, corruption_level=0.0)
  for a, b in zip(ae.variables, dae.variables):
    b.assign(a)
  np.testing.assert_allclose(dae.losses(batch, SEED, STEP)["loss"],
                             ae.losses(batch, SEED, STEP)["loss"], rtol=1e-6)


def test_denoising_ae_encodes_the_corrupted_input_and_scores_the_clean_one():
  model, batch = _build(model="denoising_ae", corruption_level=0.5), _batch()
  x = batch["image"]
  corrupted = objectives.corrupt(x, "masking", 0.5, SEED)
  expected = _bce(x, _logits(model, _code(model, corrupted)))
  np.testing.assert_allclose(model.losses(batch, SEED, STEP)["loss"], expected, rtol=1e-5)
  # Evaluation (training=False) reconstructs the clean input from itself.
  clean = _bce(x, _logits(model, _code(model, x)))
  np.testing.assert_allclose(model.losses(batch, SEED, STEP, training=False)["loss"], clean,
                             rtol=1e-5)


def test_contractive_ae_penalty_is_the_squared_frobenius_norm_of_the_encoder_jacobian():
  model, batch = _build(model="contractive_ae", contraction_weight=0.2), _batch(n=3)
  terms = model.losses(batch, SEED, STEP)
  x = batch["image"]
  for b in range(3):  # per example, with the plain (non-batched) Jacobian
    xb = tf.Variable(x[b:b + 1])
    with tf.GradientTape() as tape:
      code = model.encoder(xb).mean()
    jacobian = tape.jacobian(code, xb).numpy()
    np.testing.assert_allclose(terms["contractive_penalty"][b], 0.2 * np.sum(jacobian**2),
                               rtol=1e-5)
  np.testing.assert_allclose(terms["loss"] - terms["contractive_penalty"],
                             _bce(x, _logits(model, _code(model, x))), rtol=1e-5)


def test_vae_loss_follows_the_beta_schedule_and_free_bits_but_reports_the_true_elbo():
  model, batch = _build(model="vae", beta=2.0, beta_schedule="linear", warmup_steps=10,
                        free_bits=0.5), _batch()
  for step, beta in [(0, 0.0), (5, 1.0), (10, 2.0), (99, 2.0)]:
    terms = model.losses(batch, SEED, tf.constant(step, tf.int64))
    assert float(model.beta(step)) == beta
    q_z = model.encoder(batch["image"])
    clamped = objectives.rate_with_free_bits(q_z, model.prior(), 0.5)
    np.testing.assert_allclose(terms["loss"], terms["distortion"] + beta * clamped, rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]), rtol=1e-5)
    np.testing.assert_allclose(terms["rate"], objectives.rate(q_z, model.prior()), rtol=1e-5)
  evaluation = model.losses(batch, SEED, tf.constant(0, tf.int64), training=False)
  np.testing.assert_allclose(evaluation["loss"], -evaluation["elbo"], rtol=1e-6)


FAMILIES = [("vae", "mlp"), ("vae", "conv"), ("ae", "mlp"), ("ae", "conv"),
            ("sparse_ae", "mlp"), ("sparse_ae", "conv"), ("denoising_ae", "mlp"),
            ("denoising_ae", "conv"), ("contractive_ae", "mlp"), ("contractive_ae", "conv")]
# Density models (tests/test_density_models.py checks their log-densities).
VARIANTS = {"hvae_vampprior": ("hvae", "gated_mlp", dict(prior="vampprior", num_pseudo_inputs=7)),
            "vae_iaf_iwae": ("vae", "mlp", dict(posterior="iaf", training_objective="iwae",
                                                num_samples=3)),
            "vae_mixture_dreg": ("vae", "gated_mlp", dict(prior="mixture", num_samples=3,
                                                          training_objective="iwae_dreg"))}


@pytest.mark.parametrize("model,architecture,extra", [(m, a, {}) for m, a in FAMILIES] + list(
    VARIANTS.values()), ids=[f"{m}-{a}" for m, a in FAMILIES] + list(VARIANTS))
@pytest.mark.slow
def test_every_model_trains_exports_and_reloads(tmp_path, model, architecture, extra):
  config = config_lib.Config(model=model, architecture=architecture, hidden_sizes=(32,),
                             conv_filters=(4, 8), latent_dim=2, train_steps=6, steps_per_loop=3,
                             eval_every=6, batch_size=32, eval_importance_samples=2,
                             strategy="one_device", **extra)
  workdir = str(tmp_path)
  results = run.train_and_evaluate(config, workdir)
  assert results["step"] == 6 and np.isfinite(results["test"]["loss"])
  assert np.isfinite(results["test"]["squared_error"])
  generative = model in ("vae", "hvae")
  assert ("elbo" in results["test"]) == generative and ("nll" in results["test"]) == generative
  with open(os.path.join(workdir, "eval.json")) as f:
    key = "test_K2" if generative else "test"  # the key names K when there is an iwae_bound
    assert json.load(f)[key]["loss"] == results["test"]["loss"]

  from tfvae import loading  # pylint: disable=import-outside-toplevel
  _, restored, step = loading.restore_model(workdir)
  assert step == 6
  loaded = tf.saved_model.load(os.path.join(workdir, "export"))
  expected = {"decode", "encode", "reconstruct", "serving_default"}
  if generative:
    expected |= {"elbo", "sample"}
  assert set(loaded.signatures) == expected
  x = tf.random.stateless_uniform([4, 8, 8, 1], [3, 3])
  np.testing.assert_allclose(loaded.signatures["reconstruct"](x=x)["reconstruction"],
                             restored.reconstruct(x), rtol=1e-5, atol=1e-6)
  encoded, q_z = loaded.signatures["encode"](x=x), restored.posterior(x)
  if isinstance(q_z, flows.FlowPosterior):  # q0's parameters, and the flow at q0's mean
    np.testing.assert_allclose(encoded["code"], q_z.mean(), rtol=1e-5, atol=1e-5)
    q_z = q_z.base
  np.testing.assert_allclose(encoded["loc" if generative else "code"], q_z.mean(), rtol=1e-5,
                             atol=1e-6)
  if generative:  # the exported elbo is the model's, on the same seed
    np.testing.assert_allclose(loaded.signatures["elbo"](x=x)["elbo"],
                               restored.elbo(x, tf.constant(serving._ELBO_SEED))["elbo"],
                               rtol=1e-5)  # pylint: disable=protected-access

  if architecture != "conv":  # every figure draws (samples only where there is a prior)
    from tfvae import visualize  # pylint: disable=import-outside-toplevel
    paths = visualize.draw(workdir, visualize.FIGURES, num_examples=100)
    assert set(paths) == set(visualize.FIGURES) - {"class_samples"} - (
        set() if generative else {"samples"})  # class_samples: label-conditional models
    assert all(os.path.getsize(p) > 1000 for p in paths.values())

  if (model, architecture) == ("ae", "mlp"):  # the evaluate CLI reports what an AE has
    from conftest import run_module  # pylint: disable=import-outside-toplevel
    proc = run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=10")
    reported = json.loads(proc.stdout)
    assert "elbo" not in reported and reported["step"] == 6
    np.testing.assert_allclose(reported["distortion"], results["test"]["distortion"], rtol=1e-6)


@pytest.mark.parametrize("per_epoch, eval_every, expected", [
    (5, 0, 100),     # 300 examples / batch 64: every 20 epochs, not every 5 steps
    (19, 0, 114),    # digits' 1198 / 64: 6 whole epochs
    (391, 0, 391),   # Fashion-MNIST's 50000 / 128: every epoch, as before
    (5, 7, 7)])      # --eval_every is kept as given
def test_validation_runs_every_epoch_but_not_every_few_steps(per_epoch, eval_every, expected):
  """On small data a validation line came every 5 steps (issue 33, item 5)."""
  assert run.eval_interval(config_lib.Config(eval_every=eval_every), per_epoch) == expected
