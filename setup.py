"""tfvae: variational autoencoders with TensorFlow, Keras 3 and TensorFlow Probability."""

from setuptools import find_packages, setup

setup(
    name="tfvae",
    version="0.1.0",
    description="Variational autoencoders with TensorFlow, Keras 3 and TensorFlow Probability.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfvae", "tfvae.*"]),
    python_requires=">=3.11",
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.15,<4",
        "tensorflow-probability==0.25.*",
        "tf-keras==2.21.*",  # TFP 0.25 imports it at import time; tfvae's models are Keras 3
        "tensorflow-datasets==4.9.*",
        "importlib_resources",  # imported by TFDS, not declared by it
        "tensorboard==2.21.*",  # TF 2.21 does not pull it in; tf.summary needs it
        "keras-tuner==1.4.*",  # python -m tfvae.tune
        "absl-py",
        "numpy",
        "scikit-learn",
        "scipy",
        "matplotlib",
        "tqdm",  # progress bars (TFDS depends on it too)
    ],
    license="Apache-2.0",
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3", "mypy>=1.10"]},  # mypy: .ci/run
)
