import os

import pytest
import torch

# The test models are tiny: one thread beats two (thread start-up dominates; e.g. a llama patching
# check takes 0.6 s on one thread and 5.7 s on two on the 2-core CI machine).
torch.set_num_threads(1)

ALL_FAMILIES = ["gpt2", "gpt_neox", "llama", "qwen2", "gemma2",
                "mixtral", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3", "gpt_oss"]
DENSE_FAMILIES = ALL_FAMILIES[:5]
MOE_FAMILIES = ALL_FAMILIES[5:]


@pytest.fixture(scope="session")
def device() -> str:
    """Tests run on CPU; INTERPLAB_TEST_DEVICE=cuda runs them on a GPU."""
    return os.environ.get("INTERPLAB_TEST_DEVICE", "cpu")
