"""Settings of the ``streams`` package, read from ``CARDIOWATCH_*`` environment variables.

The defaults suit the embedded broker on one machine; point ``CARDIOWATCH_BOOTSTRAP_SERVERS`` and the
security settings at any other Kafka.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the streams package: Kafka, ingestion and the worker."""

    model_config = SettingsConfigDict(env_prefix="CARDIOWATCH_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers, comma-separated.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(None, description="CA bundle that signs the brokers' certificates.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client private key (mutual TLS).")
    partitions: int = Field(4, ge=1, description="Partition count of every topic (co-partitioning).")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    session_timeout_ms: int = Field(
        6000,
        ge=1000,
        description="Consumer-group session timeout; short, because the embedded broker "
        "holds each group join for half of it.",
    )
    fetch_max_wait_ms: int = Field(
        100, ge=0, description="Longest wait of an idle fetch; the embedded broker waits half of it."
    )
    connect_timeout_s: float = Field(30.0, gt=0, description="How long start-up waits for Kafka.")

    max_future_s: float = Field(
        300.0, gt=0, description="Input events timed further ahead of the wall clock are rejected."
    )
    app_id: str = Field("cardiowatch", description="Faust application id (the consumer group).")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's /metrics and /health.")
    web_host: str = Field("0.0.0.0", description="Address the worker's web server binds.")
    data_dir: str = Field(".cardiowatch", description="Folder for the worker's local state.")

    window_s: float = Field(10.0, gt=0, description="ECG window length, seconds (a whole number of hops).")
    hop_s: float = Field(2.0, gt=0, description="Hop between window starts, seconds: one score per patient per hop.")
    grace_s: float = Field(2.0, ge=0, description="How long past a window's end late chunks are still put in place.")
    signal_lost_s: float = Field(
        5.0, gt=0, description="Wall seconds without a chunk before a patient's windows close by wall time."
    )
    mains_hz: float = Field(50.0, description="Mains frequency removed by the notch filter (50 or 60; 0 for none).")
    worker_plugins: str = Field(
        "alerts.agents:install",
        description="Agents the worker adds to the streaming core, as module:function, comma-separated ('' for none).",
    )
    risk_high: float = Field(
        0.5, ge=0, le=1, description="Model risk at or above which a risk_high alert is raised (held a minute)."
    )
    risk_clear: float = Field(0.4, ge=0, le=1, description="Model risk below which a risk_high alert clears.")
    batch_size: int = Field(256, ge=1, description="Most windows scored in one batch.")
    batch_within_s: float = Field(0.2, gt=0, description="Longest wait to fill a scoring batch, seconds.")
    scorer: Literal["model", "rules"] = Field(
        "model", description="What scores windows: the learned risk model (with the rule features) or the rules alone."
    )
    model_dir: str | None = Field(
        None, description="Model artifact folder the worker serves (default: the artifact shipped in models/artifacts)."
    )
    shadow_model_dir: str | None = Field(
        None, description="A second artifact that scores silently to risk.scores.shadow beside the live one."
    )
    model_device: str = Field("auto", description="Where the model runs: auto (CUDA when present), cpu, cuda, cuda:1.")
    model_batch: int = Field(64, ge=1, description="Preferred batch of the inference engine, windows.")
    model_delay_s: float = Field(0.005, ge=0, description="Longest wait of the inference engine to fill a batch.")
    model_torchscript: bool = Field(False, description="Run the model through TorchScript on the CPU.")
    model_reload_s: float = Field(
        5.0, gt=0, description="How often the worker checks the artifact folder for a new model (swapped live)."
    )
    scoring_processes: int = Field(
        1, ge=0, description="Processes that score batches beside the event loop (0: a thread of the worker)."
    )

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for SSL and SASL_SSL, or None for plaintext."""
        if not self.security_protocol.endswith("SSL"):
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Connection settings shared by kafka-python and aiokafka clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            )
        return kwargs
