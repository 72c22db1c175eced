"""Which Config options a run reads, and the Config without those it ignores.

Most options are read by every run. The others (FAMILY_OPTIONS) are read by some model families
only (`READ_BY`: `--beta` by the VAEs, `--sparsity_weight` by sparse_ae, ...), or only when
another option has a value (`READ_ONLY_WHEN`: `--num_pseudo_inputs` with `--prior=vampprior`).
An option a run ignores cannot change its result, so `without_ignored` puts it back to its
default: config.json records what defines the run, and `--model=ae --beta=4` trains and resumes
the run `--model=ae` does. Config's checks between options apply to the options a run reads.
Pure Python (no TensorFlow), like tfvae/config.py, which imports it.
"""

import dataclasses

_VAE = frozenset({
    "posterior_scale", "posterior", "num_flows", "prior", "num_pseudo_inputs",
    "num_mixture_components", "training_objective", "beta", "beta_schedule", "warmup_steps",
    "num_cycles", "free_bits", "num_samples"})

# Model family -> the options of FAMILY_GATED it reads (tfvae/models/: each family's Args).
READ_BY = {
    "vae": _VAE,
    "hvae": _VAE,
    "pc_vae": _VAE | {"prediction_weight", "labeled_batch_size"},
    "m2": frozenset({"num_samples", "classifier_weight", "labeled_batch_size"}),
    "ae": frozenset(),
    "sparse_ae": frozenset({"sparsity_weight"}),
    "denoising_ae": frozenset({"corruption", "corruption_level"}),
    "contractive_ae": frozenset({"contraction_weight"}),
}
# The options some families read and others do not.
FAMILY_GATED = frozenset().union(*READ_BY.values())

# Options read only when another option has a value: name -> (that option, predicate on it).
READ_ONLY_WHEN = {
    "num_flows": ("posterior", lambda v: v == "iaf"),
    "num_pseudo_inputs": ("prior", lambda v: v == "vampprior"),
    "num_mixture_components": ("prior", lambda v: v == "mixture"),
    "free_bits": ("training_objective", lambda v: v == "elbo"),
    "warmup_steps": ("beta_schedule", lambda v: v != "constant"),
    "num_cycles": ("beta_schedule", lambda v: v == "cyclical"),
    "conv_filters": ("architecture", lambda v: v == "conv"),
    "labeled_batch_size": ("num_labels", lambda v: v != "all"),
}

# The options that not every run reads (every run reads all the other Config fields).
FAMILY_OPTIONS = FAMILY_GATED | frozenset(READ_ONLY_WHEN)


def ignored_by(config, name):
  """What makes option `name` have no effect in `config`, as a flag ("--model=ae",
  "--prior=standard_normal"), or None when the run reads it. `config` is a Config (or any
  object with its fields as attributes)."""
  if name in FAMILY_GATED and name not in READ_BY[config.model]:
    return f"--model={config.model}"
  if name in READ_ONLY_WHEN:
    other, reads = READ_ONLY_WHEN[name]
    if not reads(getattr(config, other)):
      return f"--{other}={getattr(config, other)}"
  return None


def reads(config, name):
  """True when the run of `config` reads option `name`."""
  return ignored_by(config, name) is None


def without_ignored(config):
  """`config` with every option it ignores at its default, and what was reset.

  Args:
    config: tfvae.config.Config.

  Returns:
    (Config, messages): messages is a list of one-line warnings, one per option reset, naming
    the flag, its value and the option that makes it have no effect (empty when none was).
  """
  messages, fields = [], [f for f in dataclasses.fields(config) if f.name in FAMILY_OPTIONS]
  changed = True
  while changed:  # resetting one option (prior) can make another (num_pseudo_inputs) ignored
    changed = False
    for f in fields:
      value, why = getattr(config, f.name), ignored_by(config, f.name)
      if why and value != f.default:
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        messages.append(f"--{f.name}={shown} has no effect with {why}: ignored (the run is "
                        "recorded without it).")
        config, changed = dataclasses.replace(config, **{f.name: f.default}), True
  return config, messages
