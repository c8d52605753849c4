"""Front doors: pure translations of other client APIs into routerd's one internal call and back.

The router speaks OpenAI's chat shape (request dicts in, ``chat.completion`` dicts or
``chat.completion.chunk`` iterators out). Each front door here turns its own wire format into that
shape and renders the router's answers back, without I/O, so the server only has to parse, call and
write:

* :mod:`~routerd.frontdoors.anthropic_messages` (+ ``_stream``): Anthropic's ``/v1/messages`` and
  ``/v1/messages/count_tokens``; errors in Anthropic's shape (:mod:`~routerd.frontdoors.anthropic_errors`).
* :mod:`~routerd.frontdoors.responses` (+ ``_stream``): OpenAI's ``/v1/responses``, with stored
  responses for ``previous_response_id`` in :mod:`~routerd.frontdoors.response_store` and their
  input-item listing in :mod:`~routerd.frontdoors.response_items`.
* :mod:`~routerd.frontdoors.azure_routes`: Azure OpenAI's ``/openai/deployments/{name}/...`` paths.

Every list, nesting level and stored size a client can grow is bounded in :mod:`~routerd.frontdoors.limits`.
The HTTP routes that serve them through the gate and the router are :mod:`routerd.server.frontdoor_routes`.
"""
