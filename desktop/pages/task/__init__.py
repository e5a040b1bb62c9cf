"""The task page: details, datasets, versions and their lineage."""
