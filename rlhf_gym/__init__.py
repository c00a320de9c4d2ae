"""rlhf_gym: RLHF for language models as Gymnasium environments.

Importing the package registers the environments (``rlhf_gym/Sentiment-v0`` and friends) with Gymnasium.
"""

from rlhf_gym.errors import ConfigError, DataError, ModelError, RewardError, RLHFGymError

__version__ = "0.1.0"

from rlhf_gym import envs as _envs  # noqa: E402,F401  (registers the environments)

__all__ = ["RLHFGymError", "ConfigError", "DataError", "ModelError", "RewardError", "__version__"]
