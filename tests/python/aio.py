"""asyncio in a handler (tests/integration/python-micro): an event loop per
invocation with tasks, sleeps, a queue, a timeout and a thread-pool call;
the answer does not depend on timing."""
import asyncio
import hashlib


async def producer(q, n):
    for i in range(n):
        await q.put(i)
        await asyncio.sleep(0.001)
    await q.put(None)


async def consumer(q):
    total = 0
    while (item := await q.get()) is not None:
        total += item
    return total


def blocking_digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


async def main(event):
    q = asyncio.Queue()
    _, total = await asyncio.gather(producer(q, 20), consumer(q))
    loop = asyncio.get_running_loop()
    digest = await loop.run_in_executor(None, blocking_digest, event)
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.02)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    slept = [await asyncio.sleep(0.005, result=i) for i in range(3)]
    return "total=%d digest=%s timed_out=%s slept=%s" % (
        total, digest, timed_out, slept)


def handle(event: bytes) -> bytes:
    return asyncio.run(main(event)).encode() + b"\n"
