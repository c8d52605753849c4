"""Guardrails: declared policies on prompts and answers (content filter, webhook, moderation).

Each guardrail type is a pure decision over text where it can be (the content filter), with I/O only
at the edge (webhooks and moderation calls).
"""
