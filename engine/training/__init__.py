"""Training soft prompts: configuration (``config``, torch-free), data, passes, evaluation,
checkpoints, continual learning, and the job that ties them together (``job``)."""
