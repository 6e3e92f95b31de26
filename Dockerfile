# Sightline in one image.
#
#   docker build -t sightline .
#   docker run -p 8080:8080 -p 4317:4317 -p 4318:4318 -v sightline-data:/data sightline
#   (add --gpus all on a machine with the NVIDIA container runtime for the GPU sampler)
#
# The first stage compiles Sightline. Where the Rust image cannot be pulled, a binary built
# outside can stand in for it (scripts/image-check does this):
#   podman build --build-arg BINARY=prebuilt --build-context prebuilt-dir=DIR .   (DIR/sightline)
ARG BINARY=build

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sightline \
 && install -D -m 0755 target/release/sightline /out/sightline

FROM scratch AS prebuilt
COPY --from=prebuilt-dir sightline /out/sightline

FROM ${BINARY} AS binary

# glibc (not musl), so the NVIDIA container runtime's libnvidia-ml.so.1 can be loaded.
FROM docker.io/library/debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Sightline" \
      org.opencontainers.image.description="All-in-one observability for GPU services: OTLP ingest, traces, metrics (PromQL), logs, GPU and host sampling, web UI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 sightline \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin sightline \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=binary /out/sightline /usr/local/bin/sightline
USER 10001:10001
ENV SIGHTLINE_DATA_DIR=/data \
    SIGHTLINE_LISTEN_HTTP=0.0.0.0:8080 \
    SIGHTLINE_LISTEN_OTLP_GRPC=0.0.0.0:4317 \
    SIGHTLINE_LISTEN_OTLP_HTTP=0.0.0.0:4318 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
VOLUME /data
WORKDIR /data
EXPOSE 8080 4317 4318
# SIGTERM starts the graceful drain: listeners stop, in-flight exports finish, stores close.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/sightline", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sightline"]
