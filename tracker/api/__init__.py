"""The authenticated ``/v1`` API. Every route here sits behind tracker.api.auth."""
