# Aftercare service image: python:3.11-slim, non-root, health-checked.
#   docker build -t aftercare .
#   docker run -p 8080:8080 -v aftercare-data:/data \
#     -e AFTERCARE_TWILIO__AUTH_TOKEN=... -v ./config.toml:/app/config.toml:ro aftercare
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AFTERCARE_SERVER__HOST=0.0.0.0 \
    AFTERCARE_DATABASE__URL=sqlite+aiosqlite:////data/aftercare.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
COPY config.example.toml ./
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app aftercare \
    && mkdir -p /data && chown aftercare /data

USER aftercare
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
STOPSIGNAL SIGTERM
CMD ["aftercare", "serve"]
