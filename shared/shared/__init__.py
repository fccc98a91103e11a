"""Anchor's schema package: what every service agrees on (events, labels, topics) and the plumbing they share."""
