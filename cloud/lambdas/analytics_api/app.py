"""Lambda handler of the analytics API behind API Gateway (HTTP API v2): the plantwatch FastAPI app via Mangum."""

import boto3
from mangum import Mangum

from plantwatch.api.cloud import build_cloud_app

handler = Mangum(build_cloud_app(boto3.client("timestream-query")), lifespan="off")
