"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The method is registered with the service and method names of the generated
``trace_service_pb2_grpc`` module but with a pass-through request
deserializer: the handler gets the raw bytes, so a malformed message is
answered INVALID_ARGUMENT with a reason (a failing generated deserializer
would surface as INTERNAL) and a valid request is spooled byte for byte
without re-encoding.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from spanledger.collector.receivers.intake import Intake, Refusal

log = logging.getLogger(__name__)

SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name

_CODES = {
    Refusal.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.OVERSIZE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Refusal.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Refusal.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Refusal.INTERNAL: grpc.StatusCode.INTERNAL,
}


class GrpcReceiver:
    def __init__(self, intake: Intake, host: str, port: int, max_message_mb: int,
                 threads: int = 8) -> None:
        self.intake = intake
        self.host = host
        limit = max_message_mb * 1024 * 1024
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=threads * 4,
        )
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Export": grpc.unary_unary_rpc_method_handler(
                self._export,
                request_deserializer=None,  # raw bytes: see module docstring
                response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
            ),
        })
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}")

    def _export(self, body: bytes, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        auth = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                auth = value
        outcome = self.intake.handle(body, json_body=False, auth_header=auth)
        if outcome.refusal is not None:
            context.abort(_CODES[outcome.refusal], outcome.message)
        assert outcome.accepted is not None
        return outcome.accepted.response()

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float) -> None:
        self._server.stop(grace).wait(grace + 1)
