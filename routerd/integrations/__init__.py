"""Integrations with logging and tracing systems (``routerd.integrations.custom_logger.CustomLogger``)."""
