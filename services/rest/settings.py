"""The REST service's settings (`HANPORT_REST_*` and friends), on top of `CommonSettings`."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class RestSettings(CommonSettings):
    rest_host: str = Field("0.0.0.0", description="Address the REST service listens on.")
    rest_port: int = Field(8080, ge=1, le=65535, description="Port of REST, the page and /metrics.")
    rest_stale_after: float = Field(
        30.0,
        gt=0,
        description="Seconds after which the newest reading is stale: `/meter` then answers 503.",
    )
    rest_tokens: str | None = Field(
        None,
        description="Bearer tokens as `TOKEN:scope,scope` separated by spaces or `;` "
        "(scopes `read`, `admin`). Never logged.",
    )
    rest_tokens_file: str | None = Field(
        None,
        description="File of bearer tokens, one `TOKEN scope,scope` per line (`#` comments).",
    )
    rest_read_auth: bool = Field(
        False,
        description="Require a token with the `read` scope for readings (off: reads are open "
        "on the LAN; `admin` endpoints always need a token).",
    )
    rest_cors_origins: str = Field(
        "",
        description="CORS: allowed origins separated by commas (`*` for any); empty: no CORS.",
    )
    rest_history_limit: int = Field(
        10000, ge=1, le=1_000_000, description="Most readings one `/meter/history` call returns."
    )
    rest_read_concurrency: int = Field(
        2,
        ge=1,
        description="History answers and `/events` replays that read Redis at once; more wait "
        "their turn (this bounds the memory and event-loop time heavy reads take).",
    )
    rest_read_queue: int = Field(
        32,
        ge=0,
        description="Heavy reads that may wait for a turn; past that they are refused with 503 "
        "and `Retry-After`.",
    )
    rest_redis_timeout: float = Field(
        3.0,
        gt=0,
        description="Seconds a request waits for one Redis answer (history, telegram, replay) "
        "before it answers 503 `redis_unavailable`.",
    )
    rest_keepalive: float = Field(
        15.0, gt=0, description="Seconds between status/keepalive events on `/events`."
    )
    rest_client_queue: int = Field(
        1000,
        ge=1,
        description="Readings queued per SSE/WebSocket client; a client further behind is "
        "disconnected (SSE clients resume with Last-Event-ID, nothing lost).",
    )
    rest_startup_wait: float = Field(
        3.0,
        ge=0,
        description="Seconds a starting replica waits for the newest reading (and, in "
        "commercial use, its license) before it serves anyway.",
    )
    rest_reader_name: str = Field("hanport", description="The reader's name in `/han`.")
    rest_access_log: bool = Field(False, description="Log every HTTP request (uvicorn access log).")
    rest_request_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a whole request (line, headers, body) from "
        "its first byte or from opening the connection; slower connections are closed "
        "(slowloris). Idle keep-alive connections close after 5 s.",
    )
    rest_max_head_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) in bytes; a larger one is "
        "answered 431 and its connection closed.",
    )
    rest_max_connections: int = Field(
        1000,
        ge=1,
        description="Connections and requests in progress at once (SSE and WebSocket clients "
        "included) before new requests are answered 503.",
    )
