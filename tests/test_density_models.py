"""Density models: GatedDense, the log-variance clamp, per-parameter gradient normalization,
priors (VampPrior, mixture), the IAF posterior, IWAE/DReG objectives and the two-level HVAE,
each log-density against a closed form, a direct sum or numerical integration."""

import json
import os

import keras
import numpy as np
import pytest
from scipy import special, stats
import tensorflow as tf
import tensorflow_probability as tfp

import conftest

from tfvae import config as config_lib
from tfvae import flows
from tfvae import networks
from tfvae import noise
from tfvae import objectives
from tfvae import priors
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.training import early_stopping
from tfvae.training import fused_adam

tfd = tfp.distributions

SEED = tf.constant([7, 8], tf.int32)
STEP = tf.constant(0, tf.int64)


_build = conftest.tiny_model


def _x(n=4):
  return tf.cast(tf.random.stateless_uniform([n, 8, 8, 1], [1, 2]) < 0.5, tf.float32)


def _jitter(model, scale=0.3):
  """Random weights away from the initialization (zero-initialized flow outputs included)."""
  rng = np.random.default_rng(0)
  for v in model.trainable_variables:
    v.assign(v.numpy() + scale * rng.standard_normal(v.shape).astype(np.float32))


def _widen(head, scale=1.7):
  """Sets a posterior head's scale to `scale` everywhere: an importance distribution wider than
  the true posterior keeps the variance of the weights finite, so IWAE_K converges quickly."""
  kernel, bias = head.kernel.numpy(), head.bias.numpy()
  d = kernel.shape[1] // 2
  kernel[:, d:], bias[d:] = 0.0, np.log(np.expm1(scale))
  head.kernel.assign(kernel)
  head.bias.assign(bias)


def test_gated_dense_is_linear_times_sigmoid_gate():
  layer = networks.GatedDense(5)
  x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
  out = layer(x).numpy()
  (w, b), (v, c) = [(d.kernel.numpy(), d.bias.numpy()) for d in (layer.linear, layer.gate)]
  np.testing.assert_allclose(out, (x @ w + b) * special.expit(x @ v + c), rtol=1e-5, atol=1e-6)


def test_gated_mlp_networks_use_gated_layers_only():
  model = _build(architecture="gated_mlp", hidden_sizes=(16, 8))
  assert [type(l).__name__ for l in model.encoder.body.layers] == [
      "Flatten", "GatedDense", "GatedDense"]
  assert [type(l).__name__ for l in model.decoder.net.layers] == [
      "GatedDense", "GatedDense", "Dense", "Reshape"]  # the output layer: logits


def test_clamped_log_variance_bounds_the_posterior_scale():
  params = tf.constant([[0.0, 0.0, -50.0, 0.0, 50.0, 1.0]])  # loc 0,0,-50; raw -> clipped
  q = networks.diagonal_gaussian(params, "clamped_log_variance")
  np.testing.assert_allclose(q.stddev().numpy(), [[np.exp(0.0), np.exp(1.0), np.exp(0.5)]],
                             rtol=1e-6)
  q = networks.diagonal_gaussian(tf.constant([[0.0, -50.0]]), "clamped_log_variance")
  np.testing.assert_allclose(q.stddev().numpy(), [[np.exp(-3.0)]], rtol=1e-6)


def test_per_parameter_gradient_normalization_is_adam_on_unit_norm_gradients():
  """FusedAdam(normalize_gradients) == Keras Adam fed g / ||g|| per variable, also with two
  replicas (the division is after the all-reduce)."""
  for devices in (1, 2):
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)],
                                              tf.distribute.ReductionToOneDevice())
    results = []
    for normalize_here in (False, True):
      keras.utils.set_random_seed(0)
      with strategy.scope():
        variables = [keras.Variable(np.ones((3, 2), np.float32)),
                     keras.Variable(np.ones(4, np.float32))]
        opt = (keras.optimizers.Adam(0.1) if normalize_here else
               fused_adam.FusedAdam(0.1, normalize_gradients=True))
        opt.build(variables)

      def step(opt=opt, variables=variables, normalize_here=normalize_here):
        replica = tf.distribute.get_replica_context()
        n, r = replica.num_replicas_in_sync, replica.replica_id_in_sync_group
        grads = [tf.reshape(tf.range(1.0, v.shape.num_elements() + 1.0), v.shape)
                 * tf.cast(r + 1, tf.float32)
                 / n for v in variables]  # another gradient on each replica
        if normalize_here:  # their sum over the replicas, normalized, by hand
          total = [replica.all_reduce("SUM", g) for g in grads]
          grads = [t / (tf.norm(t) + 1e-7) / n for t in total]
        opt.apply_gradients(zip(grads, variables))

      tf.function(lambda s=step: [strategy.run(s) for _ in range(3)])()
      results.append([v.numpy() for v in variables])
    for a, b in zip(*results):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert np.abs(results[0][0] - 1).max() > 0.1  # it moved


def _mixture_log_prob(z, weights, locs, scales):
  """log sum_k w_k N(z; loc_k, diag(scale_k^2)), by a direct sum."""
  comps = np.stack([stats.multivariate_normal(l, np.diag(s ** 2)).logpdf(z)
                    for l, s in zip(locs, scales)], -1)
  return special.logsumexp(comps + np.log(weights), -1)


def test_mixture_prior_log_prob_is_the_direct_sum():
  layer = priors.Mixture(3, 4)
  layer.logits.assign([0.1, -1.0, 2.0, 0.0])
  p = layer.distribution()
  z = np.random.default_rng(2).standard_normal((5, 3))
  scales = np.log1p(np.exp(layer.raw_scales.numpy())) + networks.MIN_POSTERIOR_SCALE
  expected = _mixture_log_prob(z, special.softmax(layer.logits.numpy()), layer.locs.numpy(),
                               scales)
  np.testing.assert_allclose(p.log_prob(z.astype(np.float32)), expected, rtol=1e-5)


def test_the_matmul_mixture_log_prob_matches_the_direct_sum_at_posterior_scales():
  """K = 500, D = 40 as the VampPrior of the protocol; scales down to 1e-4; z [3, 7, D] near
  and far from the components; float64 direct sums as the reference."""
  rng = np.random.default_rng(5)
  loc = rng.normal(0, 1.5, (500, 40))
  scale = np.exp(rng.uniform(np.log(1e-4), 1.0, (500, 40)))  # down to the softplus floor
  logits = rng.normal(0, 1, 500)
  z = (loc[:21] + scale[:21] * rng.standard_normal((21, 40))).reshape(3, 7, 40)  # near one
  z[2] = rng.normal(0, 3, (7, 40))  # far from every component
  # The reference sees the float32 values the mixture sees (at sigma = 1e-4 the rounding of z
  # to float32 alone moves log p by tenths of a nat).
  logits, loc, scale, z = (a.astype(np.float32).astype(np.float64)
                           for a in (logits, loc, scale, z))
  p = priors.DiagonalGaussianMixture(*(tf.constant(a, tf.float32) for a in (logits, loc, scale)))
  log_prob = p.log_prob(z.astype(np.float32)).numpy()
  assert log_prob.shape == (3, 7)
  per_comp = (-0.5 * (((z[..., None, :] - loc) / scale) ** 2).sum(-1)
              - np.log(scale).sum(-1) - 20 * np.log(2 * np.pi))
  expected = special.logsumexp(per_comp + special.log_softmax(logits), -1)
  np.testing.assert_allclose(log_prob, expected, rtol=1e-6, atol=1e-4)
  direct = tfd.MixtureSameFamily(p.mixture_distribution, p.components_distribution)
  assert p.event_shape == direct.event_shape and p.batch_shape == direct.batch_shape
  assert p.sample(4, seed=(1, 2)).shape == (4, 40)
  assert p.copy().log_prob(z[0, :1].astype(np.float32)).shape == (1,)


def test_vampprior_is_the_mean_of_the_pseudo_input_posteriors_and_trains():
  model = _build(prior="vampprior", num_pseudo_inputs=6)
  u = model.prior_layer.pseudo_inputs().numpy()
  assert u.shape == (6, 8, 8, 1) and u.min() >= 0 and u.max() <= 1
  q_u = model.encoder(u)
  z = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
  expected = _mixture_log_prob(z, np.full(6, 1 / 6), q_u.mean().numpy(), q_u.stddev().numpy())
  np.testing.assert_allclose(model.prior().log_prob(z), expected, rtol=1e-5)
  pseudo = model.prior_layer.pseudo_inputs_raw
  assert any(v is pseudo for v in model.trainable_variables)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.losses({"image": _x()}, SEED, STEP)["loss"])
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads)
  assert float(tf.norm(grads[[v is pseudo for v in model.trainable_variables].index(True)])) > 0


def test_made_is_autoregressive():
  """Output d of the masked network depends on z_1..z_{d-1} only (strictly lower-triangular
  Jacobian), whatever the weights."""
  made = flows.MADE(4, (12, 12))
  z, h = tf.random.normal([1, 4]), tf.random.normal([1, 5])
  made(z, h)
  for v in made.trainable_variables:
    v.assign(tf.random.normal(v.shape))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(z)
    shift, log_scale = made(z, h)
  for out in (shift, log_scale):
    jac = tape.batch_jacobian(out, z)[0].numpy()  # [out d, in j]
    assert np.all(jac[np.triu_indices(4)] == 0)
    assert np.abs(jac[np.tril_indices(4, -1)]).min() > 0


def test_iaf_log_q_is_the_change_of_variables_and_every_variable_trains():
  model = _build(posterior="iaf", num_flows=2)
  _jitter(model, 0.2)
  x = _x(3)
  q = model.posterior(x)
  assert isinstance(q, flows.FlowPosterior)
  eps = tf.random.stateless_normal([2, 3, 3], [5, 6])
  z, log_q = objectives.reparameterize(q, eps)
  z0 = q.base.bijector.forward(eps)
  for l in range(2):
    for b in range(3):
      with tf.GradientTape() as tape:
        point = tf.constant(z0[l, b].numpy()[None])
        tape.watch(point)
        image = q.bijector.forward(tf.broadcast_to(point, [3, 3]))[b]
      jac = tape.jacobian(image, point)[:, 0, :].numpy()
      expected = q.base.log_prob(tf.broadcast_to(point, [3, 3]))[b] - np.log(
          abs(np.linalg.det(jac)))
      np.testing.assert_allclose(log_q[l, b], expected, rtol=1e-4, atol=1e-4)
  # log_prob of a fresh z (no bijector cache) inverts the flow: the same density.
  np.testing.assert_allclose(q.log_prob(tf.constant(z.numpy())), log_q, rtol=1e-4, atol=1e-4)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.losses({"image": x}, SEED, STEP)["loss"])
  grads = tape.gradient(loss, model.trainable_variables)
  flow_vars = model.encoder.flow.trainable_variables
  assert len(flow_vars) == 2 * 5  # per MADE (hidden_sizes=(16,)): the masked hidden layer
  #                                 (kernel, bias), the context kernel, the output (kernel, bias)
  ids = {id(v) for v in model.trainable_variables}
  assert all(id(v) in ids for v in flow_vars)
  assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)


def test_iwae_with_one_sample_is_the_elbo():
  """K = 1: the IWAE loss is the negative Monte Carlo ELBO (mixture prior: the rate is a
  Monte Carlo estimate on the same sample), and the bound's loss is -logmeanexp of the
  model's own log-weights for K = 4."""
  x = _x()
  for k in (1, 4):
    model = _build(prior="mixture", training_objective="iwae", num_samples=k)
    terms = model.losses({"image": x}, SEED, STEP, training=False)
    if k == 1:
      np.testing.assert_allclose(terms["loss"], -terms["elbo"], rtol=1e-6)
    eps = noise.replica_normal_noise(k, 4, 3, SEED)
    log_w = objectives.log_weights(model.log_weight_terms(x, model.posterior(x), eps))
    np.testing.assert_allclose(terms["loss"], -(special.logsumexp(log_w, 0) - np.log(k)),
                               rtol=1e-5)
  assert np.all(terms["loss"].numpy() <= -terms["elbo"].numpy() + 1e-5)  # IWAE >= ELBO here


def test_dreg_has_the_iwae_value_and_decoder_gradient_and_an_unbiased_encoder_gradient():
  """DReG (Tucker et al. 2019): same value and decoder/prior gradient as IWAE exactly; the
  encoder gradient differs per sample but has the same expectation (averaged here over 4000
  copies of one image, each with its own noise)."""
  x = tf.repeat(_x(1), 4000, axis=0)
  grads = {}
  for objective in ("iwae", "iwae_dreg"):
    model = _build(training_objective=objective, num_samples=3, latent_dim=2, hidden_sizes=(8,),
                   prior="mixture", num_mixture_components=2)
    _jitter(model, 0.1)
    with tf.GradientTape() as tape:
      terms = model.losses({"image": x}, SEED, STEP)
      loss = tf.reduce_mean(terms["loss"])
    grads[objective] = (float(loss), [g.numpy() for g in tape.gradient(
        loss, model.trainable_variables)], len(model.encoder.trainable_variables))
  (value_a, g_a, n_enc), (value_b, g_b, _) = grads["iwae"], grads["iwae_dreg"]
  np.testing.assert_allclose(value_b, value_a, rtol=1e-6)
  for a, b in zip(g_a[n_enc:], g_b[n_enc:]):  # decoder and prior
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
  enc_a = np.concatenate([g.ravel() for g in g_a[:n_enc]])
  enc_b = np.concatenate([g.ravel() for g in g_b[:n_enc]])
  assert np.abs(enc_a - enc_b).max() > 0  # another estimator ...
  assert np.linalg.norm(enc_a - enc_b) < 0.1 * np.linalg.norm(enc_a)  # ... of the same mean


def _grid_log_px(log_joint, dim, half_width=6.0, points=161):
  """log p(x) = log integral exp(log_joint(z)) dz by the trapezoid-free midpoint rule on a
  grid of [-half_width, half_width]^dim."""
  axis = np.linspace(-half_width, half_width, points)
  mesh = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim)
  cell = (axis[1] - axis[0]) ** dim
  return special.logsumexp(log_joint(mesh.astype(np.float32)), 0) + np.log(cell)


@pytest.mark.parametrize("kwargs", [
    dict(posterior="iaf", num_flows=2), dict(prior="vampprior", num_pseudo_inputs=5),
    dict(prior="mixture")], ids=["iaf", "vampprior", "mixture"])
@pytest.mark.slow
def test_importance_weighted_bound_converges_to_the_integrated_likelihood(kwargs):
  """With exact log q and log p, IWAE_K -> log p(x) (Burda et al. 2016, thm 1); log p(x) is
  integrated on a grid over a 2-D latent space."""
  model = _build(latent_dim=2, **kwargs)
  _jitter(model, 0.1)
  _widen(model.encoder.head)
  x = _x(2)
  exact = _grid_log_px(lambda z: np.asarray(
      model.decoder(tf.constant(z)[:, None]).log_prob(x) + model.prior().log_prob(z)[:, None]), 2)
  bound = evaluator_lib.iwae_bound(model, x, 20000, 2000, SEED).numpy()
  np.testing.assert_allclose(bound, exact, atol=0.05)
  assert np.all(bound <= exact + 0.02)


@pytest.mark.slow
def test_hvae_bound_is_exact_in_both_layers():
  """Two layers of one dimension each: log p(x) = log integral p(x|z1, z2) p(z1|z2) p(z2) by a
  2-D grid; the HVAE's importance-weighted bound converges to it."""
  model = _build(model="hvae", latent_dim=1)
  _jitter(model, 0.1)
  _widen(model.encoder.head)
  _widen(model.q_z1.head)
  x = _x(2)

  def log_joint(z):
    z1, z2 = z[:, :1], z[:, 1:]
    p_x = model.decoder(tf.constant(np.concatenate([z1, z2], -1))[:, None])
    return np.asarray(p_x.log_prob(x) + (model.p_z1([z2]).log_prob(z1) +
                                         model.prior().log_prob(z2))[:, None])

  exact = _grid_log_px(log_joint, 2)
  bound = evaluator_lib.iwae_bound(model, x, 20000, 2000, SEED).numpy()
  np.testing.assert_allclose(bound, exact, atol=0.05)
  terms = model.losses({"image": x}, SEED, STEP, training=False)
  assert np.all(terms["elbo"].numpy() <= bound + 1e-3)
  assert sorted(model.sample(3, SEED)) == ["mean", "sample"]
  assert model.reconstruct(x).shape == x.shape and model.decode(tf.zeros([2, 1])).mean().shape == (
      2, 8, 8, 1)


@pytest.mark.parametrize("kwargs,error", [
    (dict(training_objective="iwae_dreg", posterior="iaf"), "iwae_dreg"),
    (dict(training_objective="iwae_dreg", prior="vampprior"), "iwae_dreg"),
    (dict(free_bits=0.1, prior="mixture"), "free_bits"),
    (dict(model="hvae", posterior="iaf"), "hvae")])
def test_unsupported_combinations_name_the_flag(kwargs, error):
  with pytest.raises(config_lib.ConfigError, match=error):
    config_lib.Config(**kwargs)


class _Weights(tf.Module):
  def __init__(self):
    super().__init__()
    self.w = tf.Variable(0.0)


def test_best_checkpoint_tracks_the_lowest_loss_and_counts_patience_after_warmup(tmp_path):
  config = config_lib.Config(early_stopping_patience=2, beta_schedule="linear",
                             warmup_steps=20)
  module = _Weights()
  checkpoint = tf.train.Checkpoint(model=module)
  best = early_stopping.BestCheckpoint(checkpoint, config, 10, str(tmp_path), None)
  assert best.evaluations_without_improvement(1000) == 0  # nothing recorded yet: no count
  stops = []
  for step, loss in [(10, 5.0), (20, 6.0), (30, 4.0), (40, 4.5), (50, 4.2), (60, 3.0)]:
    module.w.assign(float(step))
    best.update(step, loss)
    stops.append(best.should_stop(step))
    if step == 50:  # resumed here: a new object reads the state back
      best = early_stopping.BestCheckpoint(checkpoint, config, 10, str(tmp_path), None)
      assert best.should_stop(50) and best.best_step == 30
  assert stops == [False, False, False, False, True, False]
  assert early_stopping.read_best(str(tmp_path)) == {"step": 60, "loss": 3.0}
  restored = _Weights()
  tf.train.Checkpoint(model=restored).restore(early_stopping.best_checkpoint(str(tmp_path)))
  assert float(restored.w.numpy()) == 60.0
  assert len([f for f in os.listdir(early_stopping.best_dir(str(tmp_path)))
              if f.endswith(".index")]) == 1
  # During the warm-up nothing counts: the best at 10, evaluations at 20 only.
  fresh = early_stopping.BestCheckpoint(checkpoint, config, 10, None, None)
  fresh.update(10, 1.0)
  assert fresh.evaluations_without_improvement(20) == 0 and not fresh.should_stop(30)
  assert fresh.should_stop(40)


@pytest.mark.slow
def test_training_stops_early_and_evaluates_and_exports_the_best_checkpoint(tmp_path):
  from tfvae.training import run  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  # one_device: a second 2-replica MirroredStrategy in this process can reuse this one's
  # collective instance keys with other shapes (a later test then fails on a shape mismatch).
  config = config_lib.Config(hidden_sizes=(16,), latent_dim=2, epochs=40, eval_every=9,
                             early_stopping_patience=2, learning_rate=0.03,
                             eval_importance_samples=0, strategy="one_device")
  workdir = str(tmp_path / "run")
  results = run.train_and_evaluate(config, workdir)
  assert results["step"] < 40 * 9  # it stopped early
  best = early_stopping.read_best(workdir)
  assert results["test"]["checkpoint_step"] == best["step"] < results["step"]
  _, losses = summaries.read_scalars(os.path.join(workdir, "tensorboard", "eval"), ["loss"])["loss"]
  assert min(losses) == pytest.approx(best["loss"], rel=1e-6)
  assert results["validation"]["loss"] == pytest.approx(best["loss"], rel=1e-5)
  with open(os.path.join(workdir, "export", "assets.extra", "tfvae.json")) as f:
    assert json.load(f)["checkpoint_step"] == best["step"]
  again = run.train_and_evaluate(config, workdir)  # a finished run: nothing trains
  assert again["step"] == results["step"]
