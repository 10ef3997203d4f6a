"""Webhook signatures, as the Standard Webhooks specification (Svix) defines them.

Each delivery carries three headers:

* `webhook-id`: the alert's stable id (the same on every retry, so a receiver can drop repeats);
* `webhook-timestamp`: Unix seconds when this attempt was signed;
* `webhook-signature`: `v1,` then base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
  with the secret's bytes (the secret is `whsec_` + base64 of 32 random bytes).

A receiver recomputes the HMAC over the raw body it got, compares in constant time, and refuses a
timestamp more than 5 minutes from its clock (replay)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
