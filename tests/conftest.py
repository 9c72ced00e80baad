import os

import pytest
import torch

import interplab as il

# The test models are tiny: one thread beats two (thread start-up dominates; e.g. a llama patching
# check takes 0.6 s on one thread and 5.7 s on two on the 2-core CI machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def device() -> str:
    """Tests run on CPU; INTERPLAB_TEST_DEVICE=cuda runs them on a GPU."""
    return os.environ.get("INTERPLAB_TEST_DEVICE", "cpu")


# --- the real-model tier (tests/real): SmolLM2-135M-Instruct and Gemma 3 270M, built once from PyPI
# packages (`make real-models`; see interplab.zoo.real) and loaded once per test session.
@pytest.fixture(scope="session")
def smollm2():
    return il.zoo.load("smollm2")


@pytest.fixture(scope="session")
def gemma3():
    return il.zoo.load("gemma3")


@pytest.fixture(scope="session", params=["smollm2", "gemma3"])
def real_model(request):
    return request.getfixturevalue(request.param)
