"""Chat features, one module each (report, my items, assign, status, ...).

Handlers see only the core's IncomingMessage, a Messenger and services; they never import a
chat platform's SDK (tests/test_plugins.py checks).
"""
