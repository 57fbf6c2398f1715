"""Chat rooms: a live chat server rendered on the server and pushed with htmx."""

from chat.app import create_app

__all__ = ["create_app"]
