# syntax=docker/dockerfile:1
#
# Lethe's production image: the worker (/worker) and the API/migration binary
# (/lethe, built with -tags nodev so it embeds no Temporal dev server).
#
#   docker build -t lethe .
#   docker run lethe                      # the HTTP API (lethe serve)
#   docker run lethe /lethe migrate       # apply Lethe's database migrations
#   docker run lethe /worker              # a worker; scale out by running more
#
# Configuration comes from LETHE_* environment variables (internal/config).

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/worker ./worker && \
    go build -trimpath -tags nodev -ldflags="-s -w" -o /out/lethe ./starter

# Static binaries only: no shell, no package manager, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
COPY --from=build /out/lethe /lethe
USER nonroot:nonroot
# The API; the metrics endpoints of the worker (9464) and of the API (9465),
# for Prometheus only (LETHE_METRICS_ADDR, LETHE_API_METRICS_ADDR).
EXPOSE 8080 9464 9465
CMD ["/lethe", "serve"]
