"""Local stand-ins for a Qdrant server and Modal's API that record what clients send them.

Neither service can be reached here, yet whether a credential is really sent (and never
logged) is only proven when a real client sends it. Both servers answer every request with a
refusal, so what is tested is the client's true path up to the service and every error path
after it: the unmodified ``qdrant-client`` over HTTP/1.1 to :class:`HttpRecorder`, and the
unmodified Modal client over gRPC (HTTP/2) to :class:`GrpcRecorder` via ``MODAL_SERVER_URL``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from typing import Any

import h2.config
import h2.connection
import h2.events


class HttpRecorder:
    """An HTTP server on 127.0.0.1 that records each request's headers and answers ``status``
    with a Qdrant-shaped JSON error."""

    def __init__(self, status: int = 503) -> None:
        self.requests: list[dict[str, str]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps({"status": {"error": "refused by the test server"}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcRecorder:
    """An HTTP/2 server on 127.0.0.1 that records each gRPC call's headers (metadata included)
    and ends every call with ``grpc-status`` 16, UNAUTHENTICATED (Modal's client raises
    ``AuthError``)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server
        ready = threading.Event()
        self.url = ""

        async def start() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self._server = server
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65535):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    self.requests.append({str(k): str(v) for k, v in event.headers or []})
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    refusal = [
                        (":status", "200"),
                        ("content-type", "application/grpc"),
                        ("grpc-status", "16"),
                        ("grpc-message", "refused by the test server"),
                    ]
                    conn.send_headers(event.stream_id, refusal, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()

    async def _shutdown(self) -> None:
        self._server.close()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
