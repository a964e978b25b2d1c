# One image for every Conveyor role: api, worker, migrate.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home conveyor
USER conveyor
ENTRYPOINT ["conveyor"]
CMD ["--help"]
