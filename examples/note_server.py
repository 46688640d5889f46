#!/usr/bin/env python3
"""A second implementation of pushlab's interface, written the way the study note's Spring Boot
example is (see the README, "Point the lab at your own server"), so the lab can measure what
those choices cost.

Kept on purpose from the note's example:
- one SSE emitter per user in a plain dict: a second tab of the same user replaces the first,
  which then stays open and receives nothing; the emitter is removed by user id when its
  stream ends, even if a newer tab had replaced it;
- WebSocket sockets kept the same way, one per user;
- a first `connect` event to confirm the stream;
- no resume: `after` and `Last-Event-ID` are ignored by the streams (they start "from now");
- ids from a counter starting at 1, so a restarted server reuses them;
- errors not checked: bad input raises, and aiohttp answers 500 in plain text;
- no /stats: the lab can only count bytes at its own sockets.
The polls honour `after`, as they cannot work without a cursor.

Runs on Debian's python3-aiohttp (`apt-get install python3-aiohttp`):
    python3 examples/note_server.py --bind 127.0.0.1:0
prints `listening on ADDR` on its first line, as pushlab-server does.
"""

import argparse
import asyncio
import json
import socket
import sys
import time

from aiohttp import web, WSMsgType

comments = []  # every comment published, oldest first (no bound, as in the note)
next_id = 1  # ids from a counter
emitters = {}  # user -> SSE response: one per user, as the note's Map<String, SseEmitter>
sockets = {}  # user -> WebSocket: the same for WebSocket
changed = asyncio.Condition()  # wakes the long polls


def comment_json(comment):
    """The comment's JSON in the interface's key order, without spaces."""
    body = {"id": comment["id"], "from": comment["from"]}
    if comment.get("to") is not None:
        body["to"] = comment["to"]
    body["text"] = comment["text"]
    body["published_at_us"] = comment["published_at_us"]
    return json.dumps(body, separators=(",", ":"))


def for_user(comment, user):
    return comment.get("to") is None or comment["to"] == user


async def publish(sender, to, text):
    global next_id
    comment = {
        "id": next_id,
        "from": sender,
        "to": to,
        "text": text,
        "published_at_us": int(time.time() * 1_000_000),
    }
    next_id += 1
    comments.append(comment)
    data = comment_json(comment)
    # As the note's addComment: the receiver's emitter, or every emitter for a broadcast.
    targets = list(emitters.items()) if to is None else [(to, emitters.get(to))]
    for user, emitter in targets:
        if emitter is None:
            continue
        try:
            await emitter.write(
                f"id: {comment['id']}\nevent: comment\ndata: {data}\n\n".encode()
            )
        except Exception:
            emitters.pop(user, None)
    targets = list(sockets.items()) if to is None else [(to, sockets.get(to))]
    for user, ws in targets:
        if ws is None:
            continue
        try:
            await ws.send_str(data)
        except Exception:
            sockets.pop(user, None)
    async with changed:
        changed.notify_all()
    return comment


async def post_comment(request):
    body = await request.json()
    comment = await publish(body["from"], body.get("to"), body["text"])
    return web.json_response({"id": comment["id"]}, status=201)


def page(user, after):
    found = [c for c in comments if c["id"] > after and for_user(c, user)]
    latest = comments[-1]["id"] if comments else 0
    body = "{\"comments\":[" + ",".join(comment_json(c) for c in found) + "],"
    body += f"\"next\":{max(after, latest)}}}"
    return found, web.Response(text=body, content_type="application/json")


def cursor(request):
    latest = comments[-1]["id"] if comments else 0
    return int(request.query.get("after", latest))


async def poll(request):
    return page(request.query.get("user"), cursor(request))[1]


async def long_poll(request):
    user = request.query.get("user")
    after = cursor(request)
    timeout = int(request.query.get("timeout_ms", 30_000)) / 1000
    deadline = time.monotonic() + timeout
    async with changed:
        while True:
            found, response = page(user, after)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return response
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


async def sse(request):
    user = request.query.get("user", "")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(f"event: connect\ndata: connected {user}\n\n".encode())
    emitters[user] = response  # a second tab replaces the first
    try:
        # Held until the client goes away (aiohttp cancels the handler then).
        await asyncio.Future()
    finally:
        emitters.pop(user, None)  # by user id, as the note's onCompletion does
    return response


async def ws(request):
    user = request.query.get("user", "")
    socket_ = web.WebSocketResponse()
    await socket_.prepare(request)
    latest = comments[-1]["id"] if comments else 0
    await socket_.send_str(json.dumps({"connected": {"user": user, "after": latest}}))
    sockets[user] = socket_
    try:
        async for message in socket_:
            if message.type == WSMsgType.TEXT:
                body = json.loads(message.data)
                comment = await publish(user, body.get("to"), body["text"])
                await socket_.send_str(json.dumps({"ack": comment["id"]}))
    finally:
        sockets.pop(user, None)
    return socket_


def app():
    application = web.Application()
    application.router.add_post("/comments", post_comment)
    application.router.add_get("/poll", poll)
    application.router.add_get("/long-poll", long_poll)
    application.router.add_get("/sse", sse)
    application.router.add_get("/ws", ws)
    return application


async def main(bind):
    host, port = bind.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    runner = web.AppRunner(app())
    await runner.setup()
    await web.SockSite(runner, listener).start()
    address = listener.getsockname()
    print(f"listening on {address[0]}:{address[1]}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8080", help="address to listen on")
    arguments = parser.parse_args()
    try:
        asyncio.run(main(arguments.bind))
    except KeyboardInterrupt:
        sys.exit(0)
