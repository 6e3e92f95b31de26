"""Sends log records through python-logging-loki's handler, both emitter versions:
version "0" posts Loki's legacy JSON (`labels` text, RFC 3339 `ts`) to /api/prom/push, version
"1" posts v1 JSON (`stream`, `values`) to /loki/api/v1/push. Prints one JSON object per record
sent: {"version", "line", "severity"}. Usage: loki_handler.py BASE_URL COUNT"""

import json
import logging
import sys
import warnings

import logging_loki

base, count = sys.argv[1], int(sys.argv[2])
warnings.simplefilter("ignore")
for version, path in (("0", "/api/prom/push"), ("1", "/loki/api/v1/push")):
    logger = logging.getLogger(f"pyapp-v{version}")
    logger.propagate = False
    handler = logging_loki.LokiHandler(
        url=base + path, tags={"app": "pyapp", "emitter": f"v{version}"}, version=version
    )
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    for i in range(count):
        level = logging.WARNING if i % 3 == 0 else logging.INFO
        line = f"handler v{version} record {i} user=u{i % 4} \"quoted\" ünïcode"
        logger.log(level, line)
        print(json.dumps({"version": version, "line": line,
                          "severity": logging.getLevelName(level).lower()}))
    handler.close()
