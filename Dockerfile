# syntax=docker/dockerfile:1

# Build stage: dependencies first (cached until Cargo.toml or Cargo.lock change), then the code.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# Make sure cargo rebuilds the crate itself, not the stub above.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# Runtime: glibc and CA certificates only; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/handover-receiver /usr/local/bin/handover-receiver
USER 65532:65532
ENV HANDOVER_LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/handover-receiver", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/handover-receiver"]
CMD ["serve"]
