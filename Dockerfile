# sigsci-iga as a service: `sigsci-iga serve` (HTTP API, scheduler, worker) as a non-root user.
#   docker build -t sigsci-iga .
#   docker run -p 8080:8080 -e SIGSCI_IGA_DATABASE_URL=postgresql://... \
#     -e SIGSCI_IGA_TOKEN_KEY_FILE=/run/secrets/token-key -v ...:/run/secrets:ro sigsci-iga
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
# The shipped connection packages are inside src/ (package data), so the wheel carries them.
COPY src ./src
RUN pip install ".[postgres]" \
    && useradd --system --uid 10001 --home-dir /var/lib/sigsci-iga --create-home sigsci-iga

USER sigsci-iga
WORKDIR /var/lib/sigsci-iga
# A SQLite file in the home directory unless SIGSCI_IGA_DATABASE_URL names PostgreSQL.
ENV SIGSCI_IGA_DATABASE_URL=sqlite:////var/lib/sigsci-iga/sigsci-iga.db
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
# Listen on every interface inside the container; the port is published by the runtime.
CMD ["sigsci-iga", "serve", "--host", "0.0.0.0", "--port", "8080"]
