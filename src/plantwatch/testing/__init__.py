"""Fakes of cloud services that cannot run here, enforcing the real services' documented limits."""
