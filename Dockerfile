# Aftercare service image: python:3.11-slim, numeric non-root user, health-checked.
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

# Dependencies from the lock, in a layer of their own: a change to the source reuses it.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir -r requirements/runtime.txt

COPY pyproject.toml README.md config.example.toml ./
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --gid 10001 aftercare \
    && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin aftercare \
    && mkdir -p /data && chown 10001:10001 /data

# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
VOLUME ["/data"]
# Reads the configuration as `serve` does, so it follows a port set in the file or by
# AFTERCARE_SERVER__PORT (service/healthcheck.py).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
STOPSIGNAL SIGTERM
CMD ["aftercare", "serve"]
