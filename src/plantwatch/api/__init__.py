"""The analytics HTTP API (FastAPI): served by uvicorn locally and by Mangum behind API Gateway."""

from plantwatch.api.app import create_app

__all__ = ["create_app"]
