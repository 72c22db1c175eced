"""Data: where a dataset comes from (sources), its in-memory splits (dataset) and its batches (pipeline)."""

from tfvae.data.dataset import balanced_subset
from tfvae.data.dataset import Data
from tfvae.data.dataset import DataError
from tfvae.data.dataset import fixed_train
from tfvae.data.dataset import labeled_indices
from tfvae.data.dataset import load
from tfvae.data.dataset import Split
from tfvae.data.pipeline import eval_dataset
from tfvae.data.pipeline import steps_per_epoch
from tfvae.data.pipeline import train_dataset
from tfvae.data.pipeline import TrainBatches
