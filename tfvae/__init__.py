"""tfvae: variational autoencoders with TensorFlow, Keras 3 and TensorFlow Probability.

The Python API (tfvae/api.py; every command line tool is built on it):

    import tfvae
    data = tfvae.data.from_directory("my_images/", image_size=(28, 28))   # or from_arrays(x, y)
    model = tfvae.fit(tfvae.Config(latent_dim=16, epochs=20), "runs/mine", data=data)
    model.results["test"]                     # its final metrics (what fit returned before)
    model = tfvae.load("runs/mine")           # the same: config.json + best (else latest) ckpt
    q_z = model.encode(images)                # tfd.MultivariateNormalDiag, batch [N]
    model.evaluate(data, split="test", num_importance_samples=5000)

Names: Config (its shared sections DataConfig, TrainingConfig, ExecutionConfig; each family's
own config is MODELS[name].config_class: docs/families.md), fit, load, draw (a run's figures,
tfvae/visualize.py; `draw(workdir, data=x)` for a run trained from arrays), TrainedModel, MODELS
(the model registry), conditional_sample_accuracy (does a label-conditional model generate the
class it is given: tfvae/evaluation/conditional.py) and the `data` subpackage (from_arrays, from_directory, from_file, load). They are
imported on first use, so `import tfvae` alone does not start TensorFlow.

The errors a caller catches (each call's `Raises:` names them):
  ConfigError      a config, flag value or workdir that cannot run (a ValueError); among them
    WorkdirInUse        another process holds the run folder (its pid and command named),
    CheckpointMismatch  no checkpoint of the run restores into this model,
    NetworkError        a user network that does not fit, store or load (tfvae.user_networks),
    ForeignLink         a link in a run folder that tfvae did not make;
  DataError        data that cannot be read or differ from the run's (a ValueError);
  TrainingError    training cannot go on (non-finite updates); the last checkpoint is intact;
  Interrupted      SIGTERM/SIGINT stopped training after a checkpoint: the same call resumes.
"""

import importlib
from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
  from tfvae import data
  from tfvae.api import fit, load, TrainedModel
  from tfvae.config import Config
  from tfvae.sections import DataConfig, ExecutionConfig, TrainingConfig
  from tfvae.errors import ConfigError, DataError, ForeignLink, Interrupted, TrainingError
  from tfvae.lock import WorkdirInUse
  from tfvae.evaluation.conditional import conditional_sample_accuracy
  from tfvae.models import MODELS
  from tfvae.training.checkpoints import CheckpointMismatch
  from tfvae.user_networks import NetworkError

__version__ = "0.1.0"

_EXPORTS = {
    "Config": ("tfvae.config", "Config"),
    "DataConfig": ("tfvae.sections", "DataConfig"),
    "TrainingConfig": ("tfvae.sections", "TrainingConfig"),
    "ExecutionConfig": ("tfvae.sections", "ExecutionConfig"),
    "ConfigError": ("tfvae.errors", "ConfigError"),
    "DataError": ("tfvae.errors", "DataError"),
    "ForeignLink": ("tfvae.errors", "ForeignLink"),
    "TrainingError": ("tfvae.errors", "TrainingError"),
    "Interrupted": ("tfvae.errors", "Interrupted"),
    "WorkdirInUse": ("tfvae.lock", "WorkdirInUse"),
    "CheckpointMismatch": ("tfvae.training.checkpoints", "CheckpointMismatch"),
    "NetworkError": ("tfvae.user_networks", "NetworkError"),
    "fit": ("tfvae.api", "fit"),
    "load": ("tfvae.api", "load"),
    "draw": ("tfvae.visualize", "draw"),
    "TrainedModel": ("tfvae.api", "TrainedModel"),
    "MODELS": ("tfvae.models", "MODELS"),
    "conditional_sample_accuracy": ("tfvae.evaluation.conditional",
                                    "conditional_sample_accuracy"),
}

__all__ = sorted([*_EXPORTS, "data"])


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)
  if name == "data":
    return importlib.import_module("tfvae.data")
  raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


def __dir__() -> list[str]:
  return __all__
