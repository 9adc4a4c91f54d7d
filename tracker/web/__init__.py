"""Public HTML pages served without credentials (the unsubscribe page)."""
