"""The experiment layer shared by both runtimes (docs/scenarios.md, docs/results.md).

What a run is and how it is measured, independent of where it runs: the scenario schema and loader
(`experiment.scenario`), the latency model's inputs (`latency`), churn (`churn`), the ground truth the nodes
cannot see (`oracle`), the measurement rules (`measure`), event kinds and columns (`events`), the criteria and
their default targets (`criteria`), and the run directory with its manifest (`rundir`). `sim/` (SimPy) and
`emulator/` (real processes in Mininet) are two drivers of it; `analysis/` reads the files a run writes.

Nothing is imported here: `topologies/topos.py` runs under Mininet's own interpreter, which has neither
pydantic nor numpy, and reads `experiment.latency` alone.
"""
