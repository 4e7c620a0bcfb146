# Container images of the Lambdas too large for a zip (docs/cloud.md, "Packaging"): one ECR repository per function,
# named like the function. Images are built from cloud/lambdas/<function>/Dockerfile and pushed by hand or CI
# (docs/deploy.md); Terraform only points each function at <repository>:<lambda_image_tag>.

locals {
  # Function directory under cloud/lambdas -> function name (= repository name).
  image_functions = {
    retrain          = local.retrain_name
    stream_processor = local.stream_processor_name
  }

  # An explicit *_image_uri wins; otherwise this deployment's repository at lambda_image_tag.
  image_uris = {
    for function, name in local.image_functions : function => (
      var.lambda_image_tag == null ? null : "${aws_ecr_repository.lambda[function].repository_url}:${var.lambda_image_tag}"
    )
  }
  # null when neither is set: the lambda_function module's precondition then says what to set.
  retrain_image_uri          = var.retrain_image_uri != null ? var.retrain_image_uri : local.image_uris["retrain"]
  stream_processor_image_uri = var.stream_processor_image_uri != null ? var.stream_processor_image_uri : local.image_uris["stream_processor"]
}

resource "aws_ecr_repository" "lambda" {
  for_each = local.image_functions

  name                 = each.value
  image_tag_mutability = "IMMUTABLE" # a tag names one image forever: the function's image_uri means one build

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }
}

# Keep the last images (rollback targets) and drop untagged layers left by failed pushes.
resource "aws_ecr_lifecycle_policy" "lambda" {
  for_each = aws_ecr_repository.lambda

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images after ${var.ecr_untagged_expiry_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.ecr_untagged_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest ${var.ecr_images_to_keep} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_images_to_keep
        }
        action = { type = "expire" }
      },
    ]
  })
}

# Lambda pulls the image with its service principal, not the execution role: in the same account the repository
# policy must let lambda.amazonaws.com read, restricted to this deployment's function (else Lambda tries to add
# such a statement itself at CreateFunction, which needs ecr:SetRepositoryPolicy for whoever runs terraform).
data "aws_iam_policy_document" "ecr_lambda_pull" {
  for_each = local.image_functions

  statement {
    sid     = "LambdaPullsItsImage"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values = [
        "arn:${local.partition}:lambda:${var.aws_region}:${local.account_id}:function:${each.value}",
        "arn:${local.partition}:lambda:${var.aws_region}:${local.account_id}:function:${each.value}:*",
      ]
    }
  }
}

resource "aws_ecr_repository_policy" "lambda" {
  for_each = aws_ecr_repository.lambda

  repository = each.value.name
  policy     = data.aws_iam_policy_document.ecr_lambda_pull[each.key].json
}
