# The Clipper frontend, built for one stack (components/images/release_images.py passes the build args).
# The app's own frontend/Dockerfile cannot take the API URL (it has no ARG for it and bakes in
# http://localhost:8080/api/v1 without an uncommitted .env.production), so this one replaces it:
# same stages, same nginx.conf and served files, with the stack's values handed to Vite.
# Build context: the app's frontend/ directory.
#
# The base images are arguments so a build can point them at a mirror or a local image.
ARG NODE_IMAGE=node:20-alpine
ARG NGINX_IMAGE=nginx:alpine

FROM ${NODE_IMAGE} AS builder
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
# Vite reads VITE_* from the environment before any .env file; drop the dev ones regardless.
RUN rm -f .env .env.local .env.production .env.production.local
ARG VITE_API_BASE_URL
ARG VITE_WS_HOST
ARG VITE_BASE_URL
ARG VITE_STRIPE_PRO_MONTHLY_PRICE_ID=""
ARG VITE_STRIPE_PRO_YEARLY_PRICE_ID=""
ENV NODE_ENV=production \
    VITE_API_BASE_URL=${VITE_API_BASE_URL} \
    VITE_WS_HOST=${VITE_WS_HOST} \
    VITE_BASE_URL=${VITE_BASE_URL} \
    VITE_STRIPE_PRO_MONTHLY_PRICE_ID=${VITE_STRIPE_PRO_MONTHLY_PRICE_ID} \
    VITE_STRIPE_PRO_YEARLY_PRICE_ID=${VITE_STRIPE_PRO_YEARLY_PRICE_ID}
# A build without the API URL would silently call localhost: refuse it.
RUN test -n "${VITE_API_BASE_URL}" || { echo "VITE_API_BASE_URL is required" >&2; exit 1; }
RUN npm run build

FROM ${NGINX_IMAGE}
COPY nginx.conf /etc/nginx/nginx.conf
COPY --from=builder /app/dist /usr/share/nginx/html
EXPOSE 80
# No HEALTHCHECK: clipper-release probes /health.html on each colour's port itself.
CMD ["nginx", "-g", "daemon off;"]
