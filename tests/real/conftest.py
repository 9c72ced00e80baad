"""The real-model tier: SmolLM2-135M-Instruct and Gemma 3 270M, built once from PyPI packages
(``make real-models``; see ``interplab.zoo.real``) and loaded once per test session."""

import pytest

import interplab as il


@pytest.fixture(scope="session")
def smollm2():
    return il.zoo.load("smollm2")


@pytest.fixture(scope="session")
def gemma3():
    return il.zoo.load("gemma3")


@pytest.fixture(scope="session", params=["smollm2", "gemma3"])
def real_model(request):
    return request.getfixturevalue(request.param)
