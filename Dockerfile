# The one image of the service: the app, `aftercare deploy-flows`, the Prefect server and the Prefect workers
# all run from it, so the Prefect client and server versions always match and workers import the flows
# by module path (aftercare_flows.*) from the installed package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
COPY flows ./flows
RUN pip install . && rm -rf /app/src /app/flows /app/build

COPY config ./config
COPY templates ./templates

RUN useradd --create-home --uid 10001 --user-group aftercare \
    && mkdir -p /home/aftercare/.prefect \
    && chown -R aftercare:aftercare /home/aftercare
USER aftercare

ENV AFTERCARE_CONFIG_DIR=/app/config \
    AFTERCARE_TEMPLATES_DIR=/app/templates \
    AFTERCARE_ENVIRONMENT=production \
    AFTERCARE_HOST=0.0.0.0 \
    PREFECT_HOME=/home/aftercare/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

EXPOSE 8000
CMD ["uvicorn", "--factory", "aftercare.web.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
