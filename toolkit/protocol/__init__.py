"""The session wire protocol, shared by both sides: framed, versioned requests and responses.

One SSH subsystem channel (``toolkit-session-v1``) carries frames both ways;
the technician's side (toolkit.session) sends requests, the agent
(toolkit.agent) answers them. Neither side's package is imported here.

- :mod:`toolkit.protocol.frames`: framing, data streams, notices, limits.
- :mod:`toolkit.protocol.messages`: :class:`Request`, :class:`Response`, strict parsing.
- :mod:`toolkit.protocol.operations`: :class:`Op`, each operation's fields, the
  wording of a read's range.
- :mod:`toolkit.protocol.approvals`: the shape and digest of an approval report.
- :mod:`toolkit.protocol.echo`: which typed bytes a transcript may keep.

docs/protocol.md is the specification. For example::

    from toolkit.protocol import Op, Request

    frame = Request(1, Op.STAT, {"path": "/etc/hostname"}).to_frame()
"""

from toolkit.protocol.approvals import (
    APPROVAL_FIELDS,
    MAX_APPROVAL_COMMANDS,
    MAX_APPROVAL_STEPS,
    commands_sha256,
)
from toolkit.protocol.frames import (
    CONTENT,
    DATA_CHUNK,
    KIND_BAD,
    KIND_DATA,
    KIND_MESSAGE,
    MAX_FRAME,
    MAX_MESSAGE,
    MAX_NOTICE_TEXT,
    MAX_NOTICES,
    NOTICES,
    SHELL_EVENTS,
    STDERR,
    STDOUT,
    STREAMS,
    SUBSYSTEM,
    Body,
    Data,
    FrameDecoder,
    ProtocolError,
    data_frames,
    message_frame,
    notice_frame,
    parse_data,
)
from toolkit.protocol.messages import (
    MAX_ID,
    VERSION,
    Request,
    Response,
    parse_request,
    parse_response,
    request_id_of,
)
from toolkit.protocol.operations import (
    FIX_STEPS,
    LIST_PURPOSES,
    MAX_ARG,
    MAX_ARGV,
    MAX_LINES,
    MAX_PARAMS,
    OPERATIONS,
    OPTIONAL,
    SESSION_ENDED,
    Op,
    lines_asked,
)

__all__ = [
    "APPROVAL_FIELDS",
    "CONTENT",
    "DATA_CHUNK",
    "FIX_STEPS",
    "KIND_BAD",
    "KIND_DATA",
    "KIND_MESSAGE",
    "LIST_PURPOSES",
    "MAX_APPROVAL_COMMANDS",
    "MAX_APPROVAL_STEPS",
    "MAX_ARG",
    "MAX_ARGV",
    "MAX_FRAME",
    "MAX_ID",
    "MAX_LINES",
    "MAX_MESSAGE",
    "MAX_NOTICES",
    "MAX_NOTICE_TEXT",
    "MAX_PARAMS",
    "NOTICES",
    "OPERATIONS",
    "OPTIONAL",
    "SESSION_ENDED",
    "SHELL_EVENTS",
    "STDERR",
    "STDOUT",
    "STREAMS",
    "SUBSYSTEM",
    "VERSION",
    "Body",
    "Data",
    "FrameDecoder",
    "Op",
    "ProtocolError",
    "Request",
    "Response",
    "commands_sha256",
    "data_frames",
    "lines_asked",
    "message_frame",
    "notice_frame",
    "parse_data",
    "parse_request",
    "parse_response",
    "request_id_of",
]
