"""Command-line entry points: ``python -m jaxadv demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxadv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train or restore the default victim, attack it, print a table"
    )
    demo.add_argument("--model", default="cw", help="victim: cw, c4 or resnet (default cw)")
    demo.add_argument("--images", type=int, default=128, help="test images to attack (128)")
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed of the attacks (0)")
    demo.add_argument("--cache-dir", default=None, help="where trained victims are kept")
    demo.add_argument("--epochs", type=int, default=None, help="victim training epochs")
    demo.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only the attacks whose name starts with one of these words, e.g. PGD C&W",
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        from jaxadv.demo import run_demo

        if args.images < 1:
            parser.error(f"--images must be >= 1; got {args.images}")
        run_demo(
            model=args.model,
            num_images=args.images,
            seed=args.seed,
            cache_dir=args.cache_dir,
            only=tuple(args.only) if args.only else None,
            epochs=args.epochs,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
