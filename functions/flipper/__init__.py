"""Flipper: which features are on for this caller, answered from Redis in one round trip."""
