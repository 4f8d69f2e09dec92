# berth: a TLS front for Harbor and OCI/Docker registries.
#
#   docker build -t berth .
#   docker run -p 443:8443 -p 80:8080 -e BERTH_UPSTREAM=http://registry:5000 berth
#
# deploy/replay-dockerfile.mjs replays these steps outside Docker (npm test runs it), so
# keep RUN steps to relative paths and the instructions it knows; it says which it does not.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# Compile, drop the dev dependencies, and make the (empty) certificate volume directory.
RUN npm run build && npm prune --omit=dev --no-audit --no-fund && mkdir -p volume/certs

FROM node:24-bookworm-slim
# Set by the build, e.g. --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ)
# --build-arg SOURCE=https://git.example.com/berth
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="A TLS-offloading reverse proxy that puts Harbor or any OCI/Docker registry safely on HTTPS" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
# Every setting is a BERTH_* variable (README, "Configuration"); these are the image's own
# defaults. The admin listener (/healthz, /readyz, /metrics) listens on every interface so
# that a kubelet or a compose healthcheck reaches it: publish 8444 only to your monitoring.
# The development certificate, made when no tls.cert is set, goes to the /certs volume.
ENV NODE_ENV=production \
    BERTH_LISTEN=:8443 \
    BERTH_HTTP_LISTEN=:8080 \
    BERTH_ADMIN_LISTEN=:8444 \
    BERTH_TLS_DIR=/certs
WORKDIR /app
# Only the compiled output and the production dependencies, owned by root: the user that
# runs berth cannot change them, and the root filesystem can be mounted read-only.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build --chown=1000:1000 /app/volume/certs /certs
VOLUME ["/certs"]
# The node user of the base image, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8443 8080 8444
# berth drains on SIGTERM: it stops accepting and lets requests in flight finish within
# shutdown.grace (10m); give docker stop -t / stop_grace_period a little more.
STOPSIGNAL SIGTERM
# berth check --as-running: the settings of the berth running as PID 1 (its flags, BERTH_*
# variables and directory, from /proc), its certificate, the upstream, and its /readyz.
HEALTHCHECK --interval=30s --timeout=15s --start-period=20s --retries=3 \
  CMD ["node", "dist/cli.js", "check", "--as-running"]
ENTRYPOINT ["node", "--max-semi-space-size=4", "--no-parallel-scavenge", "--expose-gc", "dist/cli.js"]
