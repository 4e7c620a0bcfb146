"""Use cases that wire domain logic to ports: gateway pipeline, stream processing, analytics queries."""
