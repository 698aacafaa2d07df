# syntax=docker/dockerfile:1
# Small non-root image: a static-ish release binary on distroless/cc.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The workspace lists bench/ as a member: cargo reads its manifest (and needs a target) before it
# builds anything, and Cargo.lock covers it, so the image gets the real crate (small) and
# `--locked` keeps its meaning. scripts/check-docker-context.sh (run by .ci/run) checks this.
COPY bench/Cargo.toml ./bench/
COPY bench/src ./bench/src
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY data-files ./data-files
# The admin API's OpenAPI document is compiled in (served at /admin/api/v1/openapi.json).
COPY docs/admin-api ./docs/admin-api
RUN cargo build --release --locked --bin tessera && mkdir -p /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
# The embedded database and dev master key live here; mount a volume, or use PostgreSQL.
COPY --from=build --chown=65532:65532 /data /var/lib/tessera
ENV TESSERA_LISTEN=0.0.0.0:8080 \
    TESSERA_DATA_DIR=/var/lib/tessera
WORKDIR /var/lib/tessera
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
