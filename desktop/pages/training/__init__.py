"""The training monitor: the job queue, live curves, cancel and resume."""
