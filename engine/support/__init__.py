"""Small torch-free helpers: paths, files, JSON, threads, processes, faults."""
