"""Creates the transformed stack in moto's CloudFormation (in process, no AWS) and checks
what it builds: the queues and redrive, the event source mapping, the schedule, the roles.

moto has no model for a few resource types; those are replaced by stand-ins here, and only
those (STUBBED, with the reason). References to a stubbed resource become fixed strings.
"""

import io
import json
import os
import unittest
import zipfile
from urllib.parse import unquote_plus

import cfn

# Resource types moto's CloudFormation cannot create, and why each is stubbed.
STUBBED = {
    "AWS::ApiGateway::Stage": "moto has no CloudFormation model for stages",
    "AWS::ApiGateway::Deployment": "moto ignores a RestApi Body, so a deployment finds no methods",
    "AWS::ApiGateway::Account": "no moto model (account-level setting)",
    "AWS::CloudWatch::Alarm": "no moto model",
    "AWS::RDS::DBProxy": "no moto model",
    "AWS::RDS::DBProxyTargetGroup": "no moto model",
    "AWS::RDS::DBInstance": "its credentials are {{resolve:secretsmanager}} references, which moto does not resolve",
    "AWS::SecretsManager::Secret": "no moto model",
    "AWS::SecretsManager::SecretTargetAttachment": "no moto model",
    "AWS::WAFv2::WebACL": "no moto CloudFormation model",
    "AWS::WAFv2::WebACLAssociation": "no moto CloudFormation model (and it names a stubbed stage)",
}


def _substitute(value, stubs):
    """Replaces Ref/GetAtt of stubbed resources with fixed strings, and Fn::Cidr (which
    moto lacks) with the subnets it would compute."""
    if isinstance(value, list):
        return [_substitute(v, stubs) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in stubs:
        return f"stub-{value['Ref']}"
    if set(value) == {"Fn::GetAtt"}:
        att = value["Fn::GetAtt"]
        name, attr = (att[0], att[1]) if isinstance(att, list) else att.split(".", 1)
        if name in stubs:
            if attr == "DBProxyArn":  # ends in the proxy's resource id, which rds-db:connect names
                return f"arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-stub-{name}"
            return f"stub-{name}-{attr}"
    if set(value) == {"Fn::Select"}:
        index, source = value["Fn::Select"]
        if isinstance(source, dict) and "Fn::Cidr" in source:
            return f"10.42.{16 * int(index)}.0/20"
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        for stub in stubs:
            text = text.replace("${%s}" % stub, f"stub-{stub}")
            for attr in ("Arn", "Endpoint", "QueueName"):
                text = text.replace("${%s.%s}" % (stub, attr), f"stub-{stub}-{attr}")
        return {"Fn::Sub": [text, _substitute(variables, stubs)] if variables else text}
    return {k: _substitute(v, stubs) for k, v in value.items()}


def moto_template(doc):
    doc = cfn.deep_copy(doc)
    stubs = {name for name, r in doc["Resources"].items() if r["Type"] in STUBBED}
    for name in stubs:
        del doc["Resources"][name]
    for r in doc["Resources"].values():
        r.pop("DependsOn", None) if not isinstance(r.get("DependsOn"), (str, list)) else None
        if isinstance(r.get("DependsOn"), list):
            r["DependsOn"] = [d for d in r["DependsOn"] if d not in stubs]
        elif r.get("DependsOn") in stubs:
            del r["DependsOn"]
    doc["Resources"] = _substitute(doc["Resources"], stubs)
    doc["Outputs"] = _substitute(doc.get("Outputs", {}), stubs)
    return doc, stubs


class MotoStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="eu-west-1")
        from moto import mock_aws
        import boto3

        cls.mock = mock_aws()
        cls.mock.start()
        cls.boto3 = boto3
        # What `sam package` would have uploaded: a zip per function (a stand-in bootstrap).
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bookshelf-artifacts",
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n")
        for name in cfn.resources_of(cfn.transformed(), "AWS::Lambda::Function"):
            s3.put_object(Bucket="bookshelf-artifacts", Key=f"{name}.zip", Body=archive.getvalue())
        doc, cls.stubs = moto_template(cfn.transformed())
        cls.stubbed_types = {cfn.transformed()["Resources"][s]["Type"] for s in cls.stubs}
        cf = boto3.client("cloudformation")
        cf.create_stack(StackName="bookshelf", TemplateBody=json.dumps(doc),
                        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        stack = cf.describe_stacks(StackName="bookshelf")["Stacks"][0]
        cls.status = stack["StackStatus"]
        cls.reason = stack.get("StackStatusReason")
        resources = cf.describe_stack_resources(StackName="bookshelf")["StackResources"]
        # (moto lists one resource without its logical id; nothing below needs it.)
        resources = [r for r in resources if "LogicalResourceId" in r]
        cls.physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources}
        cls.failed = {r["LogicalResourceId"]: (r["ResourceType"], r.get("ResourceStatusReason"))
                      for r in resources if r["ResourceStatus"] != "CREATE_COMPLETE"}

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def test_the_stack_is_created(self):
        self.assertEqual(self.status, "CREATE_COMPLETE", self.reason)
        self.assertEqual(self.failed, {})
        # Only the listed types were stubbed.
        self.assertEqual(self.stubbed_types - set(STUBBED), set())

    def test_both_queues_redrive_to_their_dead_letter_queues(self):
        sqs = self.boto3.client("sqs")
        for queue, dlq in [("OrdersQueue", "OrdersDeadLetterQueue"), ("ActivitiesQueue", "ActivitiesDeadLetterQueue")]:
            url = self.physical[queue]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            redrive = json.loads(attrs["RedrivePolicy"])
            dlq_url = self.physical[dlq]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.assertEqual(redrive["deadLetterTargetArn"], dlq_arn, queue)
            self.assertEqual(int(redrive["maxReceiveCount"]), 5, queue)
            self.assertEqual(int(attrs["VisibilityTimeout"]), 180, queue)
            self.assertEqual(attrs.get("SqsManagedSseEnabled"), "true", queue)

    def test_each_consumer_consumes_its_queue_with_partial_failures(self):
        lam = self.boto3.client("lambda")
        for function, queue in [("OrderProcessorFunction", "OrdersQueue"), ("FeedFanoutFunction", "ActivitiesQueue")]:
            mappings = lam.list_event_source_mappings(FunctionName=self.physical[function])
            (mapping,) = mappings["EventSourceMappings"]
            self.assertTrue(mapping["EventSourceArn"].endswith(":" + self.physical[queue].rsplit("/", 1)[-1]), function)
            self.assertEqual(mapping["BatchSize"], 10, function)
            self.assertEqual(mapping.get("FunctionResponseTypes"), ["ReportBatchItemFailures"], function)

    def test_an_upload_to_the_bucket_is_announced_on_the_imports_queue(self):
        s3 = self.boto3.client("s3")
        sqs = self.boto3.client("sqs")
        bucket = self.physical["UploadBucket"]
        queue = self.physical["ImportsQueue"]
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.physical["ImportsDeadLetterQueue"],
                                           AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.assertEqual(json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"], dlq_arn)
        # The importer consumes the queue; paused here, or moto would run it (in Docker).
        lam = self.boto3.client("lambda")
        (mapping,) = lam.list_event_source_mappings(FunctionName=self.physical["ImportWorkerFunction"])["EventSourceMappings"]
        self.assertTrue(mapping["EventSourceArn"].endswith(":" + queue.rsplit("/", 1)[-1]))
        self.assertEqual(mapping.get("FunctionResponseTypes"), ["ReportBatchItemFailures"])
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        # moto's CloudFormation creates the bucket but drops its NotificationConfiguration:
        # the template's own configuration is applied through the S3 API, as CloudFormation
        # would, and moto's S3 then delivers as S3 does.
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        template = cfn.transformed()["Resources"]["UploadBucket"]["Properties"]["NotificationConfiguration"]
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": queue_arn, "Events": [q["Event"]],
             "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}}
            for q in template["QueueConfigurations"]]})
        # Drain what configuring the notification sent (S3's test event).
        sqs.purge_queue(QueueUrl=queue)
        s3.put_object(Bucket=bucket, Key="elsewhere/x.csv", Body=b"not an import")
        s3.put_object(Bucket=bucket, Key="imports/3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b.csv", Body=b"Title,Author\n")
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        # Keys arrive URL-encoded, as S3 sends them (the importer decodes them).
        keys = [unquote_plus(r["s3"]["object"]["key"]) for m in got for r in json.loads(m["Body"]).get("Records", [])]
        self.assertEqual(keys, ["imports/3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b.csv"])
        # moto's CloudFormation drops the bucket's public access block and lifecycle rule
        # too: test_template.Imports checks those in the template.

    def test_the_relay_runs_every_minute(self):
        events = self.boto3.client("events")
        rule = events.describe_rule(Name=self.physical["OutboxRelayFunctionEveryMinute"])
        self.assertEqual(rule["ScheduleExpression"], "rate(1 minute)")
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        self.assertEqual([t["Arn"].rsplit(":", 1)[-1] for t in targets], [self.physical["OutboxRelayFunction"]])

    def test_functions_and_their_roles(self):
        lam = self.boto3.client("lambda")
        iam = self.boto3.client("iam")
        for name in cfn.resources_of(cfn.transformed(), "AWS::Lambda::Function"):
            fn = lam.get_function(FunctionName=self.physical[name])["Configuration"]
            self.assertEqual(fn["Runtime"], "provided.al2023", name)
            self.assertEqual(fn["Handler"], "bootstrap", name)
            role = iam.get_role(RoleName=fn["Role"].rsplit("/", 1)[-1])["Role"]
            trust = role["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            self.assertEqual(trust["Statement"][0]["Principal"], {"Service": ["lambda.amazonaws.com"]}, name)
        relay = lam.get_function(FunctionName=self.physical["OutboxRelayFunction"])
        self.assertEqual(relay.get("Concurrency", {}).get("ReservedConcurrentExecutions"), 1)

    def test_log_groups_exist_with_retention(self):
        logs = self.boto3.client("logs")
        # Paginated: there are more groups than one page (50) holds.
        pages = logs.get_paginator("describe_log_groups").paginate()
        groups = {g["logGroupName"]: g for page in pages for g in page["logGroups"]}
        for name in cfn.resources_of(cfn.transformed(), "AWS::Logs::LogGroup"):
            group = groups[self.physical[name]]
            self.assertEqual(group.get("retentionInDays"), 30, name)


if __name__ == "__main__":
    unittest.main()
