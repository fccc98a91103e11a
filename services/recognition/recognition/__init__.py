"""Anchor recognition: the member ledger, burnout risk, nominations, thank-you drafts, flaw topics, health."""
