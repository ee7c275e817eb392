"""Talking to OCI distribution registries: credentials, the HTTP client, push."""
