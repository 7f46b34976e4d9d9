"""Built-in localization methods: one sub-package each, registered by name on import."""
