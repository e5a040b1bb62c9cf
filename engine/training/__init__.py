"""Training soft prompts: configuration (``config``, torch-free: every default, the modes),
a new run's settings (``settings``), data, passes, evaluation, checkpoints, continual learning,
a task's run (``slot``), the job that steps one task's run (``job``) or several in mixed
batches (``joint``), universal prompts (``universal``), ranking starting points (``probe``)
and resuming any run (``resume``)."""
