"""One line for each way a command fails, naming what to change: no command ends in a
traceback (``RAG_DEBUG=1`` shows it)."""

from __future__ import annotations

import os


def explain(exc: BaseException) -> str:
    """What went wrong and which setting (or step) fixes it, in one line."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from dagster._core.errors import DagsterHomeNotSetError

    from rag_ingest.core.config import SettingsError

    endpoint = os.environ.get("RAG_S3_ENDPOINT_URL") or "AWS"
    bucket = os.environ.get("RAG_S3_BUCKET") or ""
    if isinstance(exc, SettingsError):
        return str(exc)
    if isinstance(exc, DagsterHomeNotSetError):
        return (
            "DAGSTER_HOME is not set: point it at the Dagster instance folder (`make dev` "
            "uses dagster_home/ in the project; run the command there while it runs)"
        )
    if isinstance(exc, EndpointConnectionError):
        return (
            f"cannot reach S3 at {endpoint} (RAG_S3_ENDPOINT_URL): is `make dev` running, or "
            "the endpoint right?"
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist at {endpoint} (RAG_S3_BUCKET)"
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"S3 refused the credentials for bucket {bucket!r}: {code} (AWS_* variables)"
        return f"S3 error {code}: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first} (RAG_DEBUG=1 shows the traceback)"
