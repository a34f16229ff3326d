"""`music-feedback model serve`: the SageMaker-contract model server on one model directory."""
from __future__ import annotations

from pathlib import Path


def add_model_commands(sub, serve_func) -> None:
    model = sub.add_parser("model", help="the models").add_subparsers(dest="action", required=True)
    serve = model.add_parser("serve", help="serve one model on the SageMaker contract (GET /ping, POST /invocations)")
    serve.add_argument("--model-dir", type=Path, default=None,
                       help="model artifacts (model.joblib, model.json); default $SM_MODEL_DIR or "
                            "the SageMaker container's model folder")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default $SAGEMAKER_BIND_TO_PORT or SageMaker's 8080")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=serve_func)


def serve(args) -> int:
    # lazy: `music-feedback --help` imports this module; uvicorn adds ~90 ms to its ~30 ms
    import uvicorn

    # lazy: model_server imports dagster, polars and joblib (~1 s), for `--help` (see above)
    from music_feedback.serving.model_server import create_app, model_dir_from_env, port_from_env
    app = create_app(args.model_dir or model_dir_from_env())  # loads now: a bad artifact stops here, by name
    print(f"serving {app.state.model.version} on {args.host}:{args.port or port_from_env()}")
    uvicorn.run(app, host=args.host, port=args.port or port_from_env(), workers=1, log_level="info")
    return 0
