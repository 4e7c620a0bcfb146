"""Adapters: the only modules that import MQTT clients, database drivers, cloud SDKs or file formats."""
