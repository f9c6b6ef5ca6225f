# The Goldsnap data proxy image, for the server's Azure Container Instances launcher
# (--proxy-launcher aci, GOLDSNAP_PROXY_IMAGE). Node 24 runs the TypeScript sources as they are;
# only the production dependencies are installed; the container runs as the unprivileged `node`
# user. The server gives every container its command (`goldsnap proxy --region … --idle …`) and
# its settings as (secure) environment variables: nothing secret is baked into the image.
#
#   docker build -t <registry>/goldsnap-proxy:0.1.0 .
#   docker push <registry>/goldsnap-proxy:0.1.0

FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: no production dependency needs one (the `node` package is a dev dependency).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
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
