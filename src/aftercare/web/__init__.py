"""The staff web app: REST API under /api/v1 and server-rendered coordinator pages.

Start it with `uvicorn --factory aftercare.web.app:create_app` (or `aftercare serve`).
"""
