"""Anchor classifier: labels every post per labels.md and publishes the classified post."""
