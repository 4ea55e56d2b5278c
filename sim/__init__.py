"""The SimPy simulator: sans-IO nodes over modelled time and links (``sim.simulation``, ``sim.runtime``)."""

from p2pnode import native

native.install()  # before sim.runtime is imported, so that its compiled build can be used (p2pnode/native.py)
