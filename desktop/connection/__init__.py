"""The desktop's side of the engine process."""
