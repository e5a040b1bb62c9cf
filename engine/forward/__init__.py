"""The one forward path: prompt keys/values, mixed-task rows after them, loss, label scores and
decoding. Training, evaluation, apply and serving all run the model through this package."""
