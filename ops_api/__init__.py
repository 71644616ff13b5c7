"""The HTTP/JSON API for internal operations and community-centre staff (FastAPI on uvicorn, docs/adr/0800).

`python -m ops_api` serves it; the routes call the regional services and the gateway over gRPC, and the API keeps
only staff users, tokens, the audit log and adjustment requests in its own database.
"""
