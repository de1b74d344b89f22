# syntax=docker/dockerfile:1
# geogate: build with the dev toolchain, run on production dependencies only, as the unprivileged `node` user.
#   docker build -t geogate .
#   docker run -p 8080:8080 geogate            (the mock backend runs separately: see docker/compose.yaml)

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; they include the embedded GeoIP country database.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json LICENSE ./
COPY config ./config
# var/ holds the audit log (config audit.dir: var/audit): a volume, owned by the runtime user.
# geodb/ is where MaxMind databases are mounted (config geo.databases).
RUN mkdir -p var/audit geodb && chown -R node:node var geodb
VOLUME ["/app/var"]
USER node
EXPOSE 8080 9090
# The admin plane's liveness endpoint, from inside the container (adminHost 127.0.0.1 is enough for it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# exec form: node is PID 1 and receives SIGTERM itself, so the drain (server.shutdownGraceMs) runs.
ENTRYPOINT ["node", "dist/cli/index.js"]
CMD ["serve", "--config", "config/geogate.yaml"]
