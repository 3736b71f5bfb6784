FROM debian:12-slim
COPY service /usr/local/bin/service
ENV HEALTH_PORT=8081
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/service"]
