"""Log lines as JSON, one object per line, when BACKPROP_LOG_FORMAT=json."""

import json
import logging

from service.logs import JsonFormatter


def test_a_json_line_holds_the_message_its_origin_and_the_exception():
    logger = logging.getLogger("service.test")
    record = logger.makeRecord("service.test", logging.WARNING, __file__, 1, "job %s: %s", ("a", "x"), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job a: x" and line["level"] == "WARNING"
    assert line["logger"] == "service.test"
    assert line["time"].endswith("+00:00") and isinstance(line["pid"], int)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        failing = logger.makeRecord("service.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(failing)
    assert "\n" not in text  # one line, whatever the traceback holds
    assert "ValueError: bad\\nthing" in text and "Traceback" in json.loads(text)["exception"]
