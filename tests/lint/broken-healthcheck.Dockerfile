FROM debian:12-slim
HEALTHCHECK CMD ["/usr/local/bin/health-probe", "http://127.0.0.1:8081/health"
