# Sightline in one image. Build: podman build -t sightline .   Run:
#   podman run -p 8080:8080 -p 4317:4317 -p 4318:4318 -v sightline-data:/data sightline
# Not yet built or verified in CI; the packaging issue owns that.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
COPY ui ui
COPY assets assets
RUN cargo build --release --locked --bin sightline

FROM docker.io/library/debian:bookworm-slim
RUN useradd --system --uid 10001 sightline && mkdir /data && chown sightline /data
COPY --from=build /src/target/release/sightline /usr/local/bin/sightline
USER sightline
ENV SIGHTLINE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080 4317 4318
ENTRYPOINT ["/usr/local/bin/sightline"]
