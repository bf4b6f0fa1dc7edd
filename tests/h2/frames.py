"""HTTP/2 clients for tests/h2.rs, well-behaved and hostile, written with
Python's h2 (state machine, HPACK) and hyperframe (raw frames).

    frames.py PORT SCENARIO [ARG]

prints one JSON object: what the server did. Plaintext (h2c with prior
knowledge) only: the TLS path is the same HTTP/2 code, exercised by curl
and nghttp in tests/h2.rs.
"""

import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import h2.events
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(port, settings=None):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    config = h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    sock.sendall(conn.data_to_send())
    return sock, conn


def pump(sock, conn, done, timeout=15.0):
    """Read and handle frames until done(events) or the server closes."""
    events = []
    deadline = time.time() + timeout
    while not done(events):
        left = deadline - time.time()
        if left <= 0:
            events.append("timeout")
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            events.append("timeout")
            break
        except (ConnectionResetError, BrokenPipeError):
            events.append("closed")
            break
        if not data:
            events.append("closed")
            break
        try:
            events.extend(conn.receive_data(data))
        except Exception as e:  # the server broke the protocol: say so
            events.append("client-error: %r" % e)
            break
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
    return events


def goaway(events):
    for e in events:
        if isinstance(e, h2.events.ConnectionTerminated):
            return int(e.error_code)
    return None


def ended(stream_id):
    def done(events):
        for e in events:
            if getattr(e, "stream_id", None) == stream_id and isinstance(
                e, (h2.events.StreamEnded, h2.events.StreamReset)
            ):
                return True
            if isinstance(e, h2.events.ConnectionTerminated) or e in ("closed",):
                return True
        return False

    return done


def request(port, spec):
    """One request: spec = {method, path, headers: [[n, v]], body: [chunks],
    end: bool (end the stream after the body; default true)}."""
    sock, conn = connect(port)
    sid = conn.get_next_available_stream_id()
    if spec.get("connect"):
        headers = [(":method", "CONNECT"), (":authority", "example.test:443")]
    else:
        headers = [
            (":method", spec.get("method", "GET")),
            (":path", spec.get("path", "/")),
            (":scheme", "http"),
            (":authority", spec.get("authority", "example.test")),
        ]
    headers += [tuple(h) for h in spec.get("headers", [])]
    chunks = [c.encode() for c in spec.get("body", [])]
    conn.send_headers(sid, headers, end_stream=not chunks)
    for i, chunk in enumerate(chunks):
        conn.send_data(sid, chunk, end_stream=(i == len(chunks) - 1))
    sock.sendall(conn.data_to_send())
    events = pump(sock, conn, ended(sid))
    result = {"status": None, "headers": {}, "body": "", "trailers": {}, "reset": None}
    body = b""
    for e in events:
        if isinstance(e, h2.events.ResponseReceived):
            result["headers"] = {n: v for n, v in e.headers}
            result["status"] = int(result["headers"].get(":status"))
        elif isinstance(e, h2.events.DataReceived):
            body += e.data
            conn.acknowledge_received_data(e.flow_controlled_length, sid)
        elif isinstance(e, h2.events.TrailersReceived):
            result["trailers"] = {n: v for n, v in e.headers}
        elif isinstance(e, h2.events.StreamReset):
            result["reset"] = int(e.error_code)
    result["body"] = body.decode("latin-1")
    result["goaway"] = goaway(events)
    return result


def rapid_reset(port, count):
    """Open streams and reset each at once, as fast as possible."""
    sock, conn = connect(port)
    sent = 0
    try:
        for batch in range(count // 50):
            for _ in range(50):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(
                    sid,
                    [(":method", "GET"), (":path", "/slow"), (":scheme", "http"),
                     (":authority", "example.test")],
                    end_stream=True,
                )
                conn.reset_stream(sid, error_code=8)  # CANCEL
                sent += 1
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError):
        pass
    events = pump(sock, conn, lambda ev: goaway(ev) is not None or "closed" in ev, 15)
    return {"sent": sent, "goaway": goaway(events), "closed": "closed" in events}


def raw_flood(port, make_frames, count):
    """Send the preface, our SETTINGS, then `count` frames from
    make_frames(i) as raw bytes (no state machine), reading nothing until
    done; then see how the server ended it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    sent = 0
    try:
        batch = b""
        for i in range(count):
            batch += make_frames(i)
            if len(batch) > 64 * 1024:
                sock.sendall(batch)
                batch = b""
            sent += 1
        sock.sendall(batch)
    except OSError:
        pass
    # Read what the server said, up to its GOAWAY or close.
    code = None
    buf = b""
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            sock.settimeout(deadline - time.time())
            data = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        buf += data
        code = find_goaway(buf)
        if code is not None:
            break
    return {"sent": sent, "goaway": code if code is not None else find_goaway(buf)}


def find_goaway(buf):
    """The error code of the first GOAWAY in a server's byte stream."""
    pos = 0
    while pos + 9 <= len(buf):
        length = int.from_bytes(buf[pos:pos + 3], "big")
        kind = buf[pos + 3]
        if pos + 9 + length > len(buf):
            return None
        if kind == 0x7 and length >= 8:
            return int.from_bytes(buf[pos + 13:pos + 17], "big")
        pos += 9 + length
    return None


def headers_frame(sid, block, end_headers=True, end_stream=True):
    f = HeadersFrame(sid)
    f.data = block
    if end_headers:
        f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"),
           (":authority", "example.test")]


def request_block(encoder, extra=()):
    return encoder.encode(REQUEST + list(extra))


def continuation_flood(port, count):
    """One HEADERS without END_HEADERS, then CONTINUATION for ever."""
    encoder = hpack.Encoder()
    first = headers_frame(1, request_block(encoder), end_headers=False)

    def frames(i):
        f = ContinuationFrame(1)
        f.data = encoder.encode([("x-filler-%d" % i, "a" * 1000)])
        return (first if i == 0 else b"") + f.serialize()

    return raw_flood(port, frames, count)


def hpack_bomb(port, count):
    """A 4 KiB field put in the dynamic table once, then referenced by
    index (one byte each) thousands of times in one header block: a few
    KiB on the wire, megabytes decoded."""
    encoder = hpack.Encoder()
    big = ("x-bomb", "b" * 4000)
    block = request_block(encoder, [big])
    # The same field again: the encoder now sends its table index.
    block2 = request_block(encoder, [big] * count)
    return raw_flood(
        port, lambda i: headers_frame(1 + 2 * i, [block, block2][i]), 2
    )


def settings_flood(port, count):
    return raw_flood(port, lambda i: SettingsFrame(0).serialize(), count)


def ping_flood(port, count):
    return raw_flood(port, lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize(), count)


def empty_data_flood(port, count):
    """A POST whose body is nothing but empty DATA frames."""
    encoder = hpack.Encoder()
    block = encoder.encode(
        [(":method", "POST"), (":path", "/"), (":scheme", "http"),
         (":authority", "example.test")]
    )
    first = headers_frame(1, block, end_stream=False)

    def frames(i):
        return (first if i == 0 else b"") + DataFrame(1, data=b"").serialize()

    return raw_flood(port, frames, count)


def made_you_reset(port, count):
    """MadeYouReset (CVE-2025-8671): valid streams, each followed by a
    frame that makes the server reset it: a WINDOW_UPDATE that overflows
    the stream's window (RFC 9113 §6.9.1: a stream error)."""
    encoder = hpack.Encoder()

    def frames(i):
        sid = 1 + 2 * i
        return headers_frame(sid, request_block(encoder)) + WindowUpdateFrame(
            sid, window_increment=2**31 - 1).serialize()

    return raw_flood(port, frames, count)


def window_update_flood(port, count):
    return raw_flood(port, lambda i: WindowUpdateFrame(0, window_increment=1).serialize(), count)


def slow_reader(port, hold):
    """Ask for a large response with a window of 0, never open it, hold
    the connection `hold` seconds; report how the stream ended."""
    sock, conn = connect(port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = conn.get_next_available_stream_id()
    conn.send_headers(
        sid,
        [(":method", "GET"), (":path", "/big"), (":scheme", "http"),
         (":authority", "example.test")],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    events = pump(sock, conn, ended(sid), hold)
    reset = [int(e.error_code) for e in events if isinstance(e, h2.events.StreamReset)]
    status = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    return {"head": bool(status), "reset": reset[0] if reset else None, "goaway": goaway(events)}


def raw_frame(kind, flags, sid, payload):
    """A frame's bytes as given, right or wrong: for the malformed frames
    hyperframe will not serialize (wrong lengths, values out of range)."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def setting(ident, value):
    return ident.to_bytes(2, "big") + value.to_bytes(4, "big")


def post_block(encoder):
    return encoder.encode(
        [(":method", "POST"), (":path", "/"), (":scheme", "http"),
         (":authority", "example.test")]
    )


# h2spec's ground that a server can be asked about by one connection: what
# each case sends after the preface and an empty SETTINGS. Each is then
# followed by a valid GET on stream `probe`, to see whether the connection
# still serves. RFC 9113 sections in the comments.
def conformance_cases():
    """case -> (a function of the HPACK encoder giving the bytes, probe)."""
    return {
        # §4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE (16384 here).
        "data_too_large": (lambda enc: (
            headers_frame(1, post_block(enc), end_stream=False)
            + DataFrame(1, data=b"x" * 16385, flags=["END_STREAM"]).serialize()), 3),
        "headers_too_large": (lambda enc: headers_frame(
            1, enc.encode(REQUEST + [("x-big", "h" * 16400)], huffman=False)), 3),
        # §6.5: SETTINGS with ACK and a payload; a length not a multiple of 6.
        "settings_ack_with_payload": (lambda enc: raw_frame(0x4, 0x1, 0, setting(0x3, 100)), 1),
        "settings_bad_length": (lambda enc: raw_frame(0x4, 0x0, 0, b"\x00\x03\x00"), 1),
        # §6.7: PING whose payload is not 8 octets.
        "ping_bad_length": (lambda enc: raw_frame(0x6, 0x0, 0, b"\x00" * 6), 1),
        # §6.9: WINDOW_UPDATE, §6.4: RST_STREAM, of a length other than 4.
        "window_update_bad_length": (lambda enc: raw_frame(0x8, 0x0, 0, b"\x00\x00\x01"), 1),
        "rst_stream_bad_length": (lambda enc: (
            headers_frame(1, post_block(enc), end_stream=False)
            + raw_frame(0x3, 0x0, 1, b"\x00\x00\x08")), 3),
        # §6.5.2: values out of range.
        "enable_push_2": (lambda enc: raw_frame(0x4, 0x0, 0, setting(0x2, 2)), 1),
        "initial_window_too_large": (lambda enc: raw_frame(0x4, 0x0, 0, setting(0x4, 2**31)), 1),
        "max_frame_size_too_small": (lambda enc: raw_frame(0x4, 0x0, 0, setting(0x5, 16383)), 1),
        "max_frame_size_too_large": (lambda enc: raw_frame(0x4, 0x0, 0, setting(0x5, 2**24)), 1),
        # §6.3: PRIORITY of a length other than 5 (a stream error), on an
        # open stream (a request whose body has not come yet).
        "priority_bad_length": (lambda enc: (
            headers_frame(1, post_block(enc), end_stream=False)
            + raw_frame(0x2, 0x0, 1, b"\x00\x00\x00\x00")), 3),
        # §5.3.1: a stream that depends on itself (PRIORITY, or HEADERS
        # with the PRIORITY flag): a stream error, PROTOCOL_ERROR.
        "priority_self_dependency": (lambda enc: PriorityFrame(1, depends_on=1).serialize(), 3),
        "headers_self_dependency": (lambda enc: raw_frame(
            0x1, 0x4 | 0x1 | 0x20, 1, (1).to_bytes(4, "big") + b"\x10" + request_block(enc)), 3),
        # §5.1, §6.3: PRIORITY may be sent on an idle stream (one about to
        # open, and one that never will).
        "priority_idle": (lambda enc: (
            PriorityFrame(1, depends_on=0, stream_weight=15).serialize()
            + PriorityFrame(7, depends_on=1, stream_weight=200).serialize()), 1),
        # §5.1.1: a client opens odd streams only.
        "even_stream_id": (lambda enc: headers_frame(2, request_block(enc)), 1),
        # §6.10: a header block is one run of frames: an unknown frame in
        # the middle of it is a connection error (PROTOCOL_ERROR).
        "unknown_frame_in_header_block": (lambda enc: (
            headers_frame(1, request_block(enc), end_headers=False)
            + raw_frame(0xFF, 0x0, 1, b"nope")
            + raw_frame(0x9, 0x4, 1, b"")), 3),
        # §4.1, §5.5: unknown frame types are ignored, on stream 0 and on
        # an idle stream.
        "unknown_frame": (lambda enc: (
            raw_frame(0xFF, 0x0, 0, b"ignore me")
            + raw_frame(0x42, 0xFF, 1, b"\x00" * 100)), 1),
    }


def read_frames(buf):
    """Complete frames at the front of buf (bytes): [(frame, payload)], rest."""
    out = []
    while len(buf) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
        if len(buf) < 9 + length:
            break
        body = buf[9:9 + length]
        try:
            frame.parse_body(memoryview(body))
        except Exception:
            pass
        out.append((frame, body))
        buf = buf[9 + length:]
    return out, buf


def conformance(port, case):
    """Send the case's frames, then the probe request; report the server's
    GOAWAY code, its RST_STREAMs and the probe's status."""
    encoder = hpack.Encoder()
    make, probe = conformance_cases()[case]
    bad = make(encoder)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    try:
        sock.sendall(bad + headers_frame(probe, request_block(encoder)))
    except OSError:
        pass
    decoder = hpack.Decoder()
    result = {"goaway": None, "resets": {}, "status": None, "closed": False}
    buf = b""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            sock.settimeout(max(deadline - time.time(), 0.01))
            data = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            result["closed"] = True
            break
        if not data:
            result["closed"] = True
            break
        frames, buf = read_frames(buf + data)
        done = ack = False
        for frame, _ in frames:
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                ack = True
            elif isinstance(frame, GoAwayFrame):
                result["goaway"] = frame.error_code
                done = True
            elif isinstance(frame, RstStreamFrame):
                result["resets"][str(frame.stream_id)] = frame.error_code
                done = done or frame.stream_id == probe
            elif isinstance(frame, HeadersFrame):
                # Every block, in order: HPACK's table is the connection's.
                fields = dict(decoder.decode(frame.data))
                if frame.stream_id == probe:
                    result["status"] = int(fields.get(":status", 0))
            if frame.stream_id == probe and "END_STREAM" in frame.flags:
                done = True
        if done:
            break
        if ack:
            try:
                sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
            except OSError:  # it may have given up on us already
                pass
    sock.close()
    return result


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    result = {
        "request": lambda: request(port, json.loads(arg)),
        "rapid_reset": lambda: rapid_reset(port, int(arg or 2000)),
        "continuation": lambda: continuation_flood(port, int(arg or 10000)),
        "hpack_bomb": lambda: hpack_bomb(port, int(arg or 4000)),
        "settings_flood": lambda: settings_flood(port, int(arg or 100000)),
        "ping_flood": lambda: ping_flood(port, int(arg or 100000)),
        "empty_data_flood": lambda: empty_data_flood(port, int(arg or 100000)),
        "made_you_reset": lambda: made_you_reset(port, int(arg or 3000)),
        "window_update_flood": lambda: window_update_flood(port, int(arg or 100000)),
        "slow_reader": lambda: slow_reader(port, float(arg or 5)),
        "conformance": lambda: conformance(port, arg),
    }[scenario]()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
