"""The playground: try tasks on one input, stream outputs, compare."""
