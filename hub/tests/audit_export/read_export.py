"""Reads a workbus audit export with the CloudEvents Python SDK (PyPI `cloudevents`):
every line must parse as a CloudEvent in structured JSON format, and the chain fields
must be readable as extension attributes. Prints one JSON summary line per event."""

import json
import sys

from cloudevents.core.formats.json import JSONFormat

fmt = JSONFormat()
out = []
with open(sys.argv[1], "rb") as f:
    for line in f:
        if not line.strip():
            continue
        event = fmt.read(None, line)
        get = event.get_extension
        assert event.get_specversion() == "1.0", event.get_specversion()
        out.append({
            "id": event.get_id(),
            "type": event.get_type(),
            "source": event.get_source(),
            "seq": get("auditseq"),
            "direction": get("auditdirection"),
            "audittype": get("audittype"),
            "hash": get("audithash"),
            "prevhash": get("auditprevhash"),
            "signed": get("workbussignature") is not None,
            "hasdata": event.get_data() is not None,
        })
print(json.dumps(out))
