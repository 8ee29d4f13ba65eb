# The service image: the page's npm packages from the lockfile, then the Python package.
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
RUN pip install --no-cache-dir .
EXPOSE 8080
CMD ["python", "server.py", "--host", "0.0.0.0", "--port", "8080"]
