"""``medsyn serve``: a local OpenAI-compatible server."""

from __future__ import annotations

import argparse
from medsyn_utils.generate.serve import CompletionServer


def _serve_cli(args: argparse.Namespace) -> int:
    server = CompletionServer(args.model, host=args.host, port=args.port, device=args.device,
                              dtype=args.dtype, served_name=args.name, api_key=args.api_key,
                              verbose=True)
    print(f"{server.spec.licence_notice()}\nServing {server.served_name} at {server.url} "
          f"(Ctrl-C to stop)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """``medsyn serve``: an OpenAI-compatible endpoint for a local model."""
    parser = subparsers.add_parser("serve", help="serve a local model over an OpenAI-compatible API")
    parser.add_argument("--model", default="embedded:gemma-3-270m",
                        help="embedded:gemma-3-270m, a local folder or a hub id")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--name", default=None, help="model name clients send (default: the model's)")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.set_defaults(func=_serve_cli)
