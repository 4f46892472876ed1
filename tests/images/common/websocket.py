"""The stand-in backend's WebSocket endpoint (RFC 6455, text frames), shaped like the real
app's watch-party socket: `GET /api/v1/watch-parties/{id}/ws` upgrades (101) and echoes each
text message back. On shutdown (SIGTERM) it does what a Go server does with
`http.Server.RegisterOnShutdown`: it sends each open socket a close frame, 1001 "going away",
so clients see a clean close they can reconnect after, not a dropped TCP connection."""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import struct

from graceful_http import Handler

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
GOING_AWAY = 1001
POLL_SECONDS = 0.1


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()  # noqa: S324


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (never masked), FIN set."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One client frame (masked, as RFC 6455 requires of clients)."""
    first, second = _exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _exactly(sock, 8))
    mask = _exactly(sock, 4) if second & 0x80 else b"\0\0\0\0"
    data = _exactly(sock, length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def watch_party(handler: Handler) -> None:
    """Upgrade, then echo text frames until the client closes or the server shuts down."""
    key = handler.headers.get("Sec-WebSocket-Key", "")
    if not key:
        handler.send_error(400, "missing Sec-WebSocket-Key")
        return
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    handler.end_headers()
    handler.wfile.flush()
    sock = handler.connection
    try:
        while True:
            if handler.server.draining:
                sock.sendall(frame(OP_CLOSE, struct.pack("!H", GOING_AWAY) + b"server restart"))
                return
            readable, _, _ = select.select([sock], [], [], POLL_SECONDS)
            if not readable:
                continue
            opcode, payload = read_frame(sock)
            if opcode == OP_CLOSE:
                sock.sendall(frame(OP_CLOSE, payload[:2]))
                return
            if opcode == OP_PING:
                sock.sendall(frame(OP_PONG, payload))
            elif opcode == OP_TEXT:
                sock.sendall(frame(OP_TEXT, payload))
    except (ConnectionError, OSError):
        return
