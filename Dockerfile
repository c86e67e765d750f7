# One image for all three services; docker-compose.yml picks the service by its command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies first, in their own layer, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Editable, so that the code stays in /app next to web/, where shared/settings.py looks for templates and static files.
COPY shared ./shared
COPY services ./services
COPY web ./web
RUN pip install --no-deps -e .

# The code belongs to root and is read-only to the user the services run as. /srv/openapi is where docker-compose's
# `openapi` writes the API document for the gateway: a named volume mounted there starts with this owner.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gossip \
    && install -d -o gossip /srv/openapi
USER gossip

EXPOSE 8000
