import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ALL_FAMILIES = ["gpt2", "gpt_neox", "llama", "qwen2", "gemma2",
                "mixtral", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v3", "gpt_oss"]
DENSE_FAMILIES = ALL_FAMILIES[:5]
MOE_FAMILIES = ALL_FAMILIES[5:]


@pytest.fixture(scope="session")
def device() -> str:
    """Tests run on CPU; INTERPLAB_TEST_DEVICE=cuda runs them on a GPU."""
    return os.environ.get("INTERPLAB_TEST_DEVICE", "cpu")
