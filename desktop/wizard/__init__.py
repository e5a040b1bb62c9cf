"""The New-task wizard: task, dataset with live preview, training settings."""
