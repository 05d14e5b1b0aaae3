# syntax=docker/dockerfile:1
# Build stage: compiles the release binary (migrations and Swagger UI are embedded in it).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked

# Runtime stage: the binary, CA certificates for TLS to Postgres, and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin keygate \
    && mkdir -p /data && chown keygate:keygate /data
COPY --from=build /src/target/release/keygate /usr/local/bin/keygate
USER keygate
ENV KEYGATE_LISTEN=0.0.0.0:8009 \
    KEYGATE_DATA_DIR=/data \
    KEYGATE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8009
# SIGTERM lets in-flight requests finish and flushes key usage before exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/keygate"]
