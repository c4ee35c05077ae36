"""Domain services: plain functions that take a session first and do one job each."""
