# `terraform test` of the whole root module (offline, mocked AWS provider): a first plan succeeds (every
# `count` and `for_each` is known before apply) and every name fits its service's length limit, with the
# default project_name and with the longest one the variable allows. Run by tests/infra/test_terraform.py,
# which provides a placeholder zip in tests/fake-packages; plans only, nothing is created.

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
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "ap-southeast-2"
    }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"]
    }
  }
}

variables {
  aws_region         = "ap-southeast-2"
  lambda_package_dir = "tests/fake-packages"
  lambda_image_tag   = "0123456789ab"
}

run "first_plan_with_the_defaults" {
  command = plan

  assert {
    condition     = startswith(module.archive_bucket.name, "smart-manufacturing-iot-")
    error_message = "the archive bucket must be planned under the short project name"
  }
  assert {
    condition     = length(aws_iam_role.token_exchange.name) <= 64
    error_message = "IAM role names are at most 64 characters"
  }
}

run "the_longest_project_name_fits_every_limit" {
  command = plan

  variables {
    project_name = "abcdefghij-abcdefghij-abcdefghij-abcdefghij-ab"
  }

  assert {
    condition     = length(var.project_name) == 46
    error_message = "this run must use the longest project_name the variable accepts"
  }
  assert {
    condition = alltrue([
      for name in [
        aws_iam_role.token_exchange.name, aws_iam_role.iot_rules.name,
        module.stream_processor.function_name, module.analytics_api.function_name, module.retrain.function_name,
      ] : length(name) <= 64
    ])
    error_message = "IAM role and Lambda function names are at most 64 characters"
  }
  assert {
    condition = alltrue([
      for name in [module.access_logs_bucket.name, module.archive_bucket.name, module.artifacts_bucket.name, module.errors_bucket.name] : length(name) <= 63
    ])
    error_message = "S3 bucket names are at most 63 characters"
  }
  assert {
    condition     = length(aws_cloudwatch_event_rule.retrain.name) <= 64
    error_message = "EventBridge rule names are at most 64 characters"
  }
}

run "plants_may_name_their_lines_alike" {
  command = plan

  variables {
    plants           = ["plant-a", "plant-b"]
    production_lines = ["line-1", "line-2"]
  }

  assert {
    condition = output.line_thing_groups == {
      "plant-a/line-1" = "smart-manufacturing-iot-analytics-platform-line-plant-a-line-1"
      "plant-a/line-2" = "smart-manufacturing-iot-analytics-platform-line-plant-a-line-2"
      "plant-b/line-1" = "smart-manufacturing-iot-analytics-platform-line-plant-b-line-1"
      "plant-b/line-2" = "smart-manufacturing-iot-analytics-platform-line-plant-b-line-2"
    }
    error_message = "each plant's line must get a thing group of its own, keyed plant/line"
  }
  assert {
    condition     = aws_iot_thing_group.line["plant-b/line-1"].properties[0].attribute_payload[0].attributes == tomap({ plant = "plant-b", line = "line-1" })
    error_message = "a line group must carry its plant and line as attributes"
  }
}

run "two_pairs_that_make_one_group_name_are_refused" {
  command = plan

  variables {
    plants           = ["a-b", "a"]
    production_lines = ["c", "b-c"]
  }

  expect_failures = [aws_iot_thing_group.line]
}

run "a_group_name_over_128_characters_is_refused" {
  command = plan

  variables {
    project_name     = "abcdefghij-abcdefghij-abcdefghij-abcdefghij-ab"
    plants           = ["plant-abcdefghij-abcdefghij-abcdefghij"]
    production_lines = ["line-abcdefghij-abcdefghij-abcdefghij-abcdefghij"]
  }

  expect_failures = [aws_iot_thing_group.line]
}

# With project_name at most 46 characters, a model name of at most 64 keeps the group name within 128 too; the
# run above trips both preconditions, this one only the model name's (66 characters, a 114-character group).
run "a_line_whose_model_name_a_batch_cannot_carry_is_refused" {
  command = plan

  variables {
    plants           = ["plant-abcdefghij-abcdefghij-abcd"]
    production_lines = ["line-abcdefghij-abcdefghij-abcdef"]
  }

  expect_failures = [aws_iot_thing_group.line]
}

run "names_a_thing_group_cannot_hold_are_refused" {
  command = plan

  variables {
    plants           = ["plant.1"]
    production_lines = ["line.1"]
  }

  expect_failures = [var.plants, var.production_lines]
}
