# cardiowatch worker image: `cardiowatch <command>` (worker, topics, ...), used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# pip reads this from the environment. Leave it empty for the default PyPI torch (CUDA-enabled on x86_64);
# `docker compose build --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu` makes a much
# smaller CPU-only image.
ARG PIP_EXTRA_INDEX_URL=

WORKDIR /src
# Only what `pip install .` needs, so that a local .venv, data or build outputs never end up in the image.
COPY pyproject.toml README.md ./
COPY models ./models
COPY streams ./streams
COPY alerts ./alerts
RUN pip install . && rm -rf /src

# Unprivileged user; its home is the working directory, so the worker's data directory is writable.
RUN useradd --create-home --uid 10001 cardiowatch
USER cardiowatch
WORKDIR /home/cardiowatch

# The worker's web server: /health and the Prometheus /metrics (CARDIOWATCH_WEB_PORT).
EXPOSE 6066

ENTRYPOINT ["cardiowatch"]
CMD ["worker"]
