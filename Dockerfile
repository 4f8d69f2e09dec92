# berth: a TLS front for Harbor and OCI/Docker registries.
# A first working image; deploy/ and a hardened variant come later.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config/berth.example.yaml ./config/
# The development CA and certificate are written here when no tls.cert is configured.
RUN mkdir -p /app/certs && chown node:node /app/certs
VOLUME ["/app/certs"]
USER node
EXPOSE 8443
# berth drains on SIGTERM: it stops accepting and lets requests in flight finish within
# shutdown.grace (10m); give docker stop / stop_grace_period a little more.
STOPSIGNAL SIGTERM
# berth check: the config and certificate as berth reads them (same BERTH_* environment),
# the upstream, and the running berth's /readyz on its admin listener (loopback, 8444).
HEALTHCHECK --interval=30s --timeout=15s --start-period=20s --retries=3 \
  CMD ["node", "--disable-warning=DEP0060", "dist/cli.js", "check"]
ENTRYPOINT ["node", "--disable-warning=DEP0060", "--max-semi-space-size=2", "dist/cli.js"]
