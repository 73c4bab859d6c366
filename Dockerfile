# Slim, non-root image: `secretctl serve` upgrades the database, then runs granian (WSGI workers)
# and one lifecycle worker (`secretctl worker`; SECRETS_WORKER__EMBEDDED=false where workers run
# as containers of their own, as in docker-compose.yml).
FROM python:3.11-slim AS build
# The cloud SDKs to include: "all", or a comma list such as "vault,aws"; "" for none.
ARG EXTRAS=all
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY ports ports
COPY adapters adapters
COPY plugins plugins
COPY entrypoints entrypoints
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/secrets --create-home secrets \
 && chmod 700 /var/lib/secrets
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
# Production mode, the only one that may listen beyond loopback: no development root token, and
# no key generated on the fly. Give the master key as SECRETS_MASTER_KEY (base64 of 32 random
# bytes) or as the JSON key file mounted read-only (SECRETS_KEYS__PATH=/run/secrets/master.key);
# callers authenticate with the identity provider's JWTs ([identity.jwt]) or service accounts'
# tokens, and the first admin is granted with `secretctl admin grant`.
ENV SECRETS_MODE=production \
    SECRETS_DATA_DIR=/var/lib/secrets \
    SECRETS_HOST=0.0.0.0 \
    SECRETS_PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/secrets"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["secretctl", "serve"]
