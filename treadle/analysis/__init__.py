"""What treadle does with runs: datasets, scorers, evaluation, reports, rewards, attribution,
calibrated ranking, generation and the capability library; one concept a module.

The analysis layer sits above the compiler, the operator library and the runtime, and below the
CLI and the public API: it imports them, never the reverse.
"""
