"""The search's settings: the TuneSettings dataclass (tune-only flags), its absl flags, and the
objectives a search can rank by. tfvae.tune runs the search; training flags stay in tfvae.config.
"""

import dataclasses

from absl import flags

from tfvae import config_fields
from tfvae import config_flags
from tfvae import errors

TUNERS = ("random", "hyperband", "bayesian")
# --objective -> keras-tuner direction. nll and elbo are metrics of the validation evaluation
# (evaluation.Evaluator), at beta = 1 whatever beta the trial trained with; m1_accuracy is M1's
# validation accuracy (tfvae.evaluation.ssl.m1_accuracy: logistic regression on the posterior means of the
# --num_labels labeled train examples chosen by --label_seed).
OBJECTIVES = {"nll": "min", "elbo": "max", "m1_accuracy": "max"}
# The role of the search's own settings: a continued search must keep them (all but max_trials,
# whose role is SCHEDULE: raising it extends the search).
SEARCH = "search"


@dataclasses.dataclass(frozen=True)
class TuneSettings:
  """What to search and how. Field names are the flag names of `python -m tfvae.tune`.

  Raises:
    tfvae.config.ConfigError: naming the flag, for a value that cannot run.
  """
  tuner: str = config_fields.field(
      "random", SEARCH,
      "Search algorithm: random, hyperband or bayesian.")
  max_trials: int = config_fields.field(
      10, config_fields.SCHEDULE,
      "Number of trials (for hyperband, a cap on top of its brackets). Raise it to extend a "
      "finished search.")
  objective: str = config_fields.field(
      "nll", SEARCH,
      "Trial ranking: nll (validation -log p(x) by the importance-weighted bound at K = "
      "--eval_importance_samples, minimized), elbo (validation ELBO at beta = 1, maximized) "
      "or m1_accuracy (validation accuracy of logistic regression on the posterior means of "
      "--num_labels labeled train examples, Kingma et al. 2014 M1; maximized).")
  beta_min: float = config_fields.field(
      0.1, SEARCH,
      "Smallest beta; beta is sampled log-uniformly in [--beta_min, --beta_max].")
  beta_max: float = config_fields.field(
      10.0, SEARCH,
      "Largest beta.")
  latent_dims: tuple[int, ...] = config_fields.field(
      (2, 8, 32), SEARCH,
      "Comma-separated choices of --latent_dim.")
  learning_rate_min: float = config_fields.field(
      0.0, SEARCH,
      "With --learning_rate_max, search the learning rate log-uniformly in this range; 0 "
      "(both): use --learning_rate for all trials.")
  learning_rate_max: float = config_fields.field(
      0.0, SEARCH,
      "Largest learning rate searched (see --learning_rate_min).")
  tune_seed: int = config_fields.field(
      0, SEARCH,
      "Seed of the search algorithm (which hyperparameters are tried). Training uses --seed, "
      "the same for every trial.")
  hyperband_max_epochs: int = config_fields.field(
      9, SEARCH,
      "Hyperband: epochs of the longest trials (replaces --epochs).")
  hyperband_factor: int = config_fields.field(
      3, SEARCH,
      "Hyperband: reduction factor between successive-halving rounds.")

  def __post_init__(self):
    error = errors.ConfigError
    if self.tuner not in TUNERS:
      raise error(f"--tuner={self.tuner!r} is not one of {', '.join(TUNERS)}.")
    if self.objective not in OBJECTIVES:
      raise error(f"--objective={self.objective!r} is not one of {', '.join(OBJECTIVES)}.")
    for name in ("max_trials", "hyperband_max_epochs"):
      if getattr(self, name) < 1:
        raise error(f"--{name}={getattr(self, name)} must be a positive integer.")
    if self.hyperband_factor < 2:
      raise error(f"--hyperband_factor={self.hyperband_factor} must be >= 2.")
    if self.tune_seed < 0:
      raise error(f"--tune_seed={self.tune_seed} must be >= 0.")
    if not self.beta_min > 0:
      raise error(f"--beta_min={self.beta_min} must be > 0 (beta is searched on a log scale).")
    if self.beta_min > self.beta_max:
      raise error(f"--beta_min={self.beta_min} is larger than --beta_max={self.beta_max}.")
    if not self.latent_dims:
      raise error("--latent_dims is empty: give at least one latent size.")
    if any(d < 1 for d in self.latent_dims) or len(set(self.latent_dims)) < len(
        self.latent_dims):
      raise error(f"--latent_dims={','.join(map(str, self.latent_dims))} must be distinct "
                  "positive integers.")
    low, high = self.learning_rate_min, self.learning_rate_max
    if (low, high) != (0, 0):
      if not 0 < low <= high:
        raise error(f"--learning_rate_min={low} and --learning_rate_max={high}: give both, "
                    "with 0 < min <= max (or both 0 to keep --learning_rate fixed).")

  @property
  def searches_learning_rate(self):
    return self.learning_rate_max > 0

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values):
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def define_flags():
  """Defines --workdir, the tune flags (TuneSettings) and the Config flags. Call once."""
  flags.DEFINE_string("workdir", "/tmp/tfvae/tune", "Folder of the search (one subfolder per "
                      "trial).")
  config_flags.define_flags(cls=TuneSettings)
  config_flags.define_flags()


def settings_from_flags(flag_values):
  """TuneSettings from parsed flags. Raises ConfigError naming the flag."""
  return config_flags.from_flags(flag_values, TuneSettings)
