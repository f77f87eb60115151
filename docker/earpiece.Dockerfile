# earpiece: a static Go binary on distroless, running as a non-root user.
#
# Build context: the repository root (compose: context "..", dockerfile docker/earpiece.Dockerfile);
# docker/earpiece.Dockerfile.dockerignore keeps the context small (BuildKit reads it).
#   docker build -f docker/earpiece.Dockerfile -t earpiece .

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# Static (no cgo) so it runs on distroless/static; -trimpath and -s -w for a reproducible, small
# binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/earpiece ./cmd/earpiece

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/earpiece /earpiece
# distroless "nonroot": uid/gid 65532, no shell. The configuration is mounted read-only at
# /etc/earpiece; addresses and secrets come from EARPIECE_* variables (see compose.yml).
USER nonroot:nonroot
EXPOSE 8080
# No shell in the image, hence exec form; "earpiece healthcheck" asks GET /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/earpiece", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/earpiece"]
CMD ["serve", "--config", "/etc/earpiece/earpiece.yaml"]
