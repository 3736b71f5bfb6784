# syntax=docker/dockerfile:1
FROM debian:12 AS build
RUN apt-get update && apt-get install -y build-essential
COPY . /src
RUN make -C /src
# This stage's settings do not reach the running container.
HEALTHCHECK CMD curl http://localhost/ready

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/service /usr/local/bin/service
COPY --from=build /usr/local/bin/health-probe /usr/local/bin/health-probe
ENV HEALTH_PORT=8081 \
    HEALTH_DRAIN_MS=15000
ENV HEALTH_SERVICE_ID service
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/health-probe", "--timeout", "2000", "http://127.0.0.1:8081/health"]
ENTRYPOINT ["/usr/local/bin/service"]
