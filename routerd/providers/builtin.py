"""Imports every built-in adapter module so each registers itself (see base.register)."""

from __future__ import annotations
