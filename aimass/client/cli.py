"""CLI commands of the client and the gateway: ``request``, ``result``, ``watch``, ``gateway``.

``register(subparsers)`` adds them to the ``aimass`` command; nothing heavy is imported until
a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from aimass.contract.rules import printable

if TYPE_CHECKING:
    import numpy as np

    from aimass.client.client import Client
    from aimass.client.feed import Start
    from aimass.contract.messages import InferenceResult
    from aimass.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client and gateway subcommands to ``aimass``."""
    req = sub.add_parser("request", help="submit an inference request (prints its id at once)",
                         description="Submit a request to the inference job through Kafka and print its id. "
                         "Inputs come from .npy, .npz, .json or image files (images need Pillow).")
    req.add_argument("model", help="model name in the repository")
    req.add_argument("-i", "--input", action="append", required=True, metavar="NAME=FILE",
                     help="an input tensor from FILE (.npy/.json/image); a bare FILE.npz gives one input per array")
    req.add_argument("--version", help="pin a model version (default: the newest)")
    req.add_argument("--deadline-s", type=float, help="the result is no longer wanted after this many seconds")
    req.add_argument("--priority", type=int, default=0,
                     help="higher first, 0..job.max_priority (default 0; docs/SCHEDULING.md)")
    req.add_argument("--split", type=int, metavar="ROWS",
                     help="bulk: cut the inputs into requests of ROWS rows each; prints one id per line")
    req.add_argument("--wait", type=float, metavar="S", help="also wait up to S seconds for the result(s)")
    req.add_argument("--no-validate", action="store_true", help="skip the check against the model repository")
    req.set_defaults(func=cmd_request)

    res = sub.add_parser("result", help="print the result of a request id (from the compacted results topic)")
    res.add_argument("request_id")
    res.add_argument("--wait", type=float, default=0.0, metavar="S", help="wait up to S seconds for it (default 0)")
    res.add_argument("--json", action="store_true", help="print JSON (outputs as nested lists)")
    res.set_defaults(func=cmd_result)

    watch = sub.add_parser("watch", help="stream results as they arrive, as a table")
    watch.add_argument("--from-beginning", action="store_true", help="start with the results already on the topic")
    watch.add_argument("--model", help="only results of this model")
    watch.add_argument("-n", "--count", type=int, help="stop after this many results")
    watch.set_defaults(func=cmd_watch)

    gateway = sub.add_parser("gateway", help="serve the gRPC gateway (aimass.v1.Inference + health)")
    gateway.add_argument("--host", help="listen address (default AIMASS_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="port (default AIMASS_GATEWAY_PORT; 0: any free port)")
    gateway.set_defaults(func=cmd_gateway)


def _error(command: str, message: object) -> int:
    print(f"aimass {command}: error: {message}", file=sys.stderr)
    return 2


# -- request ---------------------------------------------------------------------------------


def cmd_request(settings: Settings, args: argparse.Namespace) -> int:
    """``aimass request``."""
    from aimass.client import Client, ClientError
    from aimass.client.files import InputFileError, load_arrays, parse_input

    if args.split is not None and args.split < 1:
        return _error("request", "--split must be >= 1")
    with Client(settings, validate=not args.no_validate, read_results=args.wait is not None) as client:
        try:
            specs = _specs(client, args.model, args.version)
            inputs: dict[str, np.ndarray] = {}
            for item in args.input:
                name, path = parse_input(item)
                inputs.update(load_arrays(name, path, specs))
            deadline = None if args.deadline_s is None else int((time.time() + args.deadline_s) * 1000)
            if args.split is None:
                ids = [client.submit(args.model, inputs, args.version, deadline, priority=args.priority)]
                print(ids[0], flush=True)
            else:
                ids = _bulk(client, args, inputs, deadline)
            client.flush()
        except (ClientError, InputFileError) as exc:
            return _error("request", exc)
        if args.wait is None:
            return 0
        worst = 0
        for result in client.results(ids, timeout=args.wait):
            worst = max(worst, _print_result(result) if len(ids) == 1 else 0)
            if len(ids) > 1:
                print(_row(result), flush=True)
        missing = [rid for rid in ids if client.store.get(rid) is None]
        if missing:
            return _error("request", f"no result within {args.wait:g} s for {len(missing)} request(s)")
        return worst


def _specs(client: Client, model: str, version: str | None) -> dict[str, Any] | None:
    """The model's declared inputs by name, when the repository is at hand."""
    from aimass.client import validation

    if client.repository is None:
        return None
    spec = validation.resolve(client.repository, model, version)
    return {t.name: t for t in spec.inputs}


def _bulk(client: Client, args: argparse.Namespace, inputs: dict[str, np.ndarray], deadline: int | None) -> list[str]:
    from aimass.client import InvalidRequest

    rows = {a.shape[0] if a.ndim else 1 for a in inputs.values()}
    if len(rows) != 1:
        raise InvalidRequest(f"inputs differ in row count: {sorted(rows)}")
    total = rows.pop()
    count = -(-total // args.split)
    ids: list[str] = []
    started = time.monotonic()
    for i, start in enumerate(range(0, total, args.split), 1):
        chunk = {name: a[start : start + args.split] for name, a in inputs.items()}
        rid = client.submit(args.model, chunk, args.version, deadline, priority=args.priority)
        ids.append(rid)
        print(rid, flush=False)
        if i % 100 == 0 or i == count:
            rate = i / max(time.monotonic() - started, 1e-9)
            print(f"\rsubmitted {i}/{count} requests ({min(start + args.split, total)}/{total} rows, "
                  f"{rate:,.0f} requests/s)", end="" if i < count else "\n", file=sys.stderr, flush=True)
    sys.stdout.flush()
    return ids


# -- result ----------------------------------------------------------------------------------


def cmd_result(settings: Settings, args: argparse.Namespace) -> int:
    """``aimass result``: 0 when the result is OK, 1 for an error result, 3 when there is none."""
    from aimass.client import Client, ResultTimeout

    with Client(settings, start="beginning", validate=False) as client:
        assert client.feed is not None
        timeout_s = client.kafka_timeout_ms / 1000 + args.wait
        client.feed.wait_ready(timeout_s)
        if client.feed.error:
            return _error("result", client.feed.error)
        try:
            result = client.result(args.request_id, timeout=args.wait if client.feed.caught_up.is_set() else timeout_s)
        except ResultTimeout:
            waited = f" within {args.wait:g} s" if args.wait else ""
            print(f"aimass result: no result for {printable(args.request_id)}{waited} on "
                  f"{settings.kafka.results_topic}", file=sys.stderr)
            return 3
    if args.json:
        print(json.dumps(_as_json(result), indent=2))
        return 0 if result.status == "OK" else 1
    return _print_result(result)


def _as_json(result: InferenceResult) -> dict[str, Any]:
    out = dataclasses.asdict(result)
    out["status"] = str(result.status)
    out["outputs"] = {t.name: t.to_numpy().tolist() for t in result.outputs}
    return out


def _print_result(result: InferenceResult) -> int:
    p = printable
    print(f"request   {p(result.request_id or '-')}")
    print(f"model     {p(result.model)} (version {p(result.version or '-')})")
    print(f"status    {result.status}" + (f": {p(result.error)}" if result.error else ""))
    t = result.timings
    print(f"timings   end-to-end {t.end_to_end_ms:.1f} ms, queued {t.queued_ms:.1f} ms, "
          f"inference {t.inference_ms:.2f} ms, batch {t.batch_size}")
    if result.graph is not None:  # a graph's steps (docs/GRAPHS.md)
        g = result.graph
        print("graph     " + ("PARTIAL, missing " + p(", ".join(g.missing)) if g.partial else "complete"))
        for step in g.steps:
            print(f"step      {p(step.step)}: {p(step.model)} {p(step.version or '-')} {p(step.status)}, inference "
                  f"{step.inference_ms:.2f} ms, batch {step.batch_size}, done at {step.finished_ms:.1f} ms")
    for tensor in result.outputs:
        array = tensor.to_numpy()
        print(f"output    {p(tensor.name)} {p(tensor.dtype)}{list(tensor.shape)}: {_short(array, 12)}")
    return 0 if result.status == "OK" else 1


def _short(array: np.ndarray, limit: int) -> str:
    import numpy as np

    flat = array.ravel()
    with np.printoptions(precision=4, suppress=True):
        text = np.array2string(flat[:limit], separator=" ")
    return text[:-1] + " ...]" if flat.size > limit else text


# -- watch -----------------------------------------------------------------------------------

_HEADER = f"{'time':<13}{'request id':<38}{'model:version':<18}{'status':<19}{'batch':>6}{'e2e ms':>9}  outputs"


def _row(result: InferenceResult) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(result.completed_at_ms / 1000))
    stamp += f".{result.completed_at_ms % 1000:03d}"
    model = printable(f"{result.model}:{result.version or '-'}")
    if result.status == "OK":
        parts = []
        for tensor in result.outputs:
            array = tensor.to_numpy()
            shown = _short(array, 4) if array.size <= 4 else f"{tensor.dtype}{list(tensor.shape)}"
            parts.append(f"{printable(tensor.name)}={shown}")
        detail = " ".join(parts)
    else:
        detail = printable((result.error or "")[:80])
    return (f"{stamp:<13}{printable(result.request_id or '-'):<38}{model[:17]:<18}{result.status:<19}"
            f"{result.timings.batch_size:>6}{result.timings.end_to_end_ms:>9.1f}  {detail}")


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    """``aimass watch``: one line per result until interrupted (or ``--count``)."""
    from aimass.client import Client, ResultStore

    gw = settings.gateway
    store = ResultStore(gw.store_size, gw.ttl_s, max_bytes=gw.store_bytes)
    start: Start = "beginning" if args.from_beginning else "now"
    # Subscribe before the feed starts, so that the replayed results are shown too.
    with store.subscribe() as results, Client(settings, start=start, store=store, validate=False):
        print(_HEADER, flush=True)
        shown = 0
        for result in results:
            if args.model and result.model != args.model:
                continue
            print(_row(result), flush=True)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    return 0


# -- gateway ---------------------------------------------------------------------------------


def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    """``aimass gateway``: serve until SIGINT or SIGTERM."""
    import asyncio
    import logging

    from aimass.gateway.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gw = settings.gateway
    if args.host is not None:
        gw = dataclasses.replace(gw, host=args.host)
    settings = dataclasses.replace(settings, gateway=gw)
    asyncio.run(serve(settings, port=args.port, say=lambda m: print(f"[aimass] {m}", flush=True)))
    return 0
