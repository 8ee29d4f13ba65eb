# The service image: the Python package installed (not editable) with the `server` extra. The
# page's browser libraries are shipped in server/vendor (see scripts/vendor), so no npm here.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY pipelines ./pipelines
COPY server ./server
COPY client ./client
COPY static ./static
RUN pip install --no-cache-dir ".[server]"
WORKDIR /app
EXPOSE 8080
CMD ["pipelines-server", "--host", "0.0.0.0", "--port", "8080"]
