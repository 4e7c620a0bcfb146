"""Lambda handler of the analytics API behind API Gateway (HTTP API v2): the plantwatch FastAPI app via Mangum.

Configured by Terraform: TIMESTREAM_DATABASE, TIMESTREAM_TABLE, PLANTWATCH_ALERTS_TABLE and PLANTWATCH_AUDIT_TABLE
(DynamoDB alerts), PLANTWATCH_DRIFT_TABLE and PLANTWATCH_DRIFT_PSI_THRESHOLD (drift per line, GET /v1/models), and
PLANTWATCH_API_BASE (the stage path Mangum strips, api_gateway_base_path).
"""

import os

import boto3
from mangum import Mangum

from plantwatch.api.cloud import build_cloud_app

handler = Mangum(
    build_cloud_app(boto3.client("timestream-query"), dynamodb=boto3.client("dynamodb")),
    lifespan="off",
    api_gateway_base_path=os.environ.get("PLANTWATCH_API_BASE", "/"),
)
