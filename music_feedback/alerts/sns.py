"""The AWS adapter of the alert sink: each alert is an SNS message on the topic the operators subscribe to
(email, chat, a queue): the subject names the job and the failing step, the body is the alert as JSON."""
from __future__ import annotations

import json
from typing import Optional

import boto3
from botocore.config import Config
from pydantic import Field

from music_feedback.alerts.failure import subject
from music_feedback.alerts.sink import AlertSink

TOPIC_VAR = "MUSIC_FEEDBACK_ALERTS_TOPIC_ARN"


class AlertConfigError(ValueError):
    """The alert topic is not configured."""


class SNSAlertSink(AlertSink):
    topic_arn: str = Field(default="", description=(
        f'ARN of the SNS topic run-failure alerts are published to ({TOPIC_VAR}).'))
    region_name: str = Field(default="us-east-1", description='SNS region (AWS_REGION, else AWS_DEFAULT_REGION).')
    endpoint_url: Optional[str] = Field(default=None, description=(
        "SNS endpoint (moto); None: boto3's own (AWS_ENDPOINT_URL_SNS, else the region's)."))

    def client(self):
        return boto3.client("sns", region_name=self.region_name, endpoint_url=self.endpoint_url,
                            config=Config(retries={"mode": "standard", "max_attempts": 5}))

    def _topic(self) -> str:
        if not self.topic_arn:
            raise AlertConfigError(f"alerts on AWS go to an SNS topic: set {TOPIC_VAR} to its ARN")
        return self.topic_arn

    def publish(self, alert: dict) -> str:
        attributes = {k: {"DataType": "String", "StringValue": str(alert[k])}
                      for k in ("job", "step", "partition") if alert.get(k)}
        return self.client().publish(TopicArn=self._topic(), Subject=subject(alert),
                                     Message=json.dumps(alert, sort_keys=True),
                                     MessageAttributes=attributes)["MessageId"]

    def describe(self) -> str:
        return f"SNS topic {self.topic_arn or '(unset: ' + TOPIC_VAR + ')'}"

    def check(self) -> None:
        """The topic exists (the preflight)."""
        self.client().get_topic_attributes(TopicArn=self._topic())
