"""The one-command local platform: embedded broker, simulated plant, gateways, stream, store, archive, API."""
