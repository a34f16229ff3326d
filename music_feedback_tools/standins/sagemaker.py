"""A local stand-in for the SageMaker API calls a promotion makes, behind the local SageMaker front: CreateModel,
CreateEndpointConfig, CreateEndpoint, UpdateEndpoint and DescribeEndpoint (JSON 1.1, the real boto3 client).

moto's server (5.2) answers the create calls but has no UpdateEndpoint (HTTP 500, "not implemented") and
reports every endpoint InService at once, so neither an update nor a failed one can be seen there. Here a
deployment does what the endpoint's container would: it reads the model data (`ModelDataUrl`, a
`model.tar.gz` in S3, from moto's server) and starts the project's model server on it (what the serving
image runs). The endpoint is Creating/Updating meanwhile and switches its route to the new server only once
that server has loaded the model; a model the server cannot load ends the endpoint Failed with the
container's error as FailureReason, and, on an update, the old server keeps answering (blue/green), as
SageMaker's does. `delay_s` makes each deployment take that long (a deployment slower than the deployer's
timeout). The serving image is not run: every model runs the project's model server."""
from __future__ import annotations

import io
import tarfile
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import boto3
from fastapi import Request
from fastapi.responses import JSONResponse

from music_feedback.serving.front import MAX_BODY_BYTES, create_front
from music_feedback.serving.model_server import create_app
from music_feedback.serving.threaded import serving

ACCOUNT, JSON11 = "000000000000", "application/x-amz-json-1.1"


def _error(code: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"__type": code, "message": message}, status_code=status, media_type=JSON11)


class ControlPlane:
    def __init__(self, routes: dict[str, str], work_dir: Path, s3_endpoint_url: str | None = None,
                 region: str = "us-east-1", delay_s: float = 0.0):
        self.routes, self.work_dir, self.region, self.delay_s = routes, Path(work_dir), region, delay_s
        self.s3_endpoint_url = s3_endpoint_url
        self.models: dict[str, dict] = {}
        self.configs: dict[str, dict] = {}
        now = time.time()
        self.endpoints: dict[str, dict] = {  # endpoints served from the start: InService on a config of their name
            name: {"EndpointName": name, "EndpointConfigName": name, "EndpointStatus": "InService",
                   "CreationTime": now, "LastModifiedTime": now} for name in routes}
        self.calls: list[str] = []  # every operation asked for, in order (what the IAM policy must allow)
        self._lock = threading.Lock()
        self._servers = ExitStack()
        self._threads: list[threading.Thread] = []

    def close(self) -> None:
        for t in self._threads:
            t.join(timeout=30)
        self._servers.close()

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:{kind}/{name}"

    async def __call__(self, request: Request):
        operation = request.headers.get("x-amz-target", "").removeprefix("SageMaker.")
        body = await request.json()
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return _error("UnknownOperationException", f"{operation or 'no operation'} is not supported here.")
        with self._lock:
            self.calls.append(operation)
            return handler(body)

    def _op_CreateModel(self, b: dict):
        name = b["ModelName"]
        if name in self.models:
            return _error("ValidationException", f"Cannot create already existing model \"{self._arn('model', name)}\".")
        if not b.get("ExecutionRoleArn", "").startswith("arn:aws:iam::"):
            return _error("ValidationException", f"Could not access role {b.get('ExecutionRoleArn')!r}.")
        container = b.get("PrimaryContainer") or {}
        if not container.get("Image"):
            return _error("ValidationException", "PrimaryContainer.Image is required.")
        self.models[name] = b
        return JSONResponse({"ModelArn": self._arn("model", name)}, media_type=JSON11)

    def _op_CreateEndpointConfig(self, b: dict):
        name = b["EndpointConfigName"]
        if name in self.configs:
            return _error("ValidationException", f"Cannot create already existing endpoint configuration "
                                                 f"\"{self._arn('endpoint-config', name)}\".")
        for variant in b.get("ProductionVariants", []):
            if variant.get("ModelName") not in self.models:
                return _error("ValidationException", f"Could not find model \"{self._arn('model', variant.get('ModelName'))}\".")
        self.configs[name] = b
        return JSONResponse({"EndpointConfigArn": self._arn("endpoint-config", name)}, media_type=JSON11)

    def _op_CreateEndpoint(self, b: dict):
        name, config = b["EndpointName"], b["EndpointConfigName"]
        if name in self.endpoints:
            return _error("ValidationException", f"Cannot create already existing endpoint \"{self._arn('endpoint', name)}\".")
        if config not in self.configs:
            return _error("ValidationException", f"Could not find endpoint configuration \"{self._arn('endpoint-config', config)}\".")
        now = time.time()
        self.endpoints[name] = {"EndpointName": name, "EndpointConfigName": config, "EndpointStatus": "Creating",
                                "CreationTime": now, "LastModifiedTime": now}
        self._start(name, config)
        return JSONResponse({"EndpointArn": self._arn("endpoint", name)}, media_type=JSON11)

    def _op_UpdateEndpoint(self, b: dict):
        name, config = b["EndpointName"], b["EndpointConfigName"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return _error("ValidationException", f"Could not find endpoint \"{self._arn('endpoint', name)}\".")
        if config not in self.configs:
            return _error("ValidationException", f"Could not find endpoint configuration \"{self._arn('endpoint-config', config)}\".")
        if endpoint["EndpointStatus"] not in ("InService", "Failed"):
            return _error("ValidationException", f"Cannot update in-progress endpoint \"{self._arn('endpoint', name)}\".")
        endpoint.update(EndpointStatus="Updating", LastModifiedTime=time.time())
        endpoint.pop("FailureReason", None)
        self._start(name, config)
        return JSONResponse({"EndpointArn": self._arn("endpoint", name)}, media_type=JSON11)

    def _op_DescribeEndpoint(self, b: dict):
        name = b.get("EndpointName", "")
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return _error("ValidationException", f"Could not find endpoint \"{self._arn('endpoint', name)}\".")
        return JSONResponse({**endpoint, "EndpointArn": self._arn("endpoint", name)}, media_type=JSON11)

    def _start(self, name: str, config: str) -> None:
        thread = threading.Thread(target=self._deploy, args=(name, config), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _deploy(self, name: str, config: str) -> None:
        """What the endpoint's new fleet does: fetch the model data, start the model server on it."""
        variant = self.configs[config]["ProductionVariants"][0]
        model_data = self.models[variant["ModelName"]]["PrimaryContainer"].get("ModelDataUrl", "")
        try:
            time.sleep(self.delay_s)
            bucket, _, key = model_data.removeprefix("s3://").partition("/")
            data = boto3.client("s3", region_name=self.region, endpoint_url=self.s3_endpoint_url).get_object(
                Bucket=bucket, Key=key)["Body"].read()
            directory = Path(tempfile.mkdtemp(prefix=f"{config}-", dir=self.work_dir))
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(directory, filter="data")
            url = self._servers.enter_context(serving(create_app(directory)))
        except Exception as exc:  # anything the container would die of: the variant fails its health check
            with self._lock:
                self.endpoints[name].update(
                    EndpointStatus="Failed", LastModifiedTime=time.time(),
                    FailureReason=f"The primary container for production variant {variant['VariantName']} did "
                                  f"not pass the ping health check: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.routes[name] = url
            self.endpoints[name].update(EndpointStatus="InService", EndpointConfigName=config,
                                        LastModifiedTime=time.time())


@contextmanager
def sagemaker_service(models: dict[str, Path], work_dir: Path, s3_endpoint_url: str | None = None,
                      delay_s: float = 0.0) -> Iterator[tuple[str, ControlPlane]]:
    """The SageMaker runtime front and this control plane on one loopback URL (give it to boto3 as both the
    `sagemaker` and the `sagemaker-runtime` endpoint); `models` (endpoint name -> model directory) serve from
    the start. Yields the URL and the control plane (its endpoints, models and calls)."""
    with ExitStack() as stack:
        routes = {name: stack.enter_context(serving(create_app(d))) for name, d in models.items()}
        control = ControlPlane(routes, work_dir, s3_endpoint_url=s3_endpoint_url, delay_s=delay_s)
        stack.callback(control.close)
        yield stack.enter_context(serving(create_front(routes, MAX_BODY_BYTES, control_plane=control))), control
