"""Model families, one file each: its config dataclass (`<Family>Config`, the knobs it reads,
with their checks; its model class's `config_class`) and its model, on the interface and the
capability types of tfvae/models/interface.py (Model, LatentVariableModel, Classifier,
LabelConditional, Conditional), which evaluation, export, summaries and figures dispatch on. A new family is
one file and one line in MODELS, whose key is its --model name (its `family_class(config)`
may pick another class by the data: cvae's CovariateCVAE for real conditions).

Models with a classifier (pc_vae, m2) also give, when not training, a per-example "accuracy"
term (1 for a correct prediction, 0 for a wrong one or an unknown label; m2 also
"generative_accuracy", of argmax_y ELBO(x, y)); the Evaluator divides every term named
*accuracy by the number of labeled examples."""

from tfvae.models import ae
from tfvae.models import cvae
from tfvae.models import hvae
from tfvae.models import m2
from tfvae.models import pc_vae
from tfvae.models import vae

MODELS = {
    "vae": vae.VAE,
    "hvae": hvae.HVAE,
    "ae": ae.AE,
    "sparse_ae": ae.SparseAE,
    "denoising_ae": ae.DenoisingAE,
    "contractive_ae": ae.ContractiveAE,
    "pc_vae": pc_vae.PCVAE,
    "m2": m2.M2,
    "cvae": cvae.CVAE,
}


def build(config, seed=None, parts=None):
  """Builds the model of `config.family` (config.data.image_shape must be resolved), its layers
  under the Keras dtype policy `config.training.dtype_policy`, its initial weights drawn from `seed` (int; None:
  random). Keras's global policy and seed generator are restored afterwards
  (tfvae/keras_scope.py): the caller's process is left as it was.

  parts: optional tfvae.user_networks.Parts, the user's networks (those the family's
  config.model.accepts() names); copies of them are built into the model (the objects given
  are not changed). Check them first with network_checks.check. A config that names factories
  (--encoder/--decoder) needs their networks among `parts` (network_factories.from_config).

  Raises:
    user_networks.NetworkError: a factory named by the config whose network is not given.
  """
  from tfvae import keras_scope  # pylint: disable=import-outside-toplevel
  from tfvae import network_factories  # pylint: disable=import-outside-toplevel
  from tfvae import user_networks  # pylint: disable=import-outside-toplevel
  network_factories.require_named(config, parts)
  with keras_scope.building(config.training.dtype_policy, seed):
    family = MODELS[config.family].family_class(config)
    if not parts:
      return family(config)
    return family(config, parts=user_networks.copies(parts))
