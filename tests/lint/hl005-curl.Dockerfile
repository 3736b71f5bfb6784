FROM python:3.12-slim
RUN apt-get update && apt-get install -y curl
ENV HEALTH_PORT=8081
HEALTHCHECK --interval=15s --timeout=3s \
  CMD curl -fsS http://localhost:8081/health || exit 1
CMD ["service"]
