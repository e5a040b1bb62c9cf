"""The task library: the searchable list of tasks on the left."""
