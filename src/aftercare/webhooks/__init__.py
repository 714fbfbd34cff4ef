"""Provider webhooks: thin FastAPI routers over the delivery and inbound services in this package."""
