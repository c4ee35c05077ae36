"""Turns plan documents (.txt, .docx, .yaml, tables) into a ParsedPlan."""

from bot.importer.model import (
    COMPARATORS,
    ParsedItem,
    ParsedPlan,
    ParsedSection,
    ParsedTarget,
    PlanFormatError,
)

__all__ = [
    "COMPARATORS",
    "ParsedItem",
    "ParsedPlan",
    "ParsedSection",
    "ParsedTarget",
    "PlanFormatError",
]
