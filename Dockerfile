# The service image: the page's npm packages from the lockfile, then the Python package.
# One image for both roles of docker-compose.yml: `python server.py ...` and `pipelines-worker ...`.
FROM node:20-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md server.py ./
COPY pipelines ./pipelines
COPY server ./server
COPY client ./client
COPY static ./static
COPY --from=web /app/node_modules ./node_modules
RUN pip install --no-cache-dir ".[redis]" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pipelines
# Never root: the service needs no privilege (port 8080, nothing written outside /tmp).
USER pipelines
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["python", "server.py", "--host", "0.0.0.0", "--port", "8080"]
