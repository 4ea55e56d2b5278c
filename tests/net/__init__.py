"""One test network of real hosts, on two runtimes: ``MemoryNet`` (our own event heap) and ``SimNet`` (the
simulator's ``SimNetwork``). Protocol tests take the ``make_net`` fixture (``tests/conftest.py``) and so run
on both; see ``tests.net.base`` for what a test can do with either."""

from tests.net.base import DIAL_TIMEOUT, DropRule, Sent, TestNet
from tests.net.memory import MemoryNet
from tests.net.sim import SimNet

NETS: tuple[type[TestNet], ...] = (MemoryNet, SimNet)

__all__ = ["DIAL_TIMEOUT", "NETS", "DropRule", "MemoryNet", "Sent", "SimNet", "TestNet"]
