"""``tda-ray events replay`` and ``tda-ray streams scores|list``: streams through a running service."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tda_ray.cli.common import EXIT_OK, PROG, fail, positive_int


def _server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="http://127.0.0.1:8000", help="service URL (default: http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=None, help="API key (default: $TDA_API_KEY)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def events_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    r = sub.add_parser("replay", help="post a CSV's rows as events of one source, in batches")
    r.add_argument("file", help="CSV file with a header row")
    r.add_argument("--source", required=True, help="the events' source_id")
    r.add_argument("--time-column", required=True, help="column of the event time (RFC 3339, or epoch s/ms)")
    r.add_argument("--value-columns", required=True, help="comma-separated columns of the event's values")
    r.add_argument("--rate", type=_positive_float, default=None, help="at most this many events per second")
    r.add_argument("--batch", type=positive_int, default=500, help="events per request (default: 500)")
    _server_arguments(r)


def streams_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="streams_command", metavar="ACTION", required=True)
    s = sub.add_parser("scores", help="print a source's window scores (JSON lines)")
    s.add_argument("source", help="the source_id")
    s.add_argument("--since", default=None, help="only windows ending at or after this time (RFC 3339)")
    s.add_argument("--follow", action="store_true", help="keep printing scores as they arrive (Ctrl-C stops)")
    s.add_argument("--alerts", action="store_true", help="only alerts")
    _server_arguments(s)
    ls = sub.add_parser("list", help="the sources, with their latest score")
    _server_arguments(ls)


def _with_client(args: argparse.Namespace, body: Callable[[Any], int]) -> int:
    import httpx

    from tda_ray.client import ApiError, Client

    key = args.api_key or os.environ.get("TDA_API_KEY") or None
    try:
        with Client(args.server, api_key=key) as client:
            return body(client)
    except ApiError as exc:
        if exc.status_code < 500:
            fail(str(exc))
        print(f"{PROG}: server error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"{PROG}: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1


def events_run(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.value_columns.split(",") if c.strip()]
    if not columns:
        fail("--value-columns names no column")

    def body(client: Any) -> int:
        sent = client.replay_csv(
            args.file,
            args.source,
            time_column=args.time_column,
            value_columns=columns,
            rate=args.rate,
            batch=args.batch,
            progress=sys.stderr.isatty(),
        )
        print(f"{PROG}: {sent} events of {args.source} accepted", file=sys.stderr)
        return EXIT_OK

    return _with_client(args, body)


def streams_run(args: argparse.Namespace) -> int:
    def body(client: Any) -> int:
        if args.streams_command == "list":
            for item in client.streams():
                print(json.dumps(item))
            return EXIT_OK
        if args.follow:
            for record in client.follow_scores(args.source, since=args.since):
                if record["alert"] or not args.alerts:
                    print(json.dumps(record), flush=True)
            return EXIT_OK  # pragma: no cover - ends with Ctrl-C
        since = args.since
        while True:
            page = client.scores(args.source, since=since)
            for record in page["items"]:
                if record["alert"] or not args.alerts:
                    print(json.dumps(record))
            if page["next_since"] is None:
                return EXIT_OK
            since = page["next_since"]

    return _with_client(args, body)
