"""The IAM policies in deploy/iam/ allow exactly the AWS calls the code makes: no more, no less.

The calls are read from the code itself: every AWS adapter module is parsed with `ast` and its boto3 client
calls are collected (`client.put_item(...)`, a method passed on as `client.query`, `get_paginator("query")`,
`get_waiter("table_exists")`, a dispatcher's `_call("send_bulk_email")`); botocore's service models turn
each snake_case method into its operation, and the operation into its IAM action(s) (`ACTIONS` holds the
ones whose action is not `<prefix>:<Operation>`: S3's, DynamoDB's transactions, STS's identity call). Calls
that libraries make for us where we configure them (polars scanning an asset in S3, dagster-aws's compute
log manager, Redshift writing UNLOAD output with the role we name) are listed in `DELEGATED` or parsed from
the library's own source. Each module's calls belong to one policy per service (`SOURCES`); a policy must
allow the union of its modules' actions, and nothing else.

When this test fails after a new AWS call: add the module to `SOURCES` (or its action to the policy it
names); after a call is removed, drop the action the failure names from the policy."""
from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
IAM = ROOT / "deploy" / "iam"

# botocore service -> the IAM prefix of its actions (the service name itself when absent).
PREFIX = {"sesv2": "ses", "sagemaker-runtime": "sagemaker", "stepfunctions": "states"}

# Operations whose IAM actions are not `<prefix>:<OperationName>`. An empty set: no permission is checked.
ACTIONS: dict[tuple[str, str], set[str]] = {
    ("s3", "ListObjectsV2"): {"s3:ListBucket"},
    ("s3", "ListObjects"): {"s3:ListBucket"},
    ("s3", "HeadBucket"): {"s3:ListBucket"},
    ("s3", "HeadObject"): {"s3:GetObject"},
    ("s3", "CopyObject"): {"s3:GetObject", "s3:PutObject"},
    ("s3", "UploadPartCopy"): {"s3:GetObject", "s3:PutObject"},
    ("s3", "DeleteObjects"): {"s3:DeleteObject"},
    ("s3", "CreateMultipartUpload"): {"s3:PutObject"},
    ("s3", "UploadPart"): {"s3:PutObject"},
    ("s3", "CompleteMultipartUpload"): {"s3:PutObject"},
    ("s3", "ListObjectVersions"): {"s3:ListBucketVersions"},
    ("s3", "ListMultipartUploads"): {"s3:ListBucketMultipartUploads"},
    ("s3", "ListParts"): {"s3:ListMultipartUploadParts"},
    # A transaction is authorized item by item: the item kinds the module builds (TRANSACT_KINDS) count.
    ("dynamodb", "TransactWriteItems"): set(),
    ("dynamodb", "TransactGetItems"): {"dynamodb:GetItem"},
    ("dynamodb", "ExecuteStatement"): {"dynamodb:PartiQLSelect"},
    # Always allowed, whatever the policies say.
    ("sts", "GetCallerIdentity"): set(),
    # Creating a model hands SageMaker its execution role.
    ("sagemaker", "CreateModel"): {"sagemaker:CreateModel", "iam:PassRole"},
    ("sqs", "DeleteMessageBatch"): {"sqs:DeleteMessage"},
    ("sqs", "SendMessageBatch"): {"sqs:SendMessage"},
    ("sqs", "ChangeMessageVisibilityBatch"): {"sqs:ChangeMessageVisibility"},
    ("sns", "PublishBatch"): {"sns:Publish"},
    # SNS publishing to a topic encrypted with a KMS key also needs kms:GenerateDataKey/Decrypt on the
    # key, which is no call of ours: left to the template that creates the topic.
}
# The item kinds of a DynamoDB transaction and the action each is authorized by.
TRANSACT_KINDS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                  "ConditionCheck": "dynamodb:ConditionCheckItem"}
# boto3's managed S3 methods (s3transfer, presigning): no operation of the model, the actions they need.
S3_MANAGED = {"upload_file": {"s3:PutObject", "s3:AbortMultipartUpload"},
              "upload_fileobj": {"s3:PutObject", "s3:AbortMultipartUpload"},
              "download_file": {"s3:GetObject"}, "download_fileobj": {"s3:GetObject"},
              "copy": {"s3:GetObject", "s3:PutObject"}}

# Policies (deploy/iam/<name>.json) of the components' roles.
IO_S3, COMPUTE_LOGS = "io-manager-and-lake-s3", "compute-logs-s3"
GLUE, DYNAMODB, SES, EVENTS = "lake-glue", "dynamodb-tables", "email-ses", "events-eventbridge"
CLOUDWATCH, SCORER, WAREHOUSE, UNLOAD_ROLE = ("metrics-cloudwatch", "scorer-sagemaker", "warehouse-redshift",
                                              "redshift-unload-role")
DEPLOYER, LAUNCHER, ALERTS = "model-deployer-sagemaker", "run-launcher-ecs", "alerts-sns"
LINK_KEYS = "link-keys-secretsmanager"

# Module (path from the repository root, a glob, or `pkg:` + a library module) -> {boto3 service: policy}.
# A service mapped to None makes calls that need no permission (sts:GetCallerIdentity).
SOURCES: dict[str, dict[str, str | None]] = {
    "music_feedback/io/s3_io_manager.py": {"s3": IO_S3},
    "music_feedback/lake/s3.py": {"s3": IO_S3, "glue": GLUE},
    "music_feedback/scoring/registry/s3.py": {"s3": IO_S3},
    "music_feedback/warehouse/unload.py": {"s3": WAREHOUSE},
    "music_feedback/warehouse/redshift_warehouse.py": {"redshift": WAREHOUSE, "redshift-data": WAREHOUSE},
    "music_feedback/scoring/sagemaker_scorer.py": {"sagemaker-runtime": SCORER},
    "music_feedback/scoring/cache/dynamodb_cache.py": {"dynamodb": DYNAMODB},
    "music_feedback/store/dynamodb/*.py": {"dynamodb": DYNAMODB},
    "music_feedback/feedback/dynamodb/*.py": {"dynamodb": DYNAMODB},
    "music_feedback/playlists/dynamodb.py": {"dynamodb": DYNAMODB},
    "music_feedback/scoring/deployment/sagemaker.py": {"sagemaker": DEPLOYER},
    # The sender reconciles unknown sends from the configuration set's events queue.
    "music_feedback/delivery/email/ses.py": {"sesv2": SES, "sqs": SES},
    "music_feedback/feedback/events.py": {"events": EVENTS},
    "music_feedback/metrics/sink.py": {"cloudwatch": CLOUDWATCH},
    # The run-failure sensor publishes: sensors evaluate in the code server.
    "music_feedback/alerts/sns.py": {"sns": ALERTS},
    # Delivery signs the links, the service verifies them: both read the keys.
    "music_feedback/delivery/link_secret.py": {"secretsmanager": LINK_KEYS},
    "music_feedback/aws/preflight.py": {"sts": None, "s3": IO_S3, "glue": GLUE, "dynamodb": DYNAMODB,
                                        "events": EVENTS, "cloudwatch": CLOUDWATCH, "sagemaker": SCORER,
                                        "sesv2": SES, "sns": ALERTS},
    # deploy/dagster.yaml's compute_logs: run tasks write the steps' logs, the webserver reads them.
    "pkg:dagster_aws.s3.compute_log_manager": {"s3": COMPUTE_LOGS},
}
# Modules that make or touch boto3 clients but whose calls no component role makes.
NOT_A_COMPONENT = {
    "music_feedback/aws/provision.py": "`music-feedback aws provision`: an operator's command, run with the "
                                       "operator's own credentials (or on the local stand-ins)",
    "music_feedback/aws/timing.py": "wraps botocore's call path to time calls; makes none",
    "music_feedback/feedback/dynamodb/codec.py": "boto3's type (de)serializer only",
    "music_feedback/feedback/dynamodb/migrate.py": "a one-off migration an operator runs "
                                                   "(python -m music_feedback.feedback.dynamodb.migrate)",
}
# Functions whose calls create tables: `music-feedback store create-table` and `aws provision` run them
# with the operator's credentials, never a component role.
PROVISIONING = {("music_feedback/store/dynamodb/table.py", "create_table"),
                ("music_feedback/feedback/dynamodb/table.py", "create_table"),
                ("music_feedback/feedback/dynamodb/store.py", "create_tables"),
                ("music_feedback/playlists/dynamodb.py", "create_table"),
                ("music_feedback/scoring/cache/dynamodb_cache.py", "ensure_table")}
# Calls a library or a service makes for us, where our code configures it: (module, function, a fragment
# of the function's source that shows the delegation still happens, policy, actions, why).
DELEGATED = [
    ("music_feedback/io/s3_io_manager.py", "_scan", "pl.scan_parquet(", IO_S3, {"s3:GetObject"},
     "polars (object_store) scans one asset object in place: HEAD and ranged GETs of that key"),
    ("music_feedback/warehouse/unload.py", "unload_statement", "IAM_ROLE", UNLOAD_ROLE,
     {"s3:PutObject", "s3:AbortMultipartUpload"},
     "Redshift, as the role UNLOAD names, writes every slice's Parquet files and the manifest (multipart)"),
]
# dagster-aws's EcsRunLauncher (deploy/dagster.yaml) runs on the webserver and the daemon: which calls it makes
# depends on its configuration (secrets, the current task's definition), so run-launcher-ecs.json's actions
# are checked by music_feedback_tests/test_ecs_launch.py, which launches a run; here only its resources.

# Actions AWS cannot scope to a resource: the only ones a statement may grant on "*".
UNSCOPED = {"sts:GetCallerIdentity", "ses:GetAccount", "cloudwatch:PutMetricData", "cloudwatch:ListMetrics",
            "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:ListAccountSettings",
            "secretsmanager:ListSecrets", "ec2:DescribeNetworkInterfaces", "sagemaker:ListEndpoints",
            "sns:ListTopics", "secretsmanager:GetRandomPassword"}


@lru_cache(maxsize=None)
def _session():
    return botocore.session.get_session()


@lru_cache(maxsize=None)
def _ops(service: str) -> dict[str, str]:
    """snake_case method -> operation name."""
    return {xform_name(op): op for op in _session().get_service_model(service).operation_names}


@lru_cache(maxsize=None)
def _waiters(service: str) -> dict[str, str]:
    """snake_case waiter name -> the operation it polls."""
    try:
        model = _session().get_waiter_model(service)
    except Exception:  # the service has no waiters
        return {}
    return {xform_name(name): model.get_waiter(name).operation for name in model.waiter_names}


def actions_of(service: str, op: str) -> set[str]:
    return set(ACTIONS.get((service, op), {f"{PREFIX.get(service, service)}:{op}"}))


def _resolve(pattern: str) -> list[tuple[str, Path]]:
    """(name as reported, file) of a SOURCES key."""
    if pattern.startswith("pkg:"):
        spec = importlib.util.find_spec(pattern[4:])
        assert spec and spec.origin, f"{pattern}: the library module is gone: update SOURCES"
        return [(pattern[4:].replace(".", "/") + ".py", Path(spec.origin))]
    files = sorted(ROOT.glob(pattern))
    assert files, f"{pattern} (SOURCES) matches no file: update the mapping"
    return [(str(f.relative_to(ROOT)), f) for f in files if str(f.relative_to(ROOT)) not in NOT_A_COMPONENT]


class _Calls(ast.NodeVisitor):
    """The (service, operation or action, line) of every AWS call in one module."""

    def __init__(self, name: str, services: list[str]):
        self.name, self.services, self.stack, self.found = name, services, [], []

    def visit_FunctionDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _skip(self) -> bool:
        return any((self.name, f) in PROVISIONING for f in self.stack)

    def _add(self, service: str, actions: set[str], line: int, what: str) -> None:
        if not self._skip():
            self.found.append((service, frozenset(actions), line, what))

    def visit_Attribute(self, node):
        attr = node.attr
        # `_client("sesv2", s).get_account`: the receiver names its service.
        named = None
        if isinstance(node.value, ast.Call) and node.value.args and isinstance(node.value.args[0], ast.Constant):
            named = node.value.args[0].value if node.value.args[0].value in self.services else None
        for service in [named] if named else self.services:
            if attr in _ops(service):
                op = _ops(service)[attr]
                self._add(service, actions_of(service, op), node.lineno, op)
            elif service == "s3" and attr in S3_MANAGED:
                self._add(service, S3_MANAGED[attr], node.lineno, attr)
        self.generic_visit(node)

    def visit_Call(self, node):
        # SageMaker authorizes the tags of a Create* call separately (sagemaker:AddTags), also when the
        # method is handed to a helper that passes the keywords on: `_call("CreateModel", sm.create_model, Tags=...)`.
        if "sagemaker" in self.services and any(k.arg == "Tags" for k in node.keywords):
            targets = [node.func, *node.args]
            if any(isinstance(t, ast.Attribute) and t.attr.startswith("create_") and t.attr in _ops("sagemaker")
                   for t in targets):
                self._add("sagemaker", {"sagemaker:AddTags"}, node.lineno, "Tags= on a Create call")
        first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if isinstance(first, str):
            for service in self.services:
                op = None
                if func == "get_waiter":
                    op = _waiters(service).get(first)
                elif first in _ops(service):  # get_paginator("query"), _call("send_bulk_email"), presigning
                    op = _ops(service)[first]
                if op:
                    self._add(service, actions_of(service, op), node.lineno, f"{func}({first!r})")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if "dynamodb" in self.services and node.value in TRANSACT_KINDS:
            self._add("dynamodb", {TRANSACT_KINDS[node.value]}, node.lineno, f"a {node.value} transaction item")


def _collect(sources: dict[str, dict[str, str | None]]) -> dict[str, dict[str, list[str]]]:
    """policy -> action -> the module:line places that need it."""
    need: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pattern, by_service in sources.items():
        for name, path in _resolve(pattern):
            visitor = _Calls(name, list(by_service))
            visitor.visit(ast.parse(path.read_text()))
            for service, actions, line, what in visitor.found:
                policy = by_service[service]
                for action in actions:
                    if policy is not None:
                        need[policy][action].append(f"{name}:{line} ({what})")
    return need


@lru_cache(maxsize=None)
def required() -> dict[str, dict[str, list[str]]]:
    need = _collect(SOURCES)
    for module, function, marker, policy, actions, why in DELEGATED:
        tree = ast.parse((ROOT / module).read_text())
        fn = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name == function), None)
        assert fn is not None and marker in ast.get_source_segment((ROOT / module).read_text(), fn), (
            f"{module}:{function} no longer delegates ({marker!r}): update DELEGATED")
        for action in actions:
            need[policy][action].append(f"{module}:{fn.lineno} ({why})")
    return need


def granted(name: str) -> dict[str, list[str]]:
    """action -> the Sids of the statements of deploy/iam/<name>.json that allow it."""
    out: dict[str, list[str]] = defaultdict(list)
    for st in _statements(name):
        for action in _list(st["Action"]):
            out[action].append(st.get("Sid", "?"))
    return out


def _statements(name: str) -> list[dict]:
    return json.loads((IAM / f"{name}.json").read_text())["Statement"]


def _list(v) -> list:
    return v if isinstance(v, list) else [v]


def _policies() -> set[str]:
    return ({p for by in SOURCES.values() for p in by.values() if p} | {d[3] for d in DELEGATED} | {LAUNCHER})


def test_every_aws_module_is_mapped_to_a_policy():
    """A module that makes a boto3 client, or calls one handed to it, runs under some component's role."""
    mapped = {name for pattern in SOURCES if not pattern.startswith("pkg:") for name, _ in _resolve(pattern)}
    ours = {f.name for f in ROOT.joinpath("music_feedback").rglob("*.py")}
    defined = set()  # our own functions, whose names may equal an operation's (create_table, delete_registry)
    for f in ROOT.joinpath("music_feedback").rglob("*.py"):
        defined |= {n.name for n in ast.walk(ast.parse(f.read_text()))
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    distinctive = set()
    for service in ("s3", "dynamodb", "glue", "sesv2", "sagemaker", "sagemaker-runtime", "events", "cloudwatch",
                    "redshift", "redshift-data", "secretsmanager", "sns", "sqs", "ecs", "ec2", "sts", "logs",
                    "kms", "lambda", "athena", "kinesis", "firehose", "ssm", "iam", "ecr", "scheduler"):
        distinctive |= {m for m in _ops(service) if "_" in m}
    distinctive -= defined | {"create_connection"}  # socket.create_connection
    unmapped = []
    for f in sorted(ROOT.joinpath("music_feedback").rglob("*.py")):
        rel = str(f.relative_to(ROOT))
        if rel in mapped or rel in NOT_A_COMPONENT:
            continue
        src = f.read_text()
        makes = re.search(r"boto3\.(client|resource|session)|\.client\(\s*[\"'][a-z0-9-]+[\"']", src)
        calls = sorted({n.attr for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Attribute)
                        and n.attr in distinctive})
        if makes or calls:
            unmapped.append(f"{rel}: {'makes a boto3 client' if makes else 'calls ' + ', '.join(calls)}")
    assert not unmapped, ("AWS calls in modules test_iam_policies.SOURCES does not map to a policy (add each "
                          "with its services and the policy of the role that runs it):\n  " + "\n  ".join(unmapped))
    assert ours  # the package was found


def test_each_policy_file_belongs_to_a_component():
    files = {p.stem for p in IAM.glob("*.json")}
    assert files == _policies(), (
        f"deploy/iam/ holds {sorted(files - _policies())} that no code uses; lacks {sorted(_policies() - files)}")


def test_each_mapped_module_names_every_service_it_calls():
    """A client of a service its SOURCES entry does not list would go unaudited."""
    unlisted = []
    for pattern, by_service in SOURCES.items():
        for name, path in _resolve(pattern):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("client", "resource") and node.args
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                        and node.args[0].value in _session().get_available_services()
                        and node.args[0].value not in by_service):
                    unlisted.append(f"{name}:{node.lineno}: a {node.args[0].value} client")
    assert not unlisted, "add these services to the module's SOURCES entry:\n" + "\n".join(unlisted)


@pytest.mark.parametrize("policy", sorted(_policies() - {LAUNCHER}))
def test_the_policy_allows_every_call_its_modules_make(policy):
    have = granted(policy)
    missing = [f"{where}: needs {action}, which deploy/iam/{policy}.json does not allow"
               for action, places in sorted(required()[policy].items()) if action not in have
               for where in places]
    assert not missing, "\n".join(missing)


# The DynamoDB table each module works on (the ${...} of its ARN): an action must be granted on that
# table, not on another table's statement. The preflight checks every table and is left out.
TABLE_OF = {"music_feedback/store/dynamodb/": "${CandidatesTable}", "music_feedback/feedback/dynamodb/": "${FeedbackTable}",
            "music_feedback/scoring/cache/dynamodb_cache.py": "${ScoreCacheTable}",
            "music_feedback/playlists/dynamodb.py": "${PlaylistsTable}"}


def test_each_dynamodb_call_is_granted_on_its_own_table():
    statements = _statements(DYNAMODB)
    wrong = []
    for action, places in sorted(required()[DYNAMODB].items()):
        for where in places:
            table = next((t for prefix, t in TABLE_OF.items() if where.startswith(prefix)), None)
            if table is None:
                assert where.startswith("music_feedback/aws/preflight.py"), f"{where}: add its table to TABLE_OF"
                continue
            if not any(action in _list(st["Action"]) and any(r.endswith("table/" + table) or
                       (action == "dynamodb:Query" and "table/" + table + "/index/" in r)
                       for r in _list(st["Resource"])) for st in statements):
                wrong.append(f"{where}: {action} is not granted on {table}")
    assert not wrong, f"deploy/iam/{DYNAMODB}.json:\n" + "\n".join(wrong)


@pytest.mark.parametrize("policy", sorted(_policies() - {LAUNCHER}))
def test_the_policy_allows_nothing_more(policy):
    need = required()[policy]
    extra = [f"deploy/iam/{policy}.json, statement {sid}: {action} is called by no module mapped to it"
             for action, sids in sorted(granted(policy).items()) if action not in need for sid in sids]
    assert not extra, "\n".join(extra)


@pytest.mark.parametrize("policy", sorted(_policies()))
def test_resources_are_least_privilege(policy):
    """No statement grants "*" but the actions AWS cannot scope; objects are granted per prefix, never the
    whole bucket; every ARN is the deployment's (its ${...} parameters), not an account's literal."""
    problems = []
    for st in _statements(policy):
        sid, actions, resources = st.get("Sid", "?"), set(_list(st["Action"])), _list(st["Resource"])
        if "*" in resources and not actions <= UNSCOPED:
            problems.append(f"{sid}: {sorted(actions - UNSCOPED)} on '*' (scope them to their resources)")
        for arn in resources:
            if arn != "*" and "${" not in arn:
                problems.append(f"{sid}: {arn} is a literal ARN: use the deployment's ${{...}} parameters")
            if re.fullmatch(r"arn:aws:s3:::\$\{\w+\}/\*", arn):
                problems.append(f"{sid}: {arn} is the whole bucket: name the prefix")
            if arn.startswith("arn:aws:s3:::") and "/" in arn and "s3:ListBucket" in actions:
                problems.append(f"{sid}: s3:ListBucket applies to the bucket ARN, not to {arn}")
    assert not problems, f"deploy/iam/{policy}.json:\n" + "\n".join(problems)


def test_the_sagemaker_documents_cover_every_programs_endpoint():
    """The scorer invokes, and the deployer moves, the endpoints the shipped programs name: each must match a
    resource of both documents (a new program's endpoint needs its prefix added there)."""
    from fnmatch import fnmatchcase

    from music_feedback.programs.loader import BUILTIN_DIR, load_program
    uncovered = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):  # the shipped programs, never a developer's folder
        for model in load_program(path).scoring_models:
            arn = f"arn:aws:sagemaker:${{Region}}:${{AccountId}}:endpoint/{model.endpoint_name.lower()}"
            for policy in (SCORER, DEPLOYER):
                if not any(fnmatchcase(arn, r) for st in _statements(policy) for r in _list(st["Resource"])):
                    uncovered.append(f"{path.name}: endpoint {model.endpoint_name} is in no resource of {policy}.json")
    assert not uncovered, "\n".join(uncovered)
