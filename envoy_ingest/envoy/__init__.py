"""Talking to the gateway: transport, auth, firmware, capabilities."""
