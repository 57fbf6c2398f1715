"""Benchmark of the chat server against a websockets floor and a bare Quart app.

Run it with `.venv/bin/python -m bench` (see bench/README.md).
"""
