"""The template's compute around the data stores: the ECS cluster and its four services (Dagster webserver,
daemon, code location, HTTP feedback service; the daemon registers each run's task definition, see
deploy/dagster.yaml), the Application Load Balancer
in front of the service, the instance's PostgreSQL, the secrets, the SES configuration set and where its
delivery events go, the two SageMaker endpoints and a log group per component.

VPC-agnostic: the VPC, the subnets and the security groups are parameters (their rules are the platform's:
load balancer -> tasks 8080, tasks -> tasks 3000 and 4000, tasks -> database 5432)."""
from __future__ import annotations

from music_feedback.aws.stack_roles import component_roles, execution_role, model_role

CONTAINER = "music-feedback"  # deploy/dagster.yaml's run launcher container_name
NAMESPACE = "music-feedback.internal"
DAGSTER_HOME = "/opt/dagster/home"  # deploy/Dockerfile puts deploy/dagster.yaml there
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
DELETE = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
# Parameters only a deploy/iam/ document's placeholder uses: in the template while a document does.
PLACEHOLDER_ONLY = {"SenderDomain", "RedshiftClusterId"}
MODEL_DATA = r"^$|^s3://.+\.tar\.gz$"
DIGEST = r"^[^@\s]+@sha256:[0-9a-f]{64}$"
DIGEST_WHY = "an image pinned by digest: <registry>/<repository>@sha256:<64 hex digits>"


def _p(type_: str, description: str, default=None, **kw) -> dict:
    out = {"Type": type_, "Description": description, **kw}
    if default is not None:
        out["Default"] = default
    return out


def parameters() -> dict:
    return {
        "ImageUri": _p("String", "The code location's image (deploy/Dockerfile), pinned by digest: the webserver, "
                                 "daemon, code server, service and every run run it",
                       AllowedPattern=DIGEST, ConstraintDescription=DIGEST_WHY),
        "ModelImageUri": _p("String", "The model server's image (deploy/sagemaker/Dockerfile), pinned by digest",
                            AllowedPattern=DIGEST, ConstraintDescription=DIGEST_WHY),
        "VpcId": _p("AWS::EC2::VPC::Id", "The VPC of the tasks, the database and the load balancer"),
        "PrivateSubnetIds": _p("List<AWS::EC2::Subnet::Id>", "Subnets of the tasks and the database (two AZs at "
                                                            "least; reaching ECR, S3 and the AWS APIs)"),
        "PublicSubnetIds": _p("List<AWS::EC2::Subnet::Id>", "Subnets of the internet-facing load balancer"),
        "TaskSecurityGroupIds": _p("List<AWS::EC2::SecurityGroup::Id>",
                                   "Security groups of every task: 3000 and 4000 between tasks, 8080 from the "
                                   "load balancer, out to 5432 and 443"),
        "LoadBalancerSecurityGroupIds": _p("List<AWS::EC2::SecurityGroup::Id>",
                                           "Security groups of the load balancer: 443 and 80 in, 8080 to tasks"),
        "DatabaseSecurityGroupIds": _p("List<AWS::EC2::SecurityGroup::Id>",
                                       "Security groups of the PostgreSQL instance: 5432 from the tasks"),
        "CertificateArn": _p("String", "ACM certificate of the feedback service's host name (HTTPS listener)",
                             AllowedPattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$"),
        "PublicUrl": _p("String", "MUSIC_FEEDBACK_PUBLIC_URL: the https:// address the links in the mails point "
                                  "to (a DNS name for the load balancer)", AllowedPattern=r"^https://[^/\s]+.*$"),
        "SenderDomain": _p("String", "The SES identity (verified domain) the mails are sent from"),
        "SesConfigurationSetName": _p("String", "MUSIC_FEEDBACK_SES_CONFIGURATION_SET", "music-feedback"),
        "RedshiftHost": _p("String", "MUSIC_FEEDBACK_REDSHIFT_HOST"),
        "RedshiftPort": _p("Number", "MUSIC_FEEDBACK_REDSHIFT_PORT", 5439),
        "RedshiftDatabase": _p("String", "MUSIC_FEEDBACK_REDSHIFT_DATABASE", "dev"),
        "RedshiftUser": _p("String", "MUSIC_FEEDBACK_REDSHIFT_USER (its password: the music-feedback/redshift "
                                     "secret)", "music_feedback"),
        "RedshiftClusterId": _p("String", "The Redshift cluster's identifier (IAM: GetClusterCredentials)"),
        # Empty (the default): the first weekly retrain creates the endpoints (the model deployer). Set both to
        # serve existing model data from the start; the retrain moves the endpoints on from there.
        "AffinityModelDataUrl": _p("String", "s3:// model.tar.gz of music-affinity under the bucket's "
                                             "model-registry/, or empty", "", AllowedPattern=MODEL_DATA),
        "PropensityModelDataUrl": _p("String", "s3:// model.tar.gz of feedback-propensity under the bucket's "
                                               "model-registry/, or empty", "", AllowedPattern=MODEL_DATA),
        "AffinityEndpointName": _p("String", "scoringModels.endpoint of music-affinity in the program",
                                   "music-affinity-v2", AllowedPattern=r"^music-affinity-[A-Za-z0-9-]+$"),
        "PropensityEndpointName": _p("String", "scoringModels.endpoint of feedback-propensity in the program",
                                     "feedback-propensity-v3",
                                     AllowedPattern=r"^feedback-propensity-[A-Za-z0-9-]+$"),
        "EndpointInstanceType": _p("String", "Instance type of each SageMaker endpoint", "ml.m5.large"),
        "DatabaseInstanceClass": _p("String", "Instance class of the Dagster instance's PostgreSQL",
                                    "db.t4g.medium"),
        "ServiceDesiredCount": _p("Number", "Tasks of the HTTP feedback service", 2, MinValue=1),
        "LogRetentionDays": _p("Number", "Days each component's logs are kept", 90,
                               AllowedValues=[30, 60, 90, 180, 365]),
    }


LOGS = {"WebserverLogs": "webserver", "DaemonLogs": "daemon", "CodeServerLogs": "code-server",
        "ServiceLogs": "service", "RunLogs": "run"}
SECRETS = {  # logical id -> (name, what, how CloudFormation fills it)
    "LinkKeysSecret": ("music-feedback/link-keys", "MUSIC_FEEDBACK_LINK_KEYS_SECRET: {kid: key} signing links",
                       {"GenerateSecretString": {"SecretStringTemplate": "{}", "GenerateStringKey": "k1",
                                                 "PasswordLength": 48, "ExcludePunctuation": True}}),
    "ApiKeysSecret": ("music-feedback/api-keys", "MUSIC_FEEDBACK_API_KEYS: [{name, sha256, programs}]; "
                                                 "empty until put-secret-value", {"SecretString": "[]"}),
    "RedshiftSecret": ("music-feedback/redshift", "MUSIC_FEEDBACK_REDSHIFT_PASSWORD of RedshiftUser",
                       {"GenerateSecretString": {"PasswordLength": 32, "ExcludeCharacters": "\"'@/\\ "}}),
    "CursorSecret": ("music-feedback/cursor-secret", "MUSIC_FEEDBACK_CURSOR_SECRET: one for every service task",
                     {"GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True}}),
    "DatabaseSecret": ("music-feedback/dagster-db", "the Dagster instance's PostgreSQL login",
                       {"GenerateSecretString": {"SecretStringTemplate": "{\"username\": \"dagster\"}",
                                                 "GenerateStringKey": "password", "PasswordLength": 32,
                                                 "ExcludeCharacters": "\"'@/\\ "}}),
}


def _env(**values) -> list[dict]:
    return [{"Name": k, "Value": v} for k, v in sorted(values.items())]


def _common_env() -> dict:
    return {"AWS_REGION": {"Ref": "AWS::Region"}, "MUSIC_FEEDBACK_ENV": "aws",
            "MUSIC_FEEDBACK_S3_BUCKET": {"Ref": "BucketName"},
            "MUSIC_FEEDBACK_GLUE_DATABASE": {"Ref": "GlueDatabaseName"},
            "MUSIC_FEEDBACK_DYNAMODB_TABLE": {"Ref": "CandidatesTableName"},
            "MUSIC_FEEDBACK_SCORE_CACHE_TABLE": {"Ref": "ScoreCacheTableName"},
            "MUSIC_FEEDBACK_FEEDBACK_TABLE": {"Ref": "FeedbackTableName"},
            "MUSIC_FEEDBACK_PLAYLISTS_TABLE": {"Ref": "PlaylistsTableName"},
            "MUSIC_FEEDBACK_EVENT_BUS": {"Ref": "EventBusName"},
            "MUSIC_FEEDBACK_SES_CONFIGURATION_SET": {"Ref": "SesConfigurationSetName"},
            "MUSIC_FEEDBACK_PUBLIC_URL": {"Ref": "PublicUrl"},
            "MUSIC_FEEDBACK_LINK_KEYS_SECRET": {"Ref": "LinkKeysSecret"},
            "MUSIC_FEEDBACK_SES_EVENTS_QUEUE": {"Ref": "SesEventsQueue"}}


def _redshift_env() -> dict:
    return {"MUSIC_FEEDBACK_REDSHIFT_HOST": {"Ref": "RedshiftHost"},
            "MUSIC_FEEDBACK_REDSHIFT_PORT": {"Ref": "RedshiftPort"},
            "MUSIC_FEEDBACK_REDSHIFT_DATABASE": {"Ref": "RedshiftDatabase"},
            "MUSIC_FEEDBACK_REDSHIFT_USER": {"Ref": "RedshiftUser"}}


def _instance_env() -> dict:
    """What deploy/dagster.yaml reads in the webserver and the daemon: the storage, the cluster, and the run
    launcher's settings (the run role, execution role, log group, the secrets' ARNs), and every setting
    its `env_vars` copies into each run's task definition."""
    return {**_common_env(), **_redshift_env(),
            "DAGSTER_HOME": DAGSTER_HOME,
            "DAGSTER_PG_HOST": {"Fn::GetAtt": ["Database", "Endpoint.Address"]},
            "DAGSTER_PG_PORT": {"Fn::GetAtt": ["Database", "Endpoint.Port"]},
            "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_DB": "dagster",
            "DAGSTER_ECS_CLUSTER": {"Ref": "Cluster"},
            "MUSIC_FEEDBACK_CODE_HOST": f"code.{NAMESPACE}",
            "MUSIC_FEEDBACK_RUN_ROLE_ARN": {"Fn::GetAtt": ["RunRole", "Arn"]},
            "MUSIC_FEEDBACK_EXECUTION_ROLE_ARN": {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
            "MUSIC_FEEDBACK_RUN_LOG_GROUP": {"Ref": "RunLogs"},
            "DAGSTER_PG_PASSWORD_SECRET_ARN": {"Fn::Sub": "${DatabaseSecret}:password::"},
            "MUSIC_FEEDBACK_REDSHIFT_PASSWORD_SECRET_ARN": {"Ref": "RedshiftSecret"},
            "MUSIC_FEEDBACK_LINK_KEYS_SECRET_ARN": {"Ref": "LinkKeysSecret"},
            # the weekly retrain's model deployer
            "MUSIC_FEEDBACK_SAGEMAKER_IMAGE": {"Ref": "ModelImageUri"},
            "MUSIC_FEEDBACK_SAGEMAKER_ROLE_ARN": {"Fn::GetAtt": ["ModelRole", "Arn"]},
            "MUSIC_FEEDBACK_SAGEMAKER_INSTANCE_TYPE": {"Ref": "EndpointInstanceType"}}


def _secret(name: str, logical: str, key: str | None = None) -> dict:
    value = {"Ref": logical} if key is None else {"Fn::Sub": "${" + logical + "}:" + key + "::"}
    return {"Name": name, "ValueFrom": value}


PG_PASSWORD = _secret("DAGSTER_PG_PASSWORD", "DatabaseSecret", "password")
REDSHIFT_PASSWORD = _secret("MUSIC_FEEDBACK_REDSHIFT_PASSWORD", "RedshiftSecret")


def _task(family: str, role: str, logs: str, env: dict, secrets: list[dict], cpu: str, memory: str,
          command: list[str] | None = None, port: int | None = None, health: list[str] | None = None) -> dict:
    container = {"Name": CONTAINER, "Image": {"Ref": "ImageUri"}, "Essential": True,
                 "Environment": _env(**env), "Secrets": secrets,
                 "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                     "awslogs-group": {"Ref": logs}, "awslogs-region": {"Ref": "AWS::Region"},
                     "awslogs-stream-prefix": family}}}
    if command:
        container["Command"] = command
    if port:
        container["PortMappings"] = [{"ContainerPort": port, "Protocol": "tcp"}]
    if health:
        container["HealthCheck"] = {"Command": ["CMD", *health], "Interval": 30, "Timeout": 10, "Retries": 3,
                                    "StartPeriod": 120}
    return {"Type": "AWS::ECS::TaskDefinition", "Properties": {
        "Family": family, "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
        "Cpu": cpu, "Memory": memory, "RuntimePlatform": {"OperatingSystemFamily": "LINUX",
                                                          "CpuArchitecture": "X86_64"},
        "ExecutionRoleArn": {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
        "TaskRoleArn": {"Fn::GetAtt": [role, "Arn"]}, "ContainerDefinitions": [container]}}


def _service(name: str, task: str, count, registry: str | None = None, extra: dict | None = None,
             single: bool = False) -> dict:
    props = {"ServiceName": name, "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": task},
             "LaunchType": "FARGATE", "DesiredCount": count, "PropagateTags": "SERVICE",
             "NetworkConfiguration": {"AwsvpcConfiguration": {
                 "AssignPublicIp": "DISABLED", "Subnets": {"Ref": "PrivateSubnetIds"},
                 "SecurityGroups": {"Ref": "TaskSecurityGroupIds"}}},
             "DeploymentConfiguration": {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                                         # the daemon is one process: stop the old before starting the new
                                         **({"MinimumHealthyPercent": 0, "MaximumPercent": 100} if single
                                            else {"MinimumHealthyPercent": 100, "MaximumPercent": 200})}}
    if registry:
        props["ServiceRegistries"] = [{"RegistryArn": {"Fn::GetAtt": [registry, "Arn"]}}]
    return {"Type": "AWS::ECS::Service", "Properties": {**props, **(extra or {})}}


def _discovery(name: str) -> dict:
    return {"Type": "AWS::ServiceDiscovery::Service", "Properties": {
        "Name": name, "NamespaceId": {"Fn::GetAtt": ["Namespace", "Id"]},
        "DnsConfig": {"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
        "HealthCheckCustomConfig": {"FailureThreshold": 1}}}


MODELS_CONDITION = "ModelDataGiven"


def conditions() -> dict:
    return {MODELS_CONDITION: {"Fn::Not": [{"Fn::Or": [
        {"Fn::Equals": [{"Ref": "AffinityModelDataUrl"}, ""]},
        {"Fn::Equals": [{"Ref": "PropensityModelDataUrl"}, ""]}]}]}}


def _model(kind: str) -> dict:
    model, config = f"{kind}Model", f"{kind}EndpointConfig"
    when = {"Condition": MODELS_CONDITION}
    return {
        model: {"Type": "AWS::SageMaker::Model", **when, "Properties": {
            "ExecutionRoleArn": {"Fn::GetAtt": ["ModelRole", "Arn"]}, "EnableNetworkIsolation": True,
            "PrimaryContainer": {"Image": {"Ref": "ModelImageUri"}, "Mode": "SingleModel",
                                 "ModelDataUrl": {"Ref": f"{kind}ModelDataUrl"}}}},
        config: {"Type": "AWS::SageMaker::EndpointConfig", **when, "Properties": {"ProductionVariants": [{
            "VariantName": "AllTraffic", "ModelName": {"Fn::GetAtt": [model, "ModelName"]},
            "InitialInstanceCount": 1, "InstanceType": {"Ref": "EndpointInstanceType"},
            "InitialVariantWeight": 1}]}},
        f"{kind}Endpoint": {"Type": "AWS::SageMaker::Endpoint", **when, "Properties": {
            "EndpointName": {"Ref": f"{kind}EndpointName"},
            "EndpointConfigName": {"Fn::GetAtt": [config, "EndpointConfigName"]}}},
    }


def resources() -> dict:
    workspace = ["-w", "deploy/workspace.yaml"]
    out: dict = {}
    out.update(component_roles())
    out["ExecutionRole"] = execution_role(list(SECRETS))
    out["ModelRole"] = model_role()
    for logical, component in LOGS.items():
        out[logical] = {"Type": "AWS::Logs::LogGroup", **DELETE, "Properties": {
            "LogGroupName": f"/music-feedback/{component}", "RetentionInDays": {"Ref": "LogRetentionDays"}}}
    for logical, (name, what, value) in SECRETS.items():
        # Retained: a deleted link key voids every link already mailed (restore it with restore-secret).
        out[logical] = {"Type": "AWS::SecretsManager::Secret", **RETAIN, "Properties": {
            "Name": name, "Description": f"music_feedback: {what}", **value}}

    out["DatabaseSubnetGroup"] = {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {
        "DBSubnetGroupDescription": "music_feedback: the Dagster instance's PostgreSQL",
        "SubnetIds": {"Ref": "PrivateSubnetIds"}}}
    login = "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:%s}}"
    out["Database"] = {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot",
                       "UpdateReplacePolicy": "Snapshot", "Properties": {
        "Engine": "postgres", "EngineVersion": "17.6", "DBInstanceClass": {"Ref": "DatabaseInstanceClass"},
        "DBName": "dagster", "MasterUsername": {"Fn::Sub": login % "username"},
        "MasterUserPassword": {"Fn::Sub": login % "password"},
        "AllocatedStorage": "20", "MaxAllocatedStorage": 200, "StorageType": "gp3", "StorageEncrypted": True,
        "DBSubnetGroupName": {"Ref": "DatabaseSubnetGroup"},
        "VPCSecurityGroups": {"Ref": "DatabaseSecurityGroupIds"}, "PubliclyAccessible": False,
        "BackupRetentionPeriod": 7, "DeletionProtection": True, "CopyTagsToSnapshot": True,
        "AutoMinorVersionUpgrade": True}}
    out["DatabaseSecretAttachment"] = {"Type": "AWS::SecretsManager::SecretTargetAttachment", "Properties": {
        "SecretId": {"Ref": "DatabaseSecret"}, "TargetId": {"Ref": "Database"},
        "TargetType": "AWS::RDS::DBInstance"}}

    out["Cluster"] = {"Type": "AWS::ECS::Cluster", "Properties": {
        "ClusterName": "music-feedback",
        "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}}
    out["Namespace"] = {"Type": "AWS::ServiceDiscovery::PrivateDnsNamespace", "Properties": {
        "Name": NAMESPACE, "Vpc": {"Ref": "VpcId"},
        "Description": "music_feedback: code.<ns>:4000 (gRPC code location), dagster.<ns>:3000 (webserver)"}}
    out["CodeServerDiscovery"] = _discovery("code")
    out["WebserverDiscovery"] = _discovery("dagster")

    instance = _instance_env()
    code_env = {**_common_env(), **_redshift_env(), "MUSIC_FEEDBACK_ALERTS_TOPIC_ARN": {"Ref": "AlertsTopic"},
                "DAGSTER_CURRENT_IMAGE": {"Ref": "ImageUri"}}  # each run's image (deploy/Dockerfile)
    out["WebserverTaskDefinition"] = _task(
        "music-feedback-webserver", "WebserverRole", "WebserverLogs", instance, [PG_PASSWORD], "1024", "2048",
        ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", *workspace], 3000)
    out["DaemonTaskDefinition"] = _task(
        "music-feedback-daemon", "DaemonRole", "DaemonLogs", instance, [PG_PASSWORD], "1024", "2048",
        ["dagster-daemon", "run", *workspace])
    out["CodeServerTaskDefinition"] = _task(
        "music-feedback-code-server", "CodeServerRole", "CodeServerLogs", code_env,
        [REDSHIFT_PASSWORD], "1024", "2048", None, 4000,
        ["dagster", "api", "grpc-health-check", "-p", "4000"])
    out["ServiceTaskDefinition"] = _task(
        "music-feedback-service", "ServiceRole", "ServiceLogs", _common_env(),
        # The link keys it reads itself (MUSIC_FEEDBACK_LINK_KEYS_SECRET), picking up a rotation.
        [_secret("MUSIC_FEEDBACK_API_KEYS", "ApiKeysSecret"),
         _secret("MUSIC_FEEDBACK_CURSOR_SECRET", "CursorSecret")], "1024", "2048",
        ["music-feedback", "serve", "--host", "0.0.0.0", "--port", "8080"], 8080)
    out["WebserverService"] = _service("music-feedback-webserver", "WebserverTaskDefinition", 1,
                                       "WebserverDiscovery")
    out["DaemonService"] = _service("music-feedback-daemon", "DaemonTaskDefinition", 1, single=True)
    out["CodeServerService"] = _service("music-feedback-code-server", "CodeServerTaskDefinition", 1,
                                        "CodeServerDiscovery")
    out["FeedbackService"] = _service(
        "music-feedback-service", "ServiceTaskDefinition", {"Ref": "ServiceDesiredCount"},
        extra={"LoadBalancers": [{"ContainerName": CONTAINER, "ContainerPort": 8080,
                                  "TargetGroupArn": {"Ref": "ServiceTargetGroup"}}],
               "HealthCheckGracePeriodSeconds": 60})
    out["FeedbackService"]["DependsOn"] = ["HttpsListener"]

    out["LoadBalancer"] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
        "Type": "application", "Scheme": "internet-facing", "Subnets": {"Ref": "PublicSubnetIds"},
        "SecurityGroups": {"Ref": "LoadBalancerSecurityGroupIds"},
        "LoadBalancerAttributes": [{"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"}]}}
    out["ServiceTargetGroup"] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
        "VpcId": {"Ref": "VpcId"}, "TargetType": "ip", "Protocol": "HTTP", "Port": 8080,
        "HealthCheckPath": "/healthz", "HealthCheckProtocol": "HTTP", "Matcher": {"HttpCode": "200"},
        "HealthCheckIntervalSeconds": 15, "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3,
        "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]}}
    out["HttpsListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Port": 443, "Protocol": "HTTPS",
        "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "Certificates": [{"CertificateArn": {"Ref": "CertificateArn"}}],
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "ServiceTargetGroup"}}]}}
    out["HttpRedirectListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": {"Ref": "LoadBalancer"}, "Port": 80, "Protocol": "HTTP",
        "DefaultActions": [{"Type": "redirect", "RedirectConfig": {
            "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]}}

    # SES publishes each message's delivery events (sent, delivered, bounced, complained, rejected, delayed)
    # to a topic; the queue holds them for the sender to reconcile its ledger from.
    out["SesConfigurationSet"] = {"Type": "AWS::SES::ConfigurationSet", "Properties": {
        "Name": {"Ref": "SesConfigurationSetName"}, "DeliveryOptions": {"TlsPolicy": "REQUIRE"},
        "ReputationOptions": {"ReputationMetricsEnabled": True}, "SendingOptions": {"SendingEnabled": True}}}
    out["SesEventsTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "music-feedback-ses-events"}}
    out["SesEventsTopicPolicy"] = {"Type": "AWS::SNS::TopicPolicy", "Properties": {
        "Topics": [{"Ref": "SesEventsTopic"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "SesPublishesTheConfigurationSetsEvents", "Effect": "Allow",
            "Principal": {"Service": "ses.amazonaws.com"}, "Action": "sns:Publish",
            "Resource": {"Ref": "SesEventsTopic"},
            "Condition": {"StringEquals": {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}}}
    out["SesEventDestination"] = {"Type": "AWS::SES::ConfigurationSetEventDestination",
                                  "DependsOn": ["SesEventsTopicPolicy"], "Properties": {
        "ConfigurationSetName": {"Ref": "SesConfigurationSet"},
        "EventDestination": {"Name": "delivery-events", "Enabled": True,
                             "MatchingEventTypes": ["send", "delivery", "bounce", "complaint", "reject",
                                                    "deliveryDelay", "renderingFailure"],
                             "SnsDestination": {"TopicARN": {"Ref": "SesEventsTopic"}}}}}
    out["SesEventsQueue"] = {"Type": "AWS::SQS::Queue", **DELETE, "Properties": {
        "QueueName": "music-feedback-ses-events", "SqsManagedSseEnabled": True,
        "MessageRetentionPeriod": 1209600, "VisibilityTimeout": 30}}
    out["SesEventsQueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [{"Ref": "SesEventsQueue"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "TheTopicDelivers", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["SesEventsQueue", "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "SesEventsTopic"}}}}]}}}
    out["SesEventsSubscription"] = {"Type": "AWS::SNS::Subscription", "Properties": {
        "TopicArn": {"Ref": "SesEventsTopic"}, "Protocol": "sqs", "RawMessageDelivery": True,
        "Endpoint": {"Fn::GetAtt": ["SesEventsQueue", "Arn"]}}}

    out["AlertsTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": "music-feedback-alerts", "DisplayName": "music_feedback run failures"}}

    out.update(_model("Affinity"))
    out.update(_model("Propensity"))
    return out


def outputs() -> dict:
    def o(value, what):
        return {"Value": value, "Description": what}
    return {
        "LoadBalancerDnsName": o({"Fn::GetAtt": ["LoadBalancer", "DNSName"]},
                                 "Point PublicUrl's host name here (CNAME or alias)"),
        "WebserverAddress": o(f"http://dagster.{NAMESPACE}:3000", "The Dagster UI, inside the VPC"),
        "CodeServerAddress": o(f"code.{NAMESPACE}:4000", "The code location's gRPC server"),
        "ClusterName": o({"Ref": "Cluster"}, "DAGSTER_ECS_CLUSTER"),
        "DaemonTaskDefinitionArn": o({"Ref": "DaemonTaskDefinition"}, "One-off dagster commands run from it"),
        "TaskSubnetsAndSecurityGroups": o({"Fn::Join": [" ", [
            {"Fn::Join": [",", {"Ref": "PrivateSubnetIds"}]},
            {"Fn::Join": [",", {"Ref": "TaskSecurityGroupIds"}]}]]},
            "subnets, then security groups, for `aws ecs run-task`"),
        "DatabaseAddress": o({"Fn::GetAtt": ["Database", "Endpoint.Address"]}, "DAGSTER_PG_HOST"),
        "SesEventsQueueUrl": o({"Ref": "SesEventsQueue"}, "SES delivery events of the configuration set"),
        "LinkKeysSecretArn": o({"Ref": "LinkKeysSecret"}, "music-feedback/link-keys"),
        "ApiKeysSecretArn": o({"Ref": "ApiKeysSecret"}, "music-feedback/api-keys"),
        "RedshiftSecretArn": o({"Ref": "RedshiftSecret"}, "music-feedback/redshift"),
        "RedshiftUnloadRoleArn": o({"Fn::GetAtt": ["RedshiftUnloadRole", "Arn"]},
                                   "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE; associate it with the cluster"),
        "AlertsTopicArn": o({"Ref": "AlertsTopic"}, "Subscribe the on-call address to it"),
    }
