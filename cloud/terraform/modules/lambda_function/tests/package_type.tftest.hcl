# `terraform test` (offline, mocked AWS provider): the module deploys a zip or an ECR image, and refuses a mix.
# Run by tests/infra/test_terraform.py; plans only, nothing is created.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  function_name        = "plantwatch-test"
  description          = "module test"
  reserved_concurrency = 1
  kms_key_arn          = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  log_retention_days   = 365
  policy_json          = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
}

run "image_function_takes_handler_and_runtime_from_the_image" {
  command = plan

  variables {
    package_type = "Image"
    image_uri    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/plantwatch-retrain:0123456789ab"
  }

  assert {
    condition     = aws_lambda_function.this.package_type == "Image"
    error_message = "package_type must reach the function"
  }
  assert {
    condition     = aws_lambda_function.this.image_uri == var.image_uri
    error_message = "the function must run the given image"
  }
  assert {
    condition     = aws_lambda_function.this.handler == null && aws_lambda_function.this.runtime == null && aws_lambda_function.this.filename == null
    error_message = "an image function sets no handler, runtime or file (Lambda refuses them)"
  }
}

run "image_pinned_by_digest_is_accepted" {
  command = plan

  variables {
    package_type = "Image"
    image_uri    = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/plantwatch-anomaly-detection@sha256:${join("", [for i in range(64) : "a"])}"
  }

  assert {
    condition     = endswith(aws_lambda_function.this.image_uri, "@sha256:${join("", [for i in range(64) : "a"])}")
    error_message = "a digest URI must pass through unchanged"
  }
}

run "image_function_without_an_image_is_refused" {
  command = plan

  variables {
    package_type = "Image"
  }

  expect_failures = [aws_lambda_function.this]
}

run "image_uri_outside_ecr_is_refused" {
  command = plan

  variables {
    package_type = "Image"
    image_uri    = "docker.io/library/python:3.12"
  }

  expect_failures = [var.image_uri]
}

run "zip_function_keeps_file_handler_and_runtime" {
  command = plan

  variables {
    package_file = "tests/fixture.zip"
  }

  assert {
    condition     = aws_lambda_function.this.package_type == "Zip" && aws_lambda_function.this.image_uri == null
    error_message = "the default stays a zip"
  }
  assert {
    condition     = aws_lambda_function.this.handler == "app.handler" && aws_lambda_function.this.runtime == "python3.12"
    error_message = "a zip function keeps its handler and runtime"
  }
  assert {
    condition     = aws_lambda_function.this.source_code_hash == filebase64sha256("tests/fixture.zip")
    error_message = "the zip's hash makes Terraform redeploy on change"
  }
}

run "zip_function_with_an_image_too_is_refused" {
  command = plan

  variables {
    package_file = "tests/fixture.zip"
    image_uri    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/plantwatch-retrain:0123456789ab"
  }

  expect_failures = [aws_lambda_function.this]
}
