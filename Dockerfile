# The service image: the Python package installed (not editable) with the `server` and `redis`
# extras. The page's browser libraries are shipped in server/vendor (see scripts/vendor), so no
# npm here. One image for both roles of docker-compose.yml: `pipelines-server ...` and
# `pipelines-worker ...`.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY pipelines ./pipelines
COPY server ./server
COPY client ./client
COPY static ./static
RUN pip install --no-cache-dir ".[server,redis]" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pipelines
# Never root: the service needs no privilege (port 8080, nothing written outside /tmp).
USER pipelines
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["pipelines-server", "--host", "0.0.0.0", "--port", "8080"]
