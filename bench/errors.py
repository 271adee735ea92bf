"""The benchmark's own errors (the harness is not part of p2psync's hierarchy)."""


class BenchError(Exception):
    """The harness itself cannot run (missing tool, bad arguments)."""


class WorkloadFailed(BenchError):
    """A system did not complete a workload; the message says what was seen."""
