"""The registry client: transport, auth, credentials, the v2 API, push and pull."""
