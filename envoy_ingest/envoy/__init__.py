"""Talking to the gateway: transport and auth (transport.py, auth.py,
passwords.py), what it is (firmware.py), what it offers and what to poll
(capabilities.py), the client that reads it (client.py), and the tokens that
firmware >= 7 wants (tokens/)."""
