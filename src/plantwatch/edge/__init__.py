"""The gateway runtime: its configuration file, composition root and run loop (standalone or in Greengrass)."""
