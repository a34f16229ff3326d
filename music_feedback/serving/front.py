"""A local stand-in for the SageMaker runtime: `POST /endpoints/{name}/invocations` forwarded to the
project's model servers, with the runtime's 6 MB body limit and its error shapes, so the real boto3
client can be pointed at it (endpoint_url) in tests and in the bench."""
from __future__ import annotations

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

MAX_BODY_BYTES = 6 * 1024 * 1024  # the real-time endpoint payload limit


def aws_error(status: int, code: str, message: str, **fields) -> JSONResponse:
    """The REST-JSON error botocore parses: the code in x-amzn-ErrorType, the message in the body."""
    return JSONResponse({"message": message, **fields}, status_code=status, headers={"x-amzn-ErrorType": code})


def create_front(routes: dict[str, str], max_body_bytes: int = MAX_BODY_BYTES, timeout_s: float = 60.0,
                 control_plane=None) -> FastAPI:
    """`routes` maps an endpoint name to the base URL of the model server behind it (read per request, so a
    deployment may switch it). `control_plane`, an async callable taking the request, answers the SageMaker API
    (JSON 1.1) in place of the DescribeEndpoint-only answer below (music_feedback_tools.standins.sagemaker)."""
    app = FastAPI(title="local SageMaker runtime", docs_url=None, redoc_url=None)
    api = control_plane
    client = httpx.AsyncClient(timeout=timeout_s)

    @app.post("/endpoints/{name}/invocations")
    async def invoke(name: str, request: Request):
        upstream = routes.get(name)
        if upstream is None:
            return aws_error(400, "ValidationError", f"Endpoint {name} of account 000000000000 not found.")
        body = await request.body()
        if len(body) > max_body_bytes:
            return aws_error(413, "ValidationError", f"Request body of {len(body)} bytes exceeds the limit of "
                                                     f"{max_body_bytes} bytes for endpoint {name}.")
        headers = {"content-type": request.headers.get("content-type", "application/octet-stream")}
        try:
            answer = await client.post(f"{upstream}/invocations", content=body, headers=headers)
        except httpx.HTTPError as exc:
            return aws_error(503, "ServiceUnavailable", f"Endpoint {name} is not reachable ({type(exc).__name__}).")
        if answer.status_code != 200:
            return aws_error(424, "ModelError",
                             f"Received client error ({answer.status_code}) from primary with message "
                             f"\"{answer.text[:500]}\".", OriginalStatusCode=answer.status_code,
                             OriginalMessage=answer.text[:500],
                             LogStreamArn=f"arn:aws:logs:local:000000000000:log-group:/aws/sagemaker/Endpoints/{name}")
        return Response(answer.content, media_type=answer.headers.get("content-type", "application/json"),
                        headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    @app.post("/")
    async def control_plane(request: Request):
        """The one control-plane call the AWS preflight makes: DescribeEndpoint (JSON 1.1 protocol)."""
        if api is not None:
            return await api(request)
        target = request.headers.get("x-amz-target", "")
        if target != "SageMaker.DescribeEndpoint":
            return aws_error(400, "UnknownOperationException", f"{target or 'no operation'} is not supported here.")
        name = (await request.json()).get("EndpointName", "")
        if name not in routes:  # the JSON 1.1 protocol carries the code in the body's __type
            return JSONResponse({"__type": "ValidationException", "message": f"Could not find endpoint \"{name}\"."},
                                status_code=400, media_type="application/x-amz-json-1.1")
        now = 0.0
        return JSONResponse({"EndpointName": name, "EndpointArn": f"arn:aws:sagemaker:local:000000000000:endpoint/{name}",
                             "EndpointConfigName": name, "EndpointStatus": "InService",
                             "CreationTime": now, "LastModifiedTime": now},
                            media_type="application/x-amz-json-1.1")

    return app
