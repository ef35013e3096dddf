"""A local webhook receiver: what the webhook destination posts to in tests, the demo and --sandbox."""

from .receiver import WebhookReceiver

__all__ = ["WebhookReceiver"]
