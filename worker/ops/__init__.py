"""Operations: configuration, metrics, logs and the HTTP health endpoints."""
