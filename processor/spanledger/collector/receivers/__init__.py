"""OTLP receivers (gRPC and HTTP): decode, validate, spool, answer."""
