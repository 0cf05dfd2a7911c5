# The platform image: web app, Celery worker and beat (one image, three commands).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEME_VAR_DIR=/var/lib/deme
WORKDIR /app
RUN groupadd --system deme && useradd --system --gid deme --home /app deme \
    && mkdir -p /var/lib/deme && chown deme:deme /var/lib/deme
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY models ./models
COPY gateway ./gateway
COPY tickets ./tickets
COPY ops_console ./ops_console
COPY bot ./bot
COPY conversation ./conversation
COPY deme ./deme
RUN pip install .
USER deme
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["deme", "web", "--workers", "2"]
