"""Settings and fixtures shared by the whole suite."""

import pytest
from hypothesis import settings

from tests.net import NETS, TestNet

# Hypothesis fails an example that takes over 200 ms. On a loaded 2-core CI machine a codec example can,
# and the suite then fails for timing rather than for a wrong result; speed is the benchmarks' business.
settings.register_profile("p2pnode", deadline=None)
settings.load_profile("p2pnode")


@pytest.fixture(params=NETS, ids=[net.kind for net in NETS])
def make_net(request: pytest.FixtureRequest) -> type[TestNet]:
    """The test network class, once per runtime: ``net = make_net(seed=1)``."""
    return request.param
