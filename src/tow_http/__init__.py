"""The HTTP layer: Litestar app factory, routers, request/response shapes, CLI and composition root."""
