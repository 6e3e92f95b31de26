"""One span over OTLP/HTTP with TLS through the Python SDK's exporter, trusting the test's CA
(certificate_file) and sending the ingest key; exits non-zero if the export is not acknowledged."""

import argparse
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult


class Checked(OTLPSpanExporter):
    def export(self, spans):
        result = super().export(spans)
        if result != SpanExportResult.SUCCESS:
            print(f"export failed: {result}", file=sys.stderr)
            sys.exit(1)
        print(f"exported {len(spans)} span(s) over TLS")
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-http"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            Checked(endpoint=a.endpoint, certificate_file=a.ca, headers={"x-api-key": a.key})
        )
    )
    with provider.get_tracer("tls").start_as_current_span("over-http-tls"):
        pass
    provider.shutdown()


if __name__ == "__main__":
    main()
