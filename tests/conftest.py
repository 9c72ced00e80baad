import os

import pytest
import torch

from interplab.anatomy import FAMILIES

# The test models are tiny: one thread beats two (thread start-up dominates; e.g. a llama patching
# check takes 0.6 s on one thread and 5.7 s on two on the 2-core CI machine).
torch.set_num_threads(1)

# Every registered family with a tiny config, in registration order: a new family's one
# register(Family(...)) puts it through every family test.
ALL_FAMILIES = [name for name, family in FAMILIES.items() if family.tiny is not None]
DENSE_FAMILIES = [name for name in ALL_FAMILIES if not FAMILIES[name].is_moe]
MOE_FAMILIES = [name for name in ALL_FAMILIES if FAMILIES[name].is_moe]


@pytest.fixture(scope="session")
def device() -> str:
    """Tests run on CPU; INTERPLAB_TEST_DEVICE=cuda runs them on a GPU."""
    return os.environ.get("INTERPLAB_TEST_DEVICE", "cpu")
