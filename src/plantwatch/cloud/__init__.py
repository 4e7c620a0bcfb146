"""Composition roots and handlers of plantwatch's AWS Lambda functions."""
