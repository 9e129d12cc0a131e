"""The HTTP layer: Starlette app, routing, authentication, media types and error bodies."""
