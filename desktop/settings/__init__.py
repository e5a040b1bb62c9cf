"""Settings: model, device, library location."""
