#!/usr/bin/env python3
"""Writes the examples' sample records (examples/NAME/records.ndjson), shaped as the
tutorials' producers send them, with about 1% malformed on purpose.

    python3 examples/make_samples.py            # every example
    python3 examples/make_samples.py unicorns   # one

The same seed gives the same files; they are checked in, so this runs only to change them.
"""

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
COUNT = 2000
ERROR_RATE = 0.01
START = datetime(2024, 3, 4, tzinfo=timezone.utc)


def trades(rng):
    symbols = ["AAPL", "AMZN", "MSFT", "GOOG", "TSLA", "NFLX", "META", "INTC"]
    base = {s: rng.uniform(20, 400) for s in symbols}
    for i in range(COUNT):
        symbol = rng.choice(symbols)
        price = round(base[symbol] * rng.uniform(0.95, 1.05), 2)
        yield {
            "tickerSymbol": symbol,
            "tradeType": rng.choice(["BUY", "SELL"]),
            "price": price,
            "quantity": rng.randint(1, 1000),
            "id": i,
        }


def events(rng):
    kinds = ["page_view", "add_to_cart", "purchase", "search"]
    users = [f"u-{n:03}" for n in range(60)]
    countries = ["de", "fr", "us", "gb", "", None]
    for i in range(COUNT):
        at = START + timedelta(seconds=rng.randint(0, 3 * 86400 - 1),
                               milliseconds=rng.randint(0, 999))
        offset = timezone(timedelta(hours=rng.choice([0, 1, -5, 5.5])))
        kind = rng.choice(kinds)
        user = {"id": rng.choice(users)}
        country = rng.choice(countries)
        if country is not None:
            user["country"] = country
        record = {
            "event_id": f"e-{i:06}",
            "type": kind,
            "occurred_at": at.astimezone(offset).isoformat(timespec="milliseconds"),
            "user": user,
        }
        if kind in ("add_to_cart", "purchase"):
            # The scraper of the tutorial sends prices as text.
            record["price"] = f"{rng.uniform(10, 60):.2f}"
            record["properties"] = {"upc": f"{rng.getrandbits(64):016x}",
                                    "availability": rng.choice(["In stock", "Out of stock"])}
        elif kind == "search":
            record["properties"] = {"terms": rng.sample(["poetry", "travel", "history", "art"], 2)}
        if rng.random() < 0.1:
            record["session"] = rng.getrandbits(32)  # not in the dataset: dropped
        yield record


def unicorns(rng):
    names = ["Shadowfax", "Bucephalus", "Rocinante", "Pegasus", "Chase", "Marengo"]
    state = {n: [42.26 + rng.uniform(-0.1, 0.1), -71.97 + rng.uniform(-0.1, 0.1), 110, 150]
             for n in names}
    at = {n: START + timedelta(seconds=rng.randint(0, 600)) for n in names}
    for _ in range(COUNT):
        name = rng.choice(names)
        s = state[name]
        s[0] += rng.uniform(-0.002, 0.002)
        s[1] += rng.uniform(-0.002, 0.002)
        s[2] = max(0, s[2] + rng.randint(-3, 3))
        s[3] = max(0, s[3] + rng.randint(-3, 3))
        at[name] += timedelta(seconds=rng.randint(60, 800), milliseconds=rng.randint(0, 999))
        yield {
            "Name": name,
            "StatusTime": at[name].strftime("%Y-%m-%d %H:%M:%S.") + f"{at[name].microsecond // 1000:03}",
            "Latitude": s[0],
            "Longitude": s[1],
            "Distance": rng.randint(100, 200),
            "MagicPoints": s[2],
            "HealthPoints": s[3],
        }


def vin(rng):
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(17))


def telematics(rng):
    vehicles = [vin(rng) for _ in range(12)]
    for i in range(COUNT):
        at = START + timedelta(milliseconds=rng.randint(0, 2 * 86400 * 1000 - 1))
        record = {
            "vin": rng.choice(vehicles),
            "ts": int(at.timestamp() * 1000),
            "location": {"lat": round(47.6 + rng.uniform(-0.3, 0.3), 6),
                         "lon": round(-122.3 + rng.uniform(-0.3, 0.3), 6)},
            "speed_kmh": round(rng.uniform(0, 120), 1),
            "engine_on": rng.random() < 0.9,
            "fuel_pct": rng.randint(5, 100),
        }
        if rng.random() < 0.7:
            record["trip"] = {"id": f"t-{i // 50:04}"}
        yield record


def malform(rng, record):
    """One record wrong on purpose: truncated, not an object, a required key missing, or
    a value of the wrong type."""
    text = json.dumps(record, separators=(",", ":"))
    kind = rng.randrange(4)
    if kind == 0:
        return text[: len(text) // 2]
    if kind == 1:
        return json.dumps(list(record.values()))
    first = next(iter(record))
    if kind == 2:
        del record[first]
    else:
        record[first] = [1, 2]
    return json.dumps(record, separators=(",", ":"))


EXAMPLES = {"trades": trades, "events": events, "unicorns": unicorns, "telematics": telematics}


def main(names):
    for name in names or EXAMPLES:
        rng = random.Random(f"streamlake-{name}")
        lines = []
        for record in EXAMPLES[name](rng):
            if rng.random() < ERROR_RATE:
                lines.append(malform(rng, record))
            else:
                lines.append(json.dumps(record, separators=(",", ":")))
        path = HERE / name / "records.ndjson"
        path.write_text("\n".join(lines) + "\n")
        print(f"{path.relative_to(HERE.parent)}: {len(lines)} records")


if __name__ == "__main__":
    main(sys.argv[1:])
