"""The CloudFormation that `sam deploy` would submit, made offline.

AWS's own SAM translator (`aws-sam-translator`, which the SAM CLI runs) turns template.yaml
into plain CloudFormation. Nothing here calls AWS: the managed-policy loader answers from a
fixed table, and CodeUri becomes the S3 location `sam package` would upload to.
"""

import copy
import functools
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# The AWS managed policies SAM may attach, by name (what IAM's ListPolicies would answer).
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
    ]
}


class _PolicyLoader:
    def load(self):
        return dict(MANAGED_POLICIES)


def sam_template(text=None):
    """template.yaml (or `text`) parsed as the SAM translator parses it."""
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(text if text is not None else TEMPLATE.read_text())


@functools.lru_cache(maxsize=None)
def _transformed(text):
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    from samtranslator.translator.transform import transform

    template = sam_template(text)
    for name, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://bookshelf-artifacts/{name}.zip"
    return json.dumps(transform(template, {}, _PolicyLoader()))


def transformed(text=None):
    """The CloudFormation document for template.yaml (or for the SAM template `text`)."""
    return json.loads(_transformed(text if text is not None else TEMPLATE.read_text()))


def resources_of(doc, kind):
    return {k: r for k, r in doc["Resources"].items() if r["Type"] == kind}


def ref_name(value):
    """The logical id a value points at: {"Ref": X}, {"Fn::GetAtt": [X, ...]}, or SAM's
    {"Fn::Sub": ["${v}", {"v": {"Ref": X}}]}; None for anything else."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else att.split(".")[0]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], list):
            refs = [ref_name(v) for v in value["Fn::Sub"][1].values()]
            if len(refs) == 1:
                return refs[0]
    return None


def deep_copy(doc):
    return copy.deepcopy(doc)
