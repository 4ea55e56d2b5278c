"""Turn a results directory (manifest.json + events.csv) into criteria, statistics, plots and reports.

See docs/results.md for the directory layout and the events.csv contract.
"""

from analysis.load import AnalysisError, Run, load_run

__all__ = ["AnalysisError", "Run", "load_run"]
