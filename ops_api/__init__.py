"""The HTTP/JSON API for internal operations and community-centre staff (FastAPI on uvicorn, docs/adr/0800).

`create_app(context)` builds the application; `python -m ops_api` serves it; routes call the regional services and
the gateway over gRPC and keep only staff users, tokens, the audit log and adjustment requests in their own database.
"""
