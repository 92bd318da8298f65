# attnserve image: a builder stage compiles the project (Release) from the -dev packages, a runtime
# stage from the same base carries only the shared libraries, attnserve and attn-client.
# Build: docker build -t attnserve:0.1.0 .   (other base: --build-arg BASE_IMAGE=debian:bookworm)
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS builder
COPY scripts/install_deps.sh /src/scripts/install_deps.sh
RUN /src/scripts/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" --target attnserve attn-client \
 && /src/deploy/docker/runtime-packages.sh /build/attnserve /build/attn-client > /build/runtime-packages

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="attnserve" \
      org.opencontainers.image.description="Masked scaled dot-product attention as a gRPC service"
COPY --from=builder /build/runtime-packages /tmp/runtime-packages
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/runtime-packages \
 && groupadd --system --gid 10001 attn \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin attn
COPY --from=builder /build/attnserve /build/attn-client /usr/local/bin/
COPY deploy/docker/entrypoint.sh /usr/local/bin/attnserve-entrypoint
USER 10001:10001
# Every ATTN_<FLAG> variable becomes --<flag> (see deploy/docker/entrypoint.sh and docs/deploy.md).
# OMP_WAIT_POLICY=passive: idle OpenMP threads sleep instead of spinning between requests,
# leaving the cores to gRPC's threads (docs/server.md).
ENV ATTN_ADDRESS=0.0.0.0:50051 ATTN_METRICS_ADDRESS=0.0.0.0:9090 OMP_WAIT_POLICY=passive
# gRPC; HTTP: /metrics (Prometheus), /healthz, /readyz and the JSON gateway.
EXPOSE 50051 9090
# A real grpc.health.v1 check of attention.v1.AttentionService on the port ATTN_ADDRESS names.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD attn-client health --address="127.0.0.1:${ATTN_ADDRESS##*:}" --timeout_s=3
# docker stop sends SIGTERM: the server reports NOT_SERVING, drains, logs "stopped", exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["attnserve-entrypoint"]
