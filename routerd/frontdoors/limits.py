"""Bounds on everything a client of the front doors can grow, in one place.

The request body as a whole is already bounded by ``ROUTERD_MAX_BODY_BYTES``; these bounds keep the
translation itself (lists walked, nesting recursed into, responses kept in memory) proportional to
what any real client sends. Each is checked with a clear ``invalid_request_error`` naming the field.
"""

from __future__ import annotations

#: messages (Anthropic) or input items (Responses) in one request
MAX_MESSAGES = 10_000
#: content blocks / parts in one message, and blocks in a ``tool_result``'s content
MAX_BLOCKS_PER_MESSAGE = 1_000
#: tool definitions in one request
MAX_TOOLS = 512
#: entries of ``stop_sequences``
MAX_STOP_SEQUENCES = 64
#: nesting depth of a tool's JSON schema (``input_schema`` / ``parameters``) and of tool input objects
MAX_SCHEMA_DEPTH = 64
#: characters of a stop sequence, a tool name or a ``metadata`` value
MAX_SHORT_STRING = 4_096
#: entries of the Responses ``metadata`` object (OpenAI documents 16)
MAX_METADATA_ENTRIES = 16

#: default lifetime of a stored response, seconds (30 days, as OpenAI keeps them)
RESPONSE_STORE_TTL_SECONDS = 30 * 24 * 3600.0
#: stored responses kept in memory at most; the oldest go first
RESPONSE_STORE_MAX_ENTRIES = 10_000
#: bytes of one stored response (its input items + output, as JSON); larger ones are not stored
RESPONSE_STORE_MAX_ENTRY_BYTES = 8 * 1024 * 1024
#: bytes of all stored responses together; the oldest are evicted to stay below it
RESPONSE_STORE_MAX_TOTAL_BYTES = 256 * 1024 * 1024

#: characters of an Azure deployment name in a route (Azure itself allows 64; groups may be longer)
MAX_DEPLOYMENT_NAME = 256
