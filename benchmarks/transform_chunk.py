"""Time ``transform_chunk`` on one page of sandbox products, with no HTTP and no database.

The transform is the pipeline's own CPU work per chunk (mapping, checks, validation); this
isolates it from the network and the loader, so a change to the checks can be measured in
milliseconds. ``--profile`` prints where the time goes.

    .venv/bin/python benchmarks/transform_chunk.py                  # mean of 5 chunks
    .venv/bin/python benchmarks/transform_chunk.py --profile        # and a cProfile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time

from connectors.finale.columnar import deferring_decoder, to_frame
from pipeline.entities import ENTITIES
from pipeline.mapping import TransformContext
from pipeline.transform import transform_chunk
from sandbox.config import SandboxConfig
from sandbox.store import SandboxStore


def main() -> None:
    """Build the frames, warm up once, time ``--rounds`` transforms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    spec = ENTITIES["products"]
    store = SandboxStore(SandboxConfig(products=5 * args.chunk_size, port=0))
    body = store.read_collection("product", filter_param=None, limit=args.chunk_size, offset=0)
    decode = deferring_decoder(spec.deferred_fields)
    frames = [to_frame(decode(body)) for _ in range(args.rounds + 1)]
    ctx = TransformContext()
    transform_chunk(spec, frames[0], ctx)  # imports and caches out of the timing
    # The frames are the setup's objects, not the transform's: frozen, so that a full
    # garbage collection their creation makes due does not land in the timing (it did, at
    # random: 60 or 80 ms a chunk for the same code). The transform's own collections count.
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for frame in frames[1:]:
        transform_chunk(spec, frame, ctx)
    seconds = (time.perf_counter() - started) / args.rounds
    print(f"transform_chunk, {args.chunk_size:,} products: {seconds * 1000:.1f} ms a chunk")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for frame in frames[1:]:
            transform_chunk(spec, frame, ctx)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
