"""``python -m rlhf_gym.cli`` (what ``torchrun -m rlhf_gym.cli train ...`` runs on every rank)."""

import sys

from rlhf_gym.cli import main

sys.exit(main())
