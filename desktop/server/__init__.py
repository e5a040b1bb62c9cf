"""The local OpenAI-compatible server, run by the desktop's engine process."""
