"""Assertions on the CloudFormation that `sam deploy` would submit (see cfn.py).

Each test names the deploy defect it keeps out; run with `python -m unittest` from this
directory (scripts/deploy-tests.sh, part of `make test`).
"""

import json
import re
import unittest

import cfn

DOC = cfn.transformed()
SAM = cfn.sam_template()
RESOURCES = DOC["Resources"]

# The routes that skip the authorizer; every other method must use it.
PUBLIC_ROUTES = {
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{asset}"),
}

# The admin-only routes (libs/api/src/registry.rs, Access::Admin; a Rust test checks the
# registry against the template): their authorizer result is never cached.
ADMIN_ROUTES = {
    ("GET", "/users"),
    ("POST", "/books"),
    ("PATCH", "/books/{id}"),
    ("DELETE", "/books/{id}"),
    ("POST", "/books/{id}/inventory"),
}

# Functions that never query: no VPC, no database settings, no database secret.
# The sender is outside the VPC on purpose: it reaches the internet, never the database.
NO_DATABASE = {"OpenApiFunction", "DocsFunction", "DocsAssetFunction", "JwksFunction", "WebhookSenderFunction"}

# Every gateway response type API Gateway has (its GatewayResponse.responseType values).
GATEWAY_RESPONSE_TYPES = {
    "DEFAULT_4XX", "DEFAULT_5XX", "RESOURCE_NOT_FOUND", "UNAUTHORIZED", "INVALID_API_KEY",
    "ACCESS_DENIED", "AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR",
    "INVALID_SIGNATURE", "EXPIRED_TOKEN", "MISSING_AUTHENTICATION_TOKEN",
    "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT", "API_CONFIGURATION_ERROR",
    "UNSUPPORTED_MEDIA_TYPE", "BAD_REQUEST_PARAMETERS", "BAD_REQUEST_BODY",
    "REQUEST_TOO_LARGE", "THROTTLED", "QUOTA_EXCEEDED", "WAF_FILTERED",
}

IAM_TABLE = cfn.ROOT / "tests" / "deploy" / "iam.json"


def functions(doc=DOC):
    return cfn.resources_of(doc, "AWS::Lambda::Function")


# The application role's name, as its secret (which db-migrate creates the role from) says.
# The master credentials' secret, made and rotated by RDS (ManageMasterUserPassword).
MASTER_SECRET = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
APP_USER = json.loads(RESOURCES["AppDatabaseSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"])["username"]


def function_permissions(doc=DOC):
    """Function → its role's managed policies (by name) and inline statements, with
    resources named by the logical id they point at."""
    out = {}
    for name, fn in functions(doc).items():
        role = doc["Resources"][cfn.ref_name(fn["Properties"]["Role"])]["Properties"]
        # An AWS managed policy by its name, one of this stack by its logical id.
        managed = sorted(cfn.ref_name(arn) or arn.rsplit("/", 1)[-1] for arn in role.get("ManagedPolicyArns", []))
        statements = []
        for policy in role.get("Policies", []):
            for s in policy["PolicyDocument"]["Statement"]:
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                for r in resources:
                    target = cfn.ref_name(r)
                    if target is None and isinstance(r, dict) and "Fn::Sub" in r:
                        sub = r["Fn::Sub"]
                        if isinstance(sub, list):
                            target = cfn.ref_name(next(iter(sub[1].values())))
                        else:
                            # '${Bucket.Arn}/prefix/*': the resource and the part it names.
                            m = re.fullmatch(r"\$\{(\w+)(?:\.Arn)?\}(.*)", sub)
                            target = m.group(1) + m.group(2) if m else None
                    statements.append(f"{s['Effect']} {','.join(sorted(actions))} on {target or json.dumps(r)}")
        statements.sort()
        out[name] = {"managed": managed, "statements": statements}
    return out


def streaming_functions(doc=DOC):
    """The functions whose route streams its response (REST API response streaming)."""
    out = set()
    for ops in doc["Resources"]["BookshelfApi"]["Properties"]["Body"]["paths"].values():
        for op in ops.values():
            integration = op.get("x-amazon-apigateway-integration", {}) if isinstance(op, dict) else {}
            if integration.get("responseTransferMode") == "STREAM":
                uri = integration["uri"]["Fn::Sub"]
                out.add(re.search(r"\$\{(\w+)\.Arn\}", uri).group(1))
    return out


def problem_body(response):
    return json.loads(response["responseTemplates"]["application/json"].replace(
        "$context.error.messageString", '"message"'))


class Stages(unittest.TestCase):
    def test_exactly_one_stage_and_no_implicit_one(self):
        stages = cfn.resources_of(DOC, "AWS::ApiGateway::Stage")
        self.assertEqual(len(stages), 1, stages.keys())
        (stage,) = stages.values()
        self.assertEqual(stage["Properties"]["StageName"], {"Ref": "StageName"})
        self.assertIn("MethodSettings", stage["Properties"])
        self.assertIn("AccessLogSetting", stage["Properties"])
        # A Deployment with a StageName makes a second stage ("Stage") of its own.
        for name, dep in cfn.resources_of(DOC, "AWS::ApiGateway::Deployment").items():
            self.assertNotIn("StageName", dep["Properties"], name)

    def test_throttling_covers_every_method(self):
        (stage,) = cfn.resources_of(DOC, "AWS::ApiGateway::Stage").values()
        settings = stage["Properties"]["MethodSettings"]
        self.assertTrue(any(s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"
                            and s["ThrottlingRateLimit"] > 0 for s in settings), settings)

    def test_access_logs_have_their_account_role_first(self):
        # A fresh account has no API Gateway CloudWatch Logs role: the stage would fail.
        (stage,) = cfn.resources_of(DOC, "AWS::ApiGateway::Stage").values()
        variables = stage["Properties"].get("Variables", {})
        self.assertEqual(
            variables.get("cloudWatchRole"),
            {"Fn::If": ["CreateApiGatewayAccount", {"Ref": "ApiGatewayAccount"}, "existing"]},
        )
        account = RESOURCES["ApiGatewayAccount"]
        self.assertEqual(account["Type"], "AWS::ApiGateway::Account")
        self.assertEqual(account.get("Condition"), "CreateApiGatewayAccount")
        self.assertEqual(account["DeletionPolicy"], "Retain")
        role = RESOURCES[cfn.ref_name(account["Properties"]["CloudWatchRoleArn"])]
        self.assertEqual(role["DeletionPolicy"], "Retain")
        self.assertEqual(role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"],
                         {"Service": "apigateway.amazonaws.com"})
        self.assertTrue(any("AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(a)
                            for a in role["Properties"]["ManagedPolicyArns"]))
        self.assertEqual(DOC["Parameters"]["ApiGatewayCloudWatchRole"]["Default"], "create")


class Routes(unittest.TestCase):
    def methods(self):
        body = RESOURCES["BookshelfApi"]["Properties"]["Body"]
        for path, ops in body["paths"].items():
            for method, op in ops.items():
                if "x-amazon-apigateway-integration" in op:
                    yield method.upper(), path, op

    def test_every_private_method_uses_the_authorizer_and_public_ones_do_not(self):
        seen = set()
        for method, path, op in self.methods():
            if method == "OPTIONS":
                continue  # preflights: test_every_path_answers_its_preflight_without_a_token
            seen.add((method, path))
            expected = ([{"NONE": []}] if (method, path) in PUBLIC_ROUTES
                        else [{"BookshelfAdminAuthorizer": []}] if (method, path) in ADMIN_ROUTES
                        else [{"BookshelfAuthorizer": []}])
            self.assertEqual(op.get("security"), expected, f"{method} {path}")
        self.assertTrue(PUBLIC_ROUTES <= seen, PUBLIC_ROUTES - seen)
        self.assertGreater(len(seen), len(PUBLIC_ROUTES))

    def test_every_path_answers_its_preflight_without_a_token(self):
        origin = {"Fn::If": ["HasAllowedOrigins", {"Fn::Sub": "'${AllowedOrigins}'"}, {"Ref": "AWS::NoValue"}]}
        body = RESOURCES["BookshelfApi"]["Properties"]["Body"]
        for path, ops in body["paths"].items():
            preflight = ops.get("options")
            self.assertIsNotNone(preflight, path)
            self.assertNotIn("security", preflight, path)
            integration = preflight["x-amazon-apigateway-integration"]
            self.assertEqual(integration["type"], "mock", path)
            headers = integration["responses"]["default"]["responseParameters"]
            self.assertEqual(headers["method.response.header.Access-Control-Allow-Origin"], origin, path)
            allowed = headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")
            self.assertEqual(set(allowed), {"Authorization", "Content-Type", "Idempotency-Key", "If-Match"}, path)
            methods = set(headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(","))
            self.assertLessEqual({m.upper() for m in ops if m != "options"}, methods, path)

    def test_every_gateway_response_carries_the_cors_headers_when_an_origin_is_allowed(self):
        responses = RESOURCES["BookshelfApi"]["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
        for kind, response in responses.items():
            headers = response["responseParameters"]
            origin = headers["gatewayresponse.header.Access-Control-Allow-Origin"]["Fn::If"]
            self.assertEqual(origin[0], "HasAllowedOrigins", kind)
            self.assertEqual(origin[2], {"Ref": "AWS::NoValue"}, kind)
            self.assertEqual(headers["gatewayresponse.header.Vary"]["Fn::If"][1], "'Origin'", kind)
            exposed = headers["gatewayresponse.header.Access-Control-Expose-Headers"]["Fn::If"][1]
            self.assertEqual(exposed, "'ETag,Location,Retry-After'", kind)
        self.assertEqual(DOC["Conditions"]["HasAllowedOrigins"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedOrigins"}, ""]}]})
        self.assertEqual(DOC["Parameters"]["AllowedOrigins"]["Default"], "")
        for name, function in functions().items():
            env = function["Properties"].get("Environment", {}).get("Variables", {})
            self.assertEqual(env.get("ALLOWED_ORIGINS"), {"Ref": "AllowedOrigins"}, name)

    def test_admin_routes_are_authorized_at_every_call(self):
        # API.md: a demoted admin or a revoked admin session is refused at once, deployed too.
        body = RESOURCES["BookshelfApi"]["Properties"]["Body"]
        scheme = body["components"]["securitySchemes"]["BookshelfAdminAuthorizer"]["x-amazon-apigateway-authorizer"]
        self.assertEqual(scheme["type"], "request")
        self.assertEqual(scheme["authorizerResultTtlInSeconds"], 0)
        self.assertEqual(scheme["identitySource"], "method.request.header.Authorization")
        admin = {(m.upper(), p) for p, ms in body["paths"].items() for m, op in ms.items()
                 if isinstance(op, dict) and {"BookshelfAdminAuthorizer": []} in op.get("security", [])}
        self.assertEqual(admin, ADMIN_ROUTES)

    def test_the_authorizer_is_a_cached_request_authorizer_on_the_header(self):
        body = RESOURCES["BookshelfApi"]["Properties"]["Body"]
        scheme = body["components"]["securitySchemes"]["BookshelfAuthorizer"]
        auth = scheme["x-amazon-apigateway-authorizer"]
        self.assertEqual(auth["type"], "request")
        self.assertEqual(auth["identitySource"], "method.request.header.Authorization")
        self.assertTrue(0 < auth["authorizerResultTtlInSeconds"] <= 60)

    def test_every_gateway_response_type_is_problem_json_with_its_own_status(self):
        responses = RESOURCES["BookshelfApi"]["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
        self.assertEqual(set(responses), GATEWAY_RESPONSE_TYPES)
        for kind, response in responses.items():
            status = int(response["statusCode"])
            self.assertEqual(response["responseParameters"]["gatewayresponse.header.Content-Type"],
                             "'application/problem+json'", kind)
            body = problem_body(response)
            self.assertEqual(body["status"], status, kind)
            self.assertIn("title", body, kind)
            self.assertEqual(body["requestId"], "$context.requestId", kind)
        for kind in ("AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE"):
            # A failing Lambda authorizer is AUTHORIZER_CONFIGURATION_ERROR on AWS: both
            # must say "outage, retry", never a bare 500.
            self.assertEqual(responses[kind]["statusCode"], "503", kind)
            self.assertIn("gatewayresponse.header.Retry-After", responses[kind]["responseParameters"], kind)
        self.assertEqual(responses["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"],
                         "'Bearer'")


class Functions(unittest.TestCase):
    def test_iam_statements_equal_the_reviewed_table(self):
        expected = json.loads(IAM_TABLE.read_text())
        actual = function_permissions()
        self.assertEqual(sorted(actual), sorted(expected), "functions differ from tests/deploy/iam.json")
        for name in expected:
            self.assertEqual(actual[name], expected[name], f"{name}: IAM differs from tests/deploy/iam.json")

    def test_only_db_migrate_reads_the_master_secret(self):
        for name, perms in function_permissions().items():
            reads = {s.split(" on ")[1] for s in perms["statements"] if "secretsmanager:GetSecretValue" in s}
            # The master secret is RDS's own (ManageMasterUserPassword), named by the database.
            self.assertEqual("Database" in reads, name == "DbMigrateFunction", name)
            # The others sign in to the proxy with their role (DatabaseConnectPolicy).
            self.assertEqual("AppDatabaseSecret" in reads, name == "DbMigrateFunction", name)
            self.assertEqual("SigningKeysSecret" in reads,
                             name in {"AuthRegisterFunction", "AuthLoginFunction", "AuthRefreshFunction"}, name)

    def test_database_settings_only_where_the_function_queries(self):
        for name, fn in functions().items():
            props = fn["Properties"]
            env = props.get("Environment", {}).get("Variables", {})
            managed = function_permissions()[name]["managed"]
            if name in NO_DATABASE:
                self.assertNotIn("VpcConfig", props, name)
                self.assertFalse({"DB_SECRET_ARN", "DB_USER", "DB_HOST", "DB_NAME"} & set(env), name)
                self.assertNotIn("DatabaseConnectPolicy", managed, name)
            elif name == "DbMigrateFunction":
                self.assertIn("VpcConfig", props, name)
                self.assertEqual(env.get("DB_SECRET_ARN"), MASTER_SECRET, name)
                self.assertNotIn("DB_USER", env, name)
                self.assertEqual(cfn.ref_name(env.get("DB_HOST")), "DatabaseProxy", name)
            else:
                self.assertIn("VpcConfig", props, name)
                self.assertNotIn("DB_SECRET_ARN", env, name)
                self.assertEqual(env.get("DB_USER"), APP_USER, name)
                self.assertIn("DatabaseConnectPolicy", managed, name)
                self.assertEqual(cfn.ref_name(env.get("DB_HOST")), "DatabaseProxy", name)
        self.assertEqual(RESOURCES["DbMigrateFunction"]["Properties"]["Environment"]["Variables"]["APP_DB_SECRET_ARN"],
                         {"Ref": "AppDatabaseSecret"})

    def test_the_proxy_admits_the_application_role(self):
        auth = RESOURCES["DatabaseProxy"]["Properties"]["Auth"]
        self.assertEqual([a["SecretArn"] for a in auth], [MASTER_SECRET, {"Ref": "AppDatabaseSecret"}])
        self.assertTrue(RESOURCES["DatabaseProxy"]["Properties"]["RequireTLS"])
        # The application user only with an IAM token; the owner (db-migrate) with its password.
        self.assertEqual([a["IAMAuth"] for a in auth], ["DISABLED", "REQUIRED"])

    def test_the_connect_policy_names_this_proxy_and_the_application_user(self):
        (statement,) = RESOURCES["DatabaseConnectPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual((statement["Effect"], statement["Action"]), ("Allow", "rds-db:connect"))
        text, variables = statement["Resource"]["Fn::Sub"]
        self.assertTrue(text.endswith(":dbuser:${ProxyId}/" + APP_USER), text)
        index, (sep, source) = variables["ProxyId"]["Fn::Select"][0], variables["ProxyId"]["Fn::Select"][1]["Fn::Split"]
        self.assertEqual((index, sep, source), (6, ":", {"Fn::GetAtt": ["DatabaseProxy", "DBProxyArn"]}))
        # arn:aws:rds:REGION:ACCOUNT:db-proxy:prx-... : the resource id is the seventh field.
        self.assertEqual("arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0123abcd".split(":")[index], "prx-0123abcd")

    def test_every_function_logs_to_its_own_group_made_before_it(self):
        groups = cfn.resources_of(DOC, "AWS::Logs::LogGroup")
        used = set()
        for name, fn in functions().items():
            group = cfn.ref_name(fn["Properties"].get("LoggingConfig", {}).get("LogGroup"))
            self.assertIn(group, groups, f"{name} has no LoggingConfig.LogGroup of this stack")
            self.assertNotIn(group, used, f"{name} shares {group}")
            used.add(group)
            self.assertIn("RetentionInDays", groups[group]["Properties"], group)
            self.assertEqual(fn["Properties"]["LoggingConfig"].get("LogFormat"), "JSON", name)

    def test_the_queue_consumers_report_partial_failures_and_are_capped(self):
        mappings = cfn.resources_of(DOC, "AWS::Lambda::EventSourceMapping")
        by_queue = {}
        for mapping in mappings.values():
            props = mapping["Properties"]
            by_queue[cfn.ref_name(props["EventSourceArn"])] = (cfn.ref_name(props["FunctionName"]), props)
        self.assertEqual(set(by_queue), {"OrdersQueue", "ActivitiesQueue", "ImportsQueue", "WebhooksQueue",
                                         "WebhookResultsQueue"})
        for queue, (function, cap_param) in {
            "OrdersQueue": ("OrderProcessorFunction", "OrderProcessorMaxConcurrency"),
            "ActivitiesQueue": ("FeedFanoutFunction", "FeedFanoutMaxConcurrency"),
            "ImportsQueue": ("ImportWorkerFunction", "ImportWorkerMaxConcurrency"),
            "WebhooksQueue": ("WebhookSenderFunction", "WebhookSenderMaxConcurrency"),
            "WebhookResultsQueue": ("WebhookRecorderFunction", "WebhookRecorderMaxConcurrency"),
        }.items():
            consumer, props = by_queue[queue]
            self.assertEqual(consumer, function, queue)
            self.assertEqual(props["FunctionResponseTypes"], ["ReportBatchItemFailures"], queue)
            self.assertEqual(props["ScalingConfig"], {"MaximumConcurrency": {"Ref": cap_param}}, queue)
            cap = DOC["Parameters"][cap_param]
            self.assertLessEqual(cap["MaxValue"], 20)
            self.assertGreaterEqual(cap["MinValue"], 2)  # SQS event sources take 2..1000

    def test_the_architecture_is_chosen_once_not_offered_at_deploy(self):
        # A parameter would be asked again by `sam deploy --guided`, after `sam build` had
        # compiled for its default: another answer deploys binaries that cannot start.
        self.assertNotIn("Architecture", DOC.get("Parameters", {}))
        for name, fn in functions().items():
            self.assertEqual(fn["Properties"]["Architectures"], ["arm64"], name)

    def test_the_relay_runs_alone(self):
        self.assertEqual(RESOURCES["OutboxRelayFunction"]["Properties"]["ReservedConcurrentExecutions"], 1)

    def test_every_function_timeout_bounds_its_work(self):
        queues = cfn.resources_of(DOC, "AWS::SQS::Queue")
        for queue, consumer in [("OrdersQueue", "OrderProcessorFunction"), ("ActivitiesQueue", "FeedFanoutFunction")]:
            timeout = RESOURCES[consumer]["Properties"]["Timeout"]
            self.assertGreaterEqual(queues[queue]["Properties"]["VisibilityTimeout"], 6 * timeout, queue)


def default(value):
    """A property's value with a parameter reference replaced by the parameter's default."""
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in DOC.get("Parameters", {}):
        return int(DOC["Parameters"][value["Ref"]]["Default"])
    return value


def readme_capacity():
    """README's capacity table (section "Capacity"): quantity → its first number."""
    text = (cfn.ROOT / "README.md").read_text()
    section = text.split("### Capacity", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (m := re.search(r"[0-9][0-9,.]*", cells[1])):
            rows[cells[0]] = float(m.group(0).replace(",", ""))
    return rows


# RDS's default max_connections for PostgreSQL is LEAST(DBInstanceClassMemory / 9531392,
# 5000); DBInstanceClassMemory is the class's memory less what RDS keeps for itself.
MAX_CONNECTIONS = {"db.t4g.micro": 112, "db.t4g.small": 225, "db.t4g.medium": 450}
UNRESERVED_MINIMUM = 100  # Lambda keeps this much of the account's concurrency unreserved
SQS_SEND_BUDGET_S = 3  # libs/queue: 1 s to connect, two attempts of 1.2 s


class Capacity(unittest.TestCase):
    """The numbers of README's "Capacity" section are the template's, and they add up."""

    TABLE = readme_capacity()

    def readme(self, quantity):
        self.assertIn(quantity, self.TABLE, f"README's capacity table has no row {quantity!r}")
        return self.TABLE[quantity]

    def api_functions(self):
        return {n: f for n, f in functions().items() if n not in CONSUMERS}

    def test_timeouts_are_in_order(self):
        pool = RESOURCES["DatabaseProxyTargets"]["Properties"]["ConnectionPoolConfigurationInfo"]
        borrow = pool["ConnectionBorrowTimeout"]
        self.assertEqual(borrow, self.readme("proxy borrow timeout (s)"))
        crud = SAM["Globals"]["Function"]["Timeout"]
        self.assertEqual(crud, self.readme("API function timeout (s)"))
        self.assertLessEqual(crud, 5, "CRUD functions get short timeouts")
        for name, fn in functions().items():
            props = fn["Properties"]
            env = props.get("Environment", {}).get("Variables", {})
            if "DB_USER" in env:
                connect = int(env["DB_CONNECT_TIMEOUT_MS"]) / 1000
                self.assertEqual(connect, self.readme("database connect timeout (s)"), name)
                self.assertLess(connect, props["Timeout"], name)
                self.assertLess(borrow, props["Timeout"], f"{name}: a borrow must expire before the function")
            if name not in CONSUMERS and name not in streaming_functions():
                self.assertLess(props["Timeout"], 29, f"{name}: API Gateway gives up at 29 s")
                if {"QUEUE_URL", "ACTIVITY_QUEUE_URL"} & set(env):
                    # A borrow, then the queue send's own budget (3 s), with a margin.
                    self.assertGreaterEqual(props["Timeout"], borrow + SQS_SEND_BUDGET_S + 1, name)
                    self.assertEqual(props["Timeout"], self.readme("API function timeout when it sends to a queue (s)"))
        authorizer = RESOURCES["AuthorizerFunction"]["Properties"]["Timeout"]
        self.assertEqual(authorizer, self.readme("authorizer timeout (s)"))
        self.assertLess(authorizer, 10, "API Gateway waits 10 s at most for an authorizer")

    def test_the_api_speaks_transaction_pooling_to_the_proxy(self):
        for name, fn in functions().items():
            env = fn["Properties"].get("Environment", {}).get("Variables", {})
            if "DB_USER" in env:
                self.assertEqual(env.get("DB_POOLING"), "transaction", name)
        self.assertNotIn("DB_POOLING", RESOURCES["DbMigrateFunction"]["Properties"]["Environment"]["Variables"])

    def test_every_function_has_a_floor_and_a_ceiling_that_fit_the_account(self):
        total = 0
        for name, fn in functions().items():
            reserved = default(fn["Properties"].get("ReservedConcurrentExecutions"))
            self.assertIsInstance(reserved, int, f"{name} has no reserved concurrency")
            total += reserved
        self.assertEqual(total, self.readme("reserved concurrency, all functions"))
        self.assertEqual(total + UNRESERVED_MINIMUM, self.readme("account concurrency quota needed"))
        self.assertLessEqual(total + UNRESERVED_MINIMUM, 1000, "the default quota (1,000) must fit it")
        # The consumers' floor is their event sources' ceiling: a backlog never waits on the API.
        for consumer, cap in [("OrderProcessorFunction", "OrderProcessorMaxConcurrency"),
                              ("FeedFanoutFunction", "FeedFanoutMaxConcurrency"),
                              ("ImportWorkerFunction", "ImportWorkerMaxConcurrency")]:
            self.assertEqual(RESOURCES[consumer]["Properties"]["ReservedConcurrentExecutions"], {"Ref": cap})
        self.assertEqual(default(RESOURCES["AuthorizerFunction"]["Properties"]["ReservedConcurrentExecutions"]),
                         self.readme("authorizer reserved concurrency"))
        self.assertEqual(int(DOC["Parameters"]["ApiFunctionConcurrency"]["Default"]),
                         self.readme("reserved concurrency per API function"))

    def test_the_database_and_proxy_numbers_are_the_readmes(self):
        instance = DOC["Parameters"]["DatabaseInstanceClass"]["Default"]
        max_connections = MAX_CONNECTIONS[instance]
        self.assertEqual(max_connections, self.readme(f"max_connections ({instance})"))
        percent = RESOURCES["DatabaseProxyTargets"]["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"]
        proxy = max_connections * percent // 100
        self.assertEqual(proxy, self.readme("proxy connections (MaxConnectionsPercent)"))
        alarm = RESOURCES["DatabaseConnectionsAlarm"]["Properties"]["Threshold"]
        self.assertEqual(alarm, proxy * 9 // 10, "the connections alarm fires at 90 % of the proxy's share")

    def test_stage_throttling_is_within_what_the_proxy_serves(self):
        (setting,) = RESOURCES[[n for n, r in RESOURCES.items() if r["Type"] == "AWS::ApiGateway::Stage"][0]]["Properties"]["MethodSettings"]
        rate, burst = setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]
        self.assertEqual(rate, self.readme("stage rate limit (req/s)"))
        self.assertEqual(burst, self.readme("stage burst limit"))
        self.assertLessEqual(rate, self.readme("requests/s the proxy's connections serve"))
        # A slow database holds each call up to the function timeout: what the stage lets in
        # then (Little's law) must stay within the API functions' reserved concurrency.
        slowest = max(f["Properties"]["Timeout"] for f in self.api_functions().values())
        api = sum(default(f["Properties"]["ReservedConcurrentExecutions"]) for f in self.api_functions().values())
        self.assertLessEqual(min(rate * slowest, burst), api)


# The functions that are not behind the API: queue consumers, the relay, db-migrate, cleanup.
CONSUMERS = {"OrderProcessorFunction", "FeedFanoutFunction", "OutboxRelayFunction", "DbMigrateFunction",
             "CleanupFunction", "ImportWorkerFunction", "WebhookDispatchFunction", "WebhookSenderFunction",
             "WebhookRecorderFunction"}


class Edge(unittest.TestCase):
    """Hostile clients meet limits before a function runs; old TLS is refused."""

    def rules(self):
        acl = RESOURCES["ApiWebAcl"]
        self.assertEqual(acl["Condition"], "HasWebAcl")
        self.assertEqual(DOC["Parameters"]["WebAcl"]["Default"], "on")
        self.assertEqual(acl["Properties"]["Scope"], "REGIONAL")
        return {r["Name"]: r for r in acl["Properties"]["Rules"]}

    def test_rate_limits_per_address_are_stricter_on_auth(self):
        rules = self.rules()
        limits = {}
        for name, rule in rules.items():
            rate = rule["Statement"].get("RateBasedStatement")
            if not rate:
                continue
            self.assertEqual(rate["AggregateKeyType"], "IP", name)
            block = rule["Action"]["Block"]["CustomResponse"]
            self.assertEqual(block["ResponseCode"], 429, name)
            self.assertIn("Retry-After", [h["Name"] for h in block["ResponseHeaders"]], name)
            scope = rate.get("ScopeDownStatement", {}).get("ByteMatchStatement", {}).get("SearchString")
            limits[scope] = rate["Limit"]
        self.assertIn(None, limits, "an overall per-address limit")
        self.assertLess(limits["/auth/"], limits[None])
        self.assertLess(limits["/auth/register"], limits["/auth/"])

    def test_aws_managed_rule_groups_without_refusing_the_apis_own_body_size(self):
        rules = self.rules()
        groups = {r["Statement"]["ManagedRuleGroupStatement"]["Name"]: r for r in rules.values()
                  if "ManagedRuleGroupStatement" in r["Statement"]}
        self.assertEqual(set(groups), {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"})
        overrides = groups["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
        self.assertIn({"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}, overrides)

    def test_the_web_acl_guards_this_stage(self):
        assoc = RESOURCES["ApiWebAclAssociation"]
        self.assertEqual(assoc["Condition"], "HasWebAcl")
        self.assertIn("/restapis/${BookshelfApi}/stages/${BookshelfApiStage}", assoc["Properties"]["ResourceArn"]["Fn::Sub"])
        self.assertEqual(cfn.ref_name(assoc["Properties"]["WebACLArn"]), "ApiWebAcl")

    def test_tls_1_2_at_least(self):
        self.assertEqual(RESOURCES["BookshelfApi"]["Properties"]["SecurityPolicy"], "TLS_1_2")

    def test_the_vpc_endpoints_reach_only_this_stacks_queues_and_secrets(self):
        sqs = RESOURCES["SqsEndpoint"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual({cfn.ref_name(r) for st in sqs for r in st["Resource"]}, {"OrdersQueue", "ActivitiesQueue"})
        secrets = RESOURCES["SecretsManagerEndpoint"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual({cfn.ref_name(r) for st in secrets for r in st["Resource"]},
                         {"Database", "AppDatabaseSecret", "SigningKeysSecret", "PublicKeysSecret"})
        self.assertIn(MASTER_SECRET, secrets[0]["Resource"])
        # S3 through a gateway endpoint: only the import files of this stack's bucket.
        (s3,) = RESOURCES["S3Endpoint"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(s3["Resource"], {"Fn::Sub": "${UploadBucket.Arn}/imports/*"})
        self.assertEqual(sorted(s3["Action"]), ["s3:DeleteObject", "s3:GetObject"])
        self.assertEqual(RESOURCES["S3Endpoint"]["Properties"]["VpcEndpointType"], "Gateway")
        self.assertEqual(RESOURCES["S3Endpoint"]["Properties"]["RouteTableIds"], [{"Ref": "PrivateRouteTable"}])
        for st in sqs + secrets + [s3]:
            self.assertNotIn("*", str(st["Action"]))


class Export(unittest.TestCase):
    def test_the_export_streams_its_body_and_nothing_else_does(self):
        body = RESOURCES["BookshelfApi"]["Properties"]["Body"]
        streamed = {(m.upper(), p) for p, ops in body["paths"].items() for m, op in ops.items()
                    if isinstance(op, dict) and op.get("x-amazon-apigateway-integration", {}).get("responseTransferMode") == "STREAM"}
        self.assertEqual(streamed, {("GET", "/library/export")})
        integration = body["paths"]["/library/export"]["get"]["x-amazon-apigateway-integration"]
        # InvokeWithResponseStreaming, not Invoke: a buffered invocation stops at 6 MB.
        self.assertTrue(integration["uri"]["Fn::Sub"].endswith(
            "/functions/${LibraryExportFunction.Arn}/response-streaming-invocations"), integration["uri"])
        self.assertEqual(streaming_functions(), {"LibraryExportFunction"})
        # Time for a large library at the stream's 2 MB/s, within Lambda's 15 minutes.
        self.assertGreaterEqual(RESOURCES["LibraryExportFunction"]["Properties"]["Timeout"], 120)


class Imports(unittest.TestCase):
    """Uploads go straight to a private bucket; its notifications reach the importer."""

    def bucket(self):
        return RESOURCES["UploadBucket"]["Properties"]

    def test_the_upload_bucket_is_private_encrypted_tls_only_and_emptied_daily(self):
        b = self.bucket()
        self.assertEqual(b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"],
                         {"SSEAlgorithm": "AES256"})
        self.assertTrue(all(b["PublicAccessBlockConfiguration"].values()))
        self.assertEqual(len(b["PublicAccessBlockConfiguration"]), 4)
        (rule,) = b["LifecycleConfiguration"]["Rules"]
        self.assertEqual((rule["Status"], rule["ExpirationInDays"]), ("Enabled", 1))
        (deny,) = RESOURCES["UploadBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual((deny["Effect"], deny["Action"]), ("Deny", "s3:*"))
        self.assertEqual(deny["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
        self.assertEqual(cfn.ref_name(RESOURCES["UploadBucketPolicy"]["Properties"]["Bucket"]), "UploadBucket")

    def test_browsers_upload_from_the_allowed_origin_only(self):
        cors = self.bucket()["CorsConfiguration"]["Fn::If"]
        self.assertEqual(cors[0], "HasAllowedOrigins")
        (rule,) = cors[1]["CorsRules"]
        self.assertEqual((rule["AllowedMethods"], rule["AllowedOrigins"]), (["PUT"], [{"Ref": "AllowedOrigins"}]))
        self.assertEqual(cors[2], {"Ref": "AWS::NoValue"})

    def test_every_upload_is_announced_on_the_imports_queue_with_its_dlq(self):
        (notification,) = self.bucket()["NotificationConfiguration"]["QueueConfigurations"]
        self.assertEqual(notification["Event"], "s3:ObjectCreated:*")
        self.assertEqual(cfn.ref_name(notification["Queue"]), "ImportsQueue")
        self.assertEqual(notification["Filter"]["S3Key"]["Rules"], [{"Name": "prefix", "Value": "imports/"}])
        # The bucket is made after the policy that lets S3 send, or the notification fails.
        self.assertIn("ImportsQueuePolicy", RESOURCES["UploadBucket"]["DependsOn"])
        (allow,) = RESOURCES["ImportsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual((allow["Principal"], allow["Action"]), ({"Service": "s3.amazonaws.com"}, "sqs:SendMessage"))
        self.assertEqual(allow["Condition"]["StringEquals"], {"aws:SourceAccount": {"Ref": "AWS::AccountId"}})
        queue = RESOURCES["ImportsQueue"]["Properties"]
        self.assertEqual(cfn.ref_name(queue["RedrivePolicy"]["deadLetterTargetArn"]), "ImportsDeadLetterQueue")
        # Never handed to a second importer while the first still works on it.
        self.assertGreater(queue["VisibilityTimeout"], RESOURCES["ImportWorkerFunction"]["Properties"]["Timeout"])
        alarms = {cfn.ref_name(d["Value"]) for a in cfn.resources_of(DOC, "AWS::CloudWatch::Alarm").values()
                  for d in a["Properties"].get("Dimensions", [])}
        self.assertLessEqual({"ImportsDeadLetterQueue", "ImportWorkerFunction"}, alarms)

    def test_only_the_importer_reads_uploads_and_only_imports_create_signs_them(self):
        for name, perms in function_permissions().items():
            s3 = [s for s in perms["statements"] if " s3:" in s or ",s3:" in s]
            expected = {
                "ImportsCreateFunction": ["Allow s3:PutObject on UploadBucket/imports/*"],
                "ImportWorkerFunction": ["Allow s3:DeleteObject,s3:GetObject on UploadBucket/imports/*"],
            }.get(name, [])
            self.assertEqual(s3, expected, name)


class Webhooks(unittest.TestCase):
    """Deliveries leave the VPC through one function that reaches no database; the secrets'
    key is read by the two functions that seal and open; every queue has its DLQ and alarm."""

    def test_only_the_sender_is_outside_the_vpc_and_it_can_only_report(self):
        sender = RESOURCES["WebhookSenderFunction"]["Properties"]
        self.assertNotIn("VpcConfig", sender)
        perms = function_permissions()["WebhookSenderFunction"]
        self.assertEqual(perms["statements"], ["Allow sqs:SendMessage* on WebhookResultsQueue"])
        self.assertNotIn("DatabaseConnectPolicy", perms["managed"])
        for name in ("WebhookDispatchFunction", "WebhookRecorderFunction", "WebhooksCreateFunction"):
            self.assertIn("VpcConfig", RESOURCES[name]["Properties"], name)

    def test_the_sealing_key_is_read_by_the_sealer_and_the_dispatcher_only(self):
        readers = {name for name, perms in function_permissions().items()
                   if "Allow secretsmanager:GetSecretValue on WebhookKeySecret" in perms["statements"]}
        self.assertEqual(readers, {"WebhooksCreateFunction", "WebhookDispatchFunction"})
        key = RESOURCES["WebhookKeySecret"]["Properties"]["GenerateSecretString"]
        self.assertGreaterEqual(key["PasswordLength"], 32)

    def test_each_queue_has_its_dlq_an_alarm_and_outlasts_its_consumer(self):
        alarms = {cfn.ref_name(d["Value"]) for a in cfn.resources_of(DOC, "AWS::CloudWatch::Alarm").values()
                  for d in a["Properties"].get("Dimensions", [])}
        for queue, dlq, consumer in (("WebhooksQueue", "WebhooksDeadLetterQueue", "WebhookSenderFunction"),
                                     ("WebhookResultsQueue", "WebhookResultsDeadLetterQueue", "WebhookRecorderFunction")):
            props = RESOURCES[queue]["Properties"]
            self.assertEqual(cfn.ref_name(props["RedrivePolicy"]["deadLetterTargetArn"]), dlq)
            self.assertGreater(props["VisibilityTimeout"], RESOURCES[consumer]["Properties"]["Timeout"], queue)
            self.assertIn(dlq, alarms)
        self.assertIn("WebhookDispatchFunction", alarms)

    def test_the_dispatcher_runs_one_at_a_time_and_ends_before_the_next_minute(self):
        props = RESOURCES["WebhookDispatchFunction"]["Properties"]
        self.assertEqual(props["ReservedConcurrentExecutions"], 1)
        run = int(props["Environment"]["Variables"]["WEBHOOK_DISPATCH_SECONDS"])
        self.assertLess(run + 2, props["Timeout"])
        self.assertLessEqual(props["Timeout"], 60)


class DataSafety(unittest.TestCase):
    def test_stateful_resources_survive_deletion(self):
        for kind in ("AWS::SecretsManager::Secret", "AWS::SQS::Queue"):
            for name, r in cfn.resources_of(DOC, kind).items():
                self.assertEqual(r.get("DeletionPolicy"), "Retain", name)
                self.assertEqual(r.get("UpdateReplacePolicy"), "Retain", name)
        db = RESOURCES["Database"]
        self.assertEqual(db["DeletionPolicy"], "Snapshot")
        self.assertEqual(db["Properties"]["DeletionProtection"], {"Ref": "DatabaseDeletionProtection"})
        self.assertEqual(DOC["Parameters"]["DatabaseDeletionProtection"]["Default"], "true")

    def test_the_engine_version_cannot_drift_from_the_template(self):
        props = RESOURCES["Database"]["Properties"]
        pinned_minor = re.fullmatch(r"\d+\.\d+", props["EngineVersion"]) is not None
        # A pinned minor and automatic minor upgrades drift apart; one of the two must go.
        self.assertFalse(pinned_minor and props.get("AutoMinorVersionUpgrade", True), props["EngineVersion"])
        self.assertTrue(props["StorageEncrypted"])


class Network(unittest.TestCase):
    def test_nothing_in_the_vpc_reaches_the_internet(self):
        for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway",
                     "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::Route"):
            self.assertEqual(cfn.resources_of(DOC, kind), {}, kind)
        services = {json.dumps(r["Properties"]["ServiceName"]) for r in cfn.resources_of(DOC, "AWS::EC2::VPCEndpoint").values()}
        self.assertEqual(services, {json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}.sqs"}),
                                    json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}.secretsmanager"}),
                                    json.dumps({"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"})})

    def test_only_the_functions_reach_the_proxy_and_only_the_proxy_the_database(self):
        def ingress(group):
            return RESOURCES[group]["Properties"].get("SecurityGroupIngress", [])
        (proxy,) = ingress("ProxySecurityGroup")
        self.assertEqual((proxy["FromPort"], proxy["ToPort"]), (5432, 5432))
        self.assertEqual(cfn.ref_name(proxy["SourceSecurityGroupId"]), "FunctionSecurityGroup")
        (database,) = ingress("DatabaseSecurityGroup")
        self.assertEqual((database["FromPort"], database["ToPort"]), (5432, 5432))
        self.assertEqual(cfn.ref_name(database["SourceSecurityGroupId"]), "ProxySecurityGroup")
        self.assertEqual(ingress("FunctionSecurityGroup"), [])
        db = RESOURCES["Database"]["Properties"]
        self.assertFalse(db["PubliclyAccessible"])
        self.assertEqual([cfn.ref_name(g) for g in db["VPCSecurityGroups"]], ["DatabaseSecurityGroup"])

    def test_database_credentials_are_generated_never_written_and_the_master_password_rotates(self):
        db = RESOURCES["Database"]["Properties"]
        # RDS generates the master password, keeps it in its own secret and rotates it
        # (every 7 days); the template never holds it.
        self.assertIs(db["ManageMasterUserPassword"], True)
        self.assertNotIn("MasterUserPassword", db)
        self.assertIn("GenerateSecretString", RESOURCES["AppDatabaseSecret"]["Properties"])


class Operations(unittest.TestCase):
    def test_every_alarm_notifies_the_topic(self):
        alarms = cfn.resources_of(DOC, "AWS::CloudWatch::Alarm")
        self.assertGreaterEqual(len(alarms), 5)
        for name, alarm in alarms.items():
            self.assertEqual(alarm["Properties"].get("AlarmActions"), [{"Ref": "AlarmTopic"}], name)
        sub = RESOURCES["AlarmEmailSubscription"]
        self.assertEqual(sub["Condition"], "HasAlarmEmail")
        self.assertEqual(sub["Properties"]["Endpoint"], {"Ref": "AlarmEmail"})
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key.
        self.assertNotEqual(RESOURCES["AlarmTopic"]["Properties"].get("KmsMasterKeyId"), "alias/aws/sns")

    def test_no_alarm_counts_refused_tokens(self):
        # A Lambda authorizer's "Unauthorized" is a function error: the Errors metric of
        # the authorizer fires on every bad token.
        for name, alarm in cfn.resources_of(DOC, "AWS::CloudWatch::Alarm").items():
            props = alarm["Properties"]
            dims = {cfn.ref_name(d["Value"]) for d in props.get("Dimensions", [])}
            self.assertFalse(props["MetricName"] == "Errors" and "AuthorizerFunction" in dims, name)
        alarm = RESOURCES["AuthorizerFailuresAlarm"]["Properties"]
        self.assertEqual(alarm["MetricName"], "AuthorizerFailures")
        self.assertEqual(alarm["Namespace"], {"Fn::Sub": "Bookshelf/${AWS::StackName}"})
        env = RESOURCES["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["METRICS_NAMESPACE"], alarm["Namespace"])

    def test_a_stall_raises_an_alarm(self):
        alarms = cfn.resources_of(DOC, "AWS::CloudWatch::Alarm")

        def watched(metric, target):
            return [n for n, a in alarms.items() if a["Properties"]["MetricName"] == metric
                    and target in {cfn.ref_name(d["Value"]) for d in a["Properties"].get("Dimensions", [])}]

        for metric, target in [
            ("ApproximateAgeOfOldestMessage", "OrdersQueue"),
            ("ApproximateAgeOfOldestMessage", "ActivitiesQueue"),
            ("Errors", "OrderProcessorFunction"),
            ("Errors", "FeedFanoutFunction"),
            ("CPUUtilization", "Database"),
            ("FreeStorageSpace", "Database"),
            ("DatabaseConnections", "Database"),
            ("DatabaseConnectionsBorrowLatency", "DatabaseProxy"),
            ("DatabaseConnectionsCurrentlySessionPinned", "DatabaseProxy"),
        ]:
            self.assertTrue(watched(metric, target), f"no alarm on {metric} of {target}")
        # Storage grows by itself; the alarm says when it is running out anyway.
        self.assertGreater(RESOURCES["Database"]["Properties"]["MaxAllocatedStorage"],
                           int(RESOURCES["Database"]["Properties"]["AllocatedStorage"]))

    def test_access_logs_carry_latencies_and_the_principal_and_traces_cross_the_queues(self):
        stage = RESOURCES[[n for n, r in RESOURCES.items() if r["Type"] == "AWS::ApiGateway::Stage"][0]]["Properties"]
        fields = json.loads(stage["AccessLogSetting"]["Format"])
        for variable in ["$context.authorizer.integrationLatency", "$context.integration.latency",
                         "$context.authorizer.principalId", "$context.responseLatency", "$context.xrayTraceId"]:
            self.assertIn(variable, fields.values())
        self.assertTrue(stage["TracingEnabled"])
        for name, fn in functions().items():
            self.assertEqual(fn["Properties"].get("TracingConfig"), {"Mode": "Active"}, name)

    def test_the_relay_alarm_watches_the_relay(self):
        alarm = RESOURCES["OutboxRelayErrorsAlarm"]["Properties"]
        self.assertEqual(alarm["MetricName"], "Errors")
        self.assertEqual([cfn.ref_name(d["Value"]) for d in alarm["Dimensions"]], ["OutboxRelayFunction"])


def code_metrics():
    """The metric names the code emits (libs/config/src/metrics.rs, its ALL list)."""
    source = (cfn.ROOT / "libs/config/src/metrics.rs").read_text()
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([A-Za-z]+)";', source))
    listed = re.search(r"pub const ALL: &\[&str\] = &\[(.*?)\];", source, re.S).group(1)
    names = {consts[c] for c in re.findall(r"[A-Z_]+", listed)}
    reasons = set(re.findall(r'"([A-Za-z]+)"', re.search(r"REFUSAL_REASONS: &\[&str\] = &\[(.*?)\];", source).group(1)))
    return names, reasons


def dashboard():
    """The dashboard's widgets, with its substitutions filled in with their names."""
    body = RESOURCES["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text, variables = body if isinstance(body, list) else (body, {})
    filled = re.sub(r"\$\{([^}]+)\}", lambda m: f"<{m.group(1)}>", text)
    return json.loads(filled)["widgets"], variables


class Observability(unittest.TestCase):
    def test_the_dashboard_shows_every_metric_the_code_emits_and_no_other(self):
        names, reasons = code_metrics()
        widgets, variables = dashboard()
        shown, shown_reasons, aws = set(), set(), set()
        for w in widgets:
            for metric in w["properties"]["metrics"]:
                parts = [p for p in metric if isinstance(p, str)]
                if not parts:
                    aws.add(metric[0]["expression"].split("MetricName=")[1].split()[0].strip('"\\'))
                elif parts[0] == "<Namespace>":
                    shown.add(parts[1])
                    if len(parts) == 4:
                        self.assertEqual(parts[2], "Reason")
                        shown_reasons.add(parts[3])
                else:
                    aws.add(f"{parts[0]} {parts[1]}")
        self.assertEqual(shown, names)
        self.assertEqual(shown_reasons, reasons)
        self.assertEqual(variables["Namespace"], {"Fn::Sub": "Bookshelf/${AWS::StackName}"})
        for expected in ["AWS/ApiGateway Latency", "AWS/ApiGateway 5XXError", "Errors", "Throttles",
                         "AWS/SQS ApproximateNumberOfMessagesVisible"]:
            self.assertIn(expected, aws)
        self.assertEqual(variables["DeadLetterQueue"], {"Fn::GetAtt": ["OrdersDeadLetterQueue", "QueueName"]})
        self.assertEqual(variables["ApiName"], RESOURCES["BookshelfApi"]["Properties"]["Name"])

    def test_alarms_on_our_namespace_name_metrics_the_code_emits(self):
        names, _ = code_metrics()
        ours = 0
        for name, alarm in cfn.resources_of(DOC, "AWS::CloudWatch::Alarm").items():
            props = alarm["Properties"]
            if props["Namespace"] == {"Fn::Sub": "Bookshelf/${AWS::StackName}"}:
                ours += 1
                self.assertIn(props["MetricName"], names, name)
        self.assertGreaterEqual(ours, 2)


if __name__ == "__main__":
    unittest.main()
