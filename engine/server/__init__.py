"""The engine process: transport, scheduler, op handlers, and its client."""
