# The Goldsnap data proxy image, for the server's Azure Container Instances launcher
# (--proxy-launcher aci, GOLDSNAP_PROXY_IMAGE). Alpine, as no dependency is native. Node 24 runs the TypeScript sources as they are;
# only the production dependencies are installed; the container runs as the unprivileged `node`
# user. The server gives every container its command (`goldsnap proxy --region … --idle …`) and
# its settings as (secure) environment variables: nothing secret is baked into the image.
#
#   docker build -t <registry>/goldsnap-proxy:0.1.0 .
#   docker push <registry>/goldsnap-proxy:0.1.0

FROM node:24-alpine AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: no production dependency needs one (the `node` package is a dev dependency).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# What a proxy never loads: type declarations, source maps, browser builds, and the embedded
# catalog database (proxies talk to the server, never to the catalog). `du -sh node_modules`: 175 MB before, 62 MB after.
RUN find node_modules \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' \) -delete \
 && find node_modules -type d \( -path '*/dist/browser' -o -path '*/dist/react-native' \) -prune -exec rm -rf {} + \
 && rm -rf node_modules/@electric-sql

FROM node:24-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
RUN printf '#!/bin/sh\nexec node --disable-warning=ExperimentalWarning /app/src/cli/main.ts "$@"\n' > /usr/local/bin/goldsnap \
 && chmod 755 /usr/local/bin/goldsnap
USER node
ENTRYPOINT ["goldsnap"]
CMD ["proxy", "--help"]
