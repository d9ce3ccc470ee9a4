"""An Ember function in Python: summarises a batch of orders.

Request: JSON {"orders": [{"id": "A-1", "sku": "tea-01", "qty": 2,
"price": "3.50", "at": "2024-03-01T09:30:00+00:00", "email": "x@y.org"},
...], "tz": "Europe/Paris"}. Response: JSON with totals per SKU (exact
decimal arithmetic), orders per local weekday, the invalid orders and why,
and a digest of the canonical input. Everything at module level runs once,
at initialisation, before the instance is snapshotted; handle() runs per
invocation. docs/python.md describes the contract.
"""
import collections
import dataclasses
import datetime
import decimal
import hashlib
import json
import re
import zoneinfo

SKU = re.compile(r"^[a-z]+-\d{2}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
CENT = decimal.Decimal("0.01")


@dataclasses.dataclass(frozen=True)
class Order:
    id: str
    sku: str
    qty: int
    price: decimal.Decimal
    at: datetime.datetime
    email: str

    @classmethod
    def parse(cls, d):
        if not SKU.match(d.get("sku", "")):
            raise ValueError("bad sku %r" % d.get("sku"))
        if not EMAIL.match(d.get("email", "")):
            raise ValueError("bad email")
        try:
            price = decimal.Decimal(d["price"])
        except decimal.InvalidOperation:
            raise ValueError("bad price %r" % d["price"]) from None
        qty = int(d["qty"])
        if qty <= 0:
            raise ValueError("qty must be positive")
        at = datetime.datetime.fromisoformat(d["at"])
        if at.tzinfo is None:
            raise ValueError("timestamp without a time zone")
        return cls(d["id"], d["sku"], qty, price, at, d["email"])


@dataclasses.dataclass
class Summary:
    orders: int = 0
    items: int = 0
    revenue: decimal.Decimal = decimal.Decimal(0)
    by_sku: dict = dataclasses.field(default_factory=dict)
    by_weekday: dict = dataclasses.field(default_factory=dict)
    first: str = ""
    last: str = ""
    span_hours: float = 0.0
    invalid: list = dataclasses.field(default_factory=list)
    digest: dict = dataclasses.field(default_factory=dict)


def summarise(req):
    tz = zoneinfo.ZoneInfo(req.get("tz", "UTC"))
    s = Summary()
    qty = collections.Counter()
    money = collections.defaultdict(decimal.Decimal)
    days = collections.OrderedDict((d, 0) for d in (
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    stamps = []
    for raw in req.get("orders", []):
        try:
            o = Order.parse(raw)
        except (KeyError, ValueError) as e:
            s.invalid.append({"id": raw.get("id"), "why": str(e)})
            continue
        s.orders += 1
        s.items += o.qty
        qty[o.sku] += o.qty
        money[o.sku] += (o.price * o.qty).quantize(CENT)
        local = o.at.astimezone(tz)
        days[local.strftime("%a")] += 1
        stamps.append(local)
    s.revenue = sum(money.values(), decimal.Decimal(0))
    s.by_sku = {k: {"qty": n, "total": str(money[k])}
                for k, n in qty.most_common()}
    s.by_weekday = {d: n for d, n in days.items() if n}
    if stamps:
        stamps.sort()
        s.first, s.last = stamps[0].isoformat(), stamps[-1].isoformat()
        s.span_hours = (stamps[-1] - stamps[0]) / datetime.timedelta(hours=1)
    canon = json.dumps(req, sort_keys=True, separators=(",", ":")).encode()
    s.digest = {"sha256": hashlib.sha256(canon).hexdigest(),
                "blake2b": hashlib.blake2b(canon, digest_size=16).hexdigest(),
                "md5": hashlib.md5(canon).hexdigest()}
    out = dataclasses.asdict(s)
    out["revenue"] = str(s.revenue)
    return out


def handle(event: bytes) -> bytes:
    return json.dumps(summarise(json.loads(event)), indent=1).encode() + b"\n"


# Warm-up: one call now, at initialisation, so that what it loads and
# compiles lazily (regular expression caches, decimal contexts, time zone
# data, first-call specialisations) is in the snapshot instead of being
# paid by the first invocation after every restore.
handle(b'{"orders": [{"id": "w", "sku": "warm-00", "qty": 1, "price": "1",'
       b' "at": "2024-01-01T00:00:00+00:00", "email": "w@x.org"}],'
       b' "tz": "Europe/Paris"}')
