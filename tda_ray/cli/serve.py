"""``tda-ray serve``: the HTTP service (local Ray + Serve) in the foreground."""

from __future__ import annotations

import argparse

from tda_ray.cli.common import fail, positive_int, require_extra


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="Serve config (default: $TDA_SERVE_CONFIG or serve_config.yaml)")
    p.add_argument("--host", default=None, help="bind address (default: $TDA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=None, help="port (default: $TDA_PORT or 8000)")
    p.add_argument("--num-cpus", type=positive_int, default=None, help="CPUs of the local Ray (default: 2)")
    p.add_argument("--ray-address", default=None, help="'local' (default) starts Ray here; 'auto' joins a cluster")


def run(args: argparse.Namespace) -> int:
    require_extra("ray.serve")
    from tda_ray.service.server import run_server
    from tda_ray.service.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "num_cpus": args.num_cpus,
            "ray_address": args.ray_address,
            "serve_config": args.config,
        }.items()
        if v is not None
    }
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:  # pydantic's ValidationError names the field
        fail(f"invalid settings: {exc}")
    return run_server(settings)
