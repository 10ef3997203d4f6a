"""Pydantic models of every request and response body, with OpenAPI examples."""
