"""M2, the generative semi-supervised model of Kingma, Rezende, Mohamed & Welling (2014).

Generative model: p(y) = uniform OneHotCategorical over K classes, p(z) = N(0, I),
p(x|y, z) the decoder's likelihood at [z, onehot(y)]. Inference: classifier q(y|x)
(Categorical) and encoder q(z|x, y) (MultivariateNormalDiag).

  ELBO(x, y) = E_q(z|x,y) log p(x|y, z) + log p(y) - KL(q(z|x, y) || p(z))       (eq. 6)
  labeled:    L(x, y) = -ELBO(x, y)
  unlabeled:  U(x) = sum_y q(y|x) L(x, y) - H(q(y|x))                             (eq. 7)
              (exact enumeration over the K classes; -U(x) is a lower bound on log p(x))
  loss per example = L(x, y) + alpha * (-log q(y|x)) where the label is known, U(x) where not
  (eq. 9; alpha = --classifier_weight, 0 meaning the paper's 0.1 * N with N the number of
  labeled train examples).

Every row's ELBO is computed for all K classes; the noise of class k is drawn from the step
seed folded with k (sliced per replica as `noise.replica_normal_noise`), so L(x, k) of a
labeled row equals the k-th term of the enumeration of the same row unlabeled.

Reference:
  Kingma, Rezende, Mohamed & Welling, "Semi-supervised learning with deep generative models",
  NeurIPS 2014.
"""

import dataclasses

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import config_fields
from tfvae import decoders
from tfvae import networks
from tfvae import noise
from tfvae import objectives
from tfvae import user_networks
from tfvae.models import base
from tfvae.models import interface
from tfvae.models import pc_vae
from tfvae.config_fields import MODEL, field

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class M2Config(base.SemiSupervisedConfig, base.ModelConfig):
  """M2's knobs: Monte Carlo samples, the classifier's weight alpha and the labeled rows of a
  batch.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "m2"
  num_samples: int = field(
      1, MODEL,
      "Monte Carlo samples L of z per example and class of the ELBO's distortion term.")
  classifier_weight: float = field(
      0.0, MODEL,
      "m2: alpha, the weight of -log q(y|x) per labeled example; 0 means the paper's alpha = "
      "0.1 * N (N labeled train examples).")

  def accepts(self):
    """encoder (x -> features; tfvae adds q(z|x, y)), decoder over [z, y_onehot], likelihood
    and classifier q(y|x); no prior (p(z) is N(0, I))."""
    return user_networks.Accepts(
        parts=("encoder", "decoder", "likelihood", "classifier"),
        decoder_input=("z", "y_onehot"), classifier_input="x",
        features_only="--model=m2 joins the features with y for q(z|x, y)")

  def network_knobs_read_elsewhere(self):
    """The classifier q(y|x) reads all three, q(z|x, y)'s joint layer --hidden_sizes."""
    return frozenset({"architecture", "hidden_sizes", "conv_filters"})

  def check(self):
    super().check()
    config_fields.check_at_least(self, 1, "num_samples")
    config_fields.check_at_least(self, 0, "classifier_weight")


class M2(interface.LatentVariableModel, interface.Classifier, interface.LabelConditional):
  """Classifier q(y|x), encoder q(z|x, y), decoder p(x|y, z); see the module docstring.

  Args:
    config: tfvae.config.Config; uses image_shape, latent_dim, num_classes, architecture,
      hidden_sizes, conv_filters, likelihood, num_samples, classifier_weight and
      labeled_examples (resolved from the data; else num_labels) for the default alpha.
    parts: optional tfvae.user_networks.Parts: an encoder body x -> features [B, F] (tfvae
      joins them with y and adds q(z|x, y)'s head), a decoder over [z, y_onehot]
      [B, latent_dim + K] with an optional likelihood layer, a classifier x -> logits [B, K]
      or a Categorical q(y|x).

  `losses_and_posterior` gives no posterior (q(z|x, y) needs y), so the Evaluator computes no
  active units, per-dimension KL or IWAE bound; `elbo` in the losses is the bound -U(x) on
  log p(x).
  """

  config_class = M2Config

  def __init__(self, config, parts=None):
    super().__init__(name="m2")
    parts = parts or user_networks.Parts()
    if len(config.data.image_shape) != 3:
      raise ValueError(f"config.data.image_shape must be [H, W, C], got {config.data.image_shape}.")
    if config.data.num_classes < 2:
      raise ValueError(f"--model=m2 needs labels (num_classes={config.data.num_classes}).")
    self.config = config
    self.num_classes = k = config.data.num_classes
    sizes = dict(architecture=config.model.architecture, hidden_sizes=config.model.hidden_sizes,
                 conv_filters=config.model.conv_filters)
    self.classifier = networks.Classifier(config.data.image_shape, k, **sizes,
                                          net=parts.classifier, name="classifier")
    self.encoder = networks.ConditionalEncoder(config.data.image_shape, config.model.latent_dim, k,
                                               **sizes, body=parts.encoder, name="encoder")
    self.decoder = decoders.Decoder(config.data.image_shape, config.model.latent_dim + k, **sizes,
                                    likelihood=config.model.likelihood, net=parts.decoder,
                                    likelihood_layer=parts.likelihood, name="decoder")
    x = tf.zeros([1, *config.data.image_shape])
    self.classifier(x)
    self.encoder(x, tf.zeros([1, k]))
    self.decoder(tf.zeros([1, config.model.latent_dim + k]))
    labeled = config.data.labeled_examples or config.data.labels_known or 0
    self.alpha = config.model.classifier_weight or 0.1 * labeled  # the paper's 0.1 * N

  @property
  def trainable_variables(self):
    """Classifier, encoder, decoder variables, in a fixed order."""
    return (list(self.classifier.trainable_variables) + list(self.encoder.trainable_variables)
            + list(self.decoder.trainable_variables))

  @property
  def variables(self):
    return list(self.classifier.variables) + list(self.encoder.variables) + list(
        self.decoder.variables)

  @property
  def calibrated(self):
    return self.decoder.calibrated

  def prior(self):
    """p(z) = N(0, I), event [latent_dim]."""
    return networks.prior(self.config.model.latent_dim)

  def label_prior(self):
    """p(y): uniform OneHotCategorical over the K classes."""
    return tfd.OneHotCategorical(logits=tf.zeros([self.num_classes]), dtype=tf.float32)

  def classify(self, x, training=False):
    """q(y|x): Categorical, batch [B]."""
    return self.classifier(x, training=training)

  def decode(self, z, y_onehot, training=False):
    """p(x|y, z): z [..., D], y_onehot [..., K] -> batch [...], event [H, W, C]."""
    return self.decoder(tf.concat([z, y_onehot], -1), training=training)

  def encode(self, x, y_onehot):
    """q(z|x, y): x [B, H, W, C], y_onehot [B, K] -> batch [B], event [latent_dim]."""
    return self.encoder(x, y_onehot)

  def elbo(self, x, seed):
    """{"elbo" (the bound -U(x) on log p(x)), "rate", "distortion"} [B], nats."""
    batch = {"image": x, "label": -tf.ones([tf.shape(x)[0]], tf.int64)}
    terms = self.losses(batch, seed, tf.constant(0, tf.int64), training=False)
    return {n: terms[n] for n in ("elbo", "rate", "distortion")}

  def elbo_per_class(self, x, seed, training=False, index=None):
    """ELBO(x, y) and its parts for every class y, per example (eq. 6).

    Args:
      x: float32 [B, H, W, C].
      seed: int32 Tensor [2]; class k's noise comes from the seed folded with k.
      training: bool, passed to the networks.
      index: optional int [B], the examples' indices in their split: per-example noise
        (noise.example_normal_noise), independent of the batch.

    Returns:
      dict of float32 [K, B], nats: elbo (includes log p(y)), distortion (-E log p(x|y,z)),
      rate (KL(q(z|x,y) || p(z))).
    """
    k, d = self.num_classes, self.config.model.latent_dim
    batch = tf.shape(x)[0]
    onehot = tf.broadcast_to(tf.eye(k)[:, None, :], [k, batch, k])  # [K, B, K]
    features = self.encoder.features(x, training=training)  # [B, F]
    q_z = self.encoder.posterior(tf.broadcast_to(features[None], [k, batch, features.shape[-1]]),
                                 onehot, training=training)  # batch [K, B]
    seeds = [tf.random.experimental.stateless_fold_in(seed, c) for c in range(k)]
    if index is None:
      eps = tf.stack([noise.replica_normal_noise(self.config.model.num_samples, batch, d, s)
                      for s in seeds], axis=1)  # [L, K, B, D]
    else:
      eps = tf.transpose(noise.example_normal_noise(
          seeds, index, [self.config.model.num_samples, d]), [2, 0, 1, 3])  # [L, K, B, D]
    z = q_z.bijector.forward(eps)
    samples = self.config.model.num_samples
    p_x = self.decode(z, tf.broadcast_to(onehot[None], [samples, k, batch, k]),
                      training=training)
    fitted = base.log_likelihood(self.decoder, p_x, x, training)  # calibrated: over L, K
    distortion = -tf.reduce_mean(fitted["log_likelihood"], axis=0)  # [K, B]
    rate = objectives.rate(q_z, self.prior())  # [K, B]
    log_p_y = self.label_prior().log_prob(tf.eye(k))[:, None]  # [K, 1]
    out = {"elbo": log_p_y - distortion - rate, "distortion": distortion, "rate": rate}
    if "mean_squared_error" in fitted:
      out["mean_squared_error"] = fitted["mean_squared_error"]  # [B]
    return out

  def losses(self, batch, seed, step, training=True):
    """Per-example loss terms of one batch (labels -1 where unknown).

    Returns:
      dict of float32 Tensors [B], nats: loss (L + alpha * CE where labeled, U where not);
      labeled_loss (L(x, y) = -ELBO(x, y), 0 where unlabeled); unlabeled_loss (U(x), every row);
      classification_loss (-log q(y|x), 0 where unlabeled); elbo = -U(x), the bound on
      log p(x), = -(distortion + rate) with distortion = E_q(y|x)[-E log p(x|y,z)] and
      rate = E_q(y|x)[KL(q(z|x,y) || p(z))] + KL(q(y|x) || p(y)); when not training,
      accuracy (1 for a correct argmax q(y|x), 0 for a wrong one or an unknown label) and
      generative_accuracy (the same for argmax_y ELBO(x, y), the bound with num_samples draws
      of this step's noise, used as a classifier under the uniform p(y): not argmax p(y|x),
      but U(x) is minimized over q(y|x) by q(y|x) proportional to exp ELBO(x, y), so this is
      what the unlabeled rows teach).
    """
    del step
    x, labels = batch["image"], batch["label"]
    per_class = self.elbo_per_class(x, seed, training, batch.get("index"))
    q_y = self.classify(x, training=training)
    probs = tf.transpose(q_y.probs_parameter())  # [K, B]
    entropy = q_y.entropy()
    unlabeled_loss = -tf.reduce_sum(probs * per_class["elbo"], 0) - entropy
    mask = pc_vae.labeled_mask(labels)
    known = tf.cast(tf.maximum(labels, 0), tf.int32)
    labeled_elbo = tf.gather(tf.transpose(per_class["elbo"]), known, batch_dims=1)
    labeled_loss = -labeled_elbo * mask
    cross_entropy, correct = pc_vae.classification_terms(q_y, labels)
    label_kl = tf.reduce_sum(probs * tf.math.log(tf.maximum(probs, 1e-30)), 0) + tf.math.log(
        float(self.num_classes))
    terms = {
        "loss": mask * (labeled_loss + self.alpha * cross_entropy) + (1 - mask) * unlabeled_loss,
        "labeled_loss": labeled_loss, "unlabeled_loss": unlabeled_loss,
        "classification_loss": cross_entropy, "elbo": -unlabeled_loss,
        "distortion": tf.reduce_sum(probs * per_class["distortion"], 0),
        "rate": tf.reduce_sum(probs * per_class["rate"], 0) + label_kl}
    if "mean_squared_error" in per_class:
      terms["mean_squared_error"] = per_class["mean_squared_error"]
    if not training:
      terms["accuracy"] = correct
      generative = tf.argmax(per_class["elbo"], axis=0, output_type=tf.int32)
      terms["generative_accuracy"] = tf.cast(tf.equal(generative, known), tf.float32) * mask
    return terms

  def losses_and_posterior(self, batch, seed, step, training=True):
    """(`losses`, None): M2's posterior q(z|x, y) needs a class, so there is no one q(z|x)."""
    return self.losses(batch, seed, step, training), None

  def sample(self, n, seed, label=None):
    """As the other models' `sample`, and the class: {"mean", "sample"} [n, H, W, C], "label"
    int64 [n]; label None or < 0 draws y ~ p(y), else every image is of that class (int
    scalar)."""
    model_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z_seed, y_seed = tf.unstack(tf.random.experimental.stateless_split(model_seed, 2))
    y = tf.argmax(self.label_prior().sample(n, seed=y_seed), -1)  # y ~ p(y)
    if label is not None:
      y = tf.where(tf.cast(label, tf.int64) < 0, y, tf.cast(label, tf.int64))
    p_x = self.decode(self.prior().sample(n, seed=z_seed), tf.one_hot(y, self.num_classes))
    return {"mean": p_x.mean(), "sample": tf.cast(p_x.sample(seed=x_seed), tf.float32),
            "label": y}

  def reconstruct(self, x):
    """Decoder mean at y = argmax q(y|x) and z = E q(z|x, y): float32 [B, H, W, C]."""
    y = tf.one_hot(tf.argmax(self.classify(x).logits_parameter(), -1), self.num_classes)
    return self.decode(self.encoder(x, y).mean(), y).mean()

  def sample_images(self, n, seed, label=None):
    """Decoder means at z ~ p(z) and y ~ p(y), or y = `label` (class-conditional generation).

    Args:
      n: int32 scalar, number of images.
      seed: int32 Tensor [2], stateless.
      label: None, or an int scalar/[n] Tensor of classes.

    Returns:
      (mean float32 [n, H, W, C], p(x|y, z) with batch [n]).
    """
    z_seed, y_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z = self.prior().sample(n, seed=z_seed)
    if label is None:
      y = self.label_prior().sample(n, seed=y_seed)
    else:
      y = tf.one_hot(tf.broadcast_to(tf.cast(label, tf.int32), [n]), self.num_classes)
    p_x = self.decode(z, y)
    return p_x.mean(), p_x

  def style_transfer(self, x):
    """z = E q(z|x, argmax q(y|x)) of each image decoded with every class: [B, K, H, W, C]."""
    y = tf.one_hot(tf.argmax(self.classify(x).logits_parameter(), -1), self.num_classes)
    z = self.encoder(x, y).mean()  # [B, D]
    k = self.num_classes
    z_all = tf.broadcast_to(z[:, None], [tf.shape(z)[0], k, z.shape[-1]])
    y_all = tf.broadcast_to(tf.eye(k)[None], [tf.shape(z)[0], k, k])
    return self.decode(z_all, y_all).mean()
