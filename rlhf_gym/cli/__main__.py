"""``python -m rlhf_gym.cli`` (what ``torchrun -m rlhf_gym.cli train ...`` runs on every rank)."""

import sys

from rlhf_gym.cli import main

if __name__ == "__main__":  # not on import (pytest --doctest-modules imports every module)
    sys.exit(main())
