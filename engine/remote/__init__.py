"""The remote engine: the relay on the user's machine and the agent on the GPU host, which
keep the host's copy of the library in step by content hash (``engine.library.replica``)."""
