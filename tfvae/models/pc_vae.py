"""The prediction-constrained VAE (PC-VAE): a VAE with a classifier on its latent code.

loss = -ELBO(x) (every example, with the VAE's beta, schedules and free bits)
       + lambda * (-log p(y | z)), z ~ q(z|x) (labeled examples only; --prediction_weight).
Labels are not inputs to the encoder or the decoder, so the classifier constrains what the code
must keep. This is the paper's prediction-constrained objective in its Lagrangian (penalty) form;
the paper's additional consistency constraint on generated data is not implemented.

Reference:
  Hope, Abdrakhmanova, Chen, Hughes & Sudderth, "Learning consistent deep generative models from
  sparse data via prediction constraints", 2020.
"""

import dataclasses

import tensorflow as tf

from tfvae import config_fields
from tfvae import networks
from tfvae.config_fields import MODEL, field
from tfvae.models import base
from tfvae.models import interface
from tfvae.models import vae


@dataclasses.dataclass(frozen=True)
class PCVAEConfig(base.SemiSupervisedConfig, vae.VAEConfig):
  """The VAE's knobs, the weight of the classifier's loss and the labeled rows of a batch.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  family = "pc_vae"
  prediction_weight: float = field(
      10.0, MODEL,
      "pc_vae: lambda, the weight of the classifier's cross-entropy per labeled example (Hope"
      " et al. 2020).")

  def accepts(self):
    """As the VAE's, and the classifier p(y|z): z [B, latent_dim] -> logits [B, K] or a
    Categorical."""
    accepts = super().accepts()
    return dataclasses.replace(accepts, parts=accepts.parts + ("classifier",),
                               classifier_input="z")

  def network_knobs_read_elsewhere(self):
    """The classifier's hidden layer has --hidden_sizes' last width."""
    return super().network_knobs_read_elsewhere() | {"hidden_sizes"}

  def check(self):
    super().check()
    config_fields.check_at_least(self, 0, "prediction_weight")


def labeled_mask(labels):
  """float32 [B]: 1 where the label is known (label >= 0), else 0."""
  return tf.cast(labels >= 0, tf.float32)


def classification_terms(classifier_dist, labels):
  """Per-example cross-entropy and accuracy on the labeled rows.

  Args:
    classifier_dist: Categorical with batch shape [B].
    labels: int64 [B], -1 where unknown.

  Returns:
    (cross_entropy [B] nats, 0 where unknown; correct [B] float32 in {0, 1}, 0 where unknown).
  """
  mask = labeled_mask(labels)
  known = tf.cast(tf.maximum(labels, 0), tf.int32)
  cross_entropy = -classifier_dist.log_prob(known) * mask
  predicted = tf.cast(tf.argmax(classifier_dist.logits_parameter(), axis=-1), tf.int32)
  correct = tf.cast(tf.equal(predicted, known), tf.float32) * mask
  return cross_entropy, correct


class PCVAE(vae.VAE, interface.Classifier):
  """VAE + Categorical classifier p(y|z) on the code; see the module docstring.

  Args:
    config: as VAE, plus num_classes (resolved from the data), prediction_weight and
      hidden_sizes (the classifier is an MLP on z with the encoder's last hidden width).
    parts: optional tfvae.user_networks.Parts: the VAE's parts, and a classifier z [B,
      latent_dim] -> logits [B, K] or a Categorical, in place of that MLP.
  """

  config_class = PCVAEConfig

  def __init__(self, config, parts=None):
    super().__init__(config, parts=parts)
    if config.data.num_classes < 2:
      raise ValueError(f"--model=pc_vae needs labels (num_classes={config.data.num_classes}).")
    self.classifier = networks.Classifier((config.model.latent_dim,), config.data.num_classes,
                                          hidden_sizes=config.model.hidden_sizes[-1:],
                                          net=self.parts.classifier, name="classifier")
    self.classifier(tf.zeros([1, config.model.latent_dim]))

  @property
  def trainable_variables(self):
    return super().trainable_variables + list(self.classifier.trainable_variables)

  @property
  def variables(self):
    return super().variables + list(self.classifier.variables)

  def classify(self, x):
    """p(y | z = E_q[z|x]): Categorical, batch [B], over num_classes classes."""
    return self.classifier(self.encoder(x).mean())

  def losses_and_posterior(self, batch, seed, step, training=True):
    """Per-example terms: the VAE's, plus classification_loss (-log p(y|z), 0 where the label
    is unknown) and, when not training, accuracy (1 if argmax p(y|E_q z) is the label, 0 where
    wrong or unknown). In training z is the first posterior sample the distortion used (one
    encoder pass, one noise draw); otherwise the posterior mean. loss = VAE loss +
    prediction_weight * classification_loss, in nats. Returns (terms, q_z) as the VAE."""
    terms, q_z, z = self.elbo_and_samples(batch, seed, step, training)
    if training:
      cross_entropy, _ = classification_terms(self.classifier(z[0], training=True),
                                              batch["label"])
    else:
      cross_entropy, correct = classification_terms(self.classifier(q_z.mean()), batch["label"])
      terms["accuracy"] = correct
    terms["classification_loss"] = cross_entropy
    terms["loss"] = terms["loss"] + self.config.model.prediction_weight * cross_entropy
    return terms, q_z
