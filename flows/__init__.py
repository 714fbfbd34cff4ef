"""Prefect flows: thin wrappers over aftercare's service functions. Import path: aftercare_flows."""
