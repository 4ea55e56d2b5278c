"""Settings shared by the whole suite."""

from hypothesis import settings

# Hypothesis fails an example that takes over 200 ms. On a loaded 2-core CI machine a codec example can,
# and the suite then fails for timing rather than for a wrong result; speed is the benchmarks' business.
settings.register_profile("p2pnode", deadline=None)
settings.load_profile("p2pnode")
