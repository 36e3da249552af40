"""The `gomaml` command line."""
import argparse
import json
import sys


class UsageError(Exception):
    """Bad flags or configuration: exit code 2."""


def cmd_info(args):
    from gomaml import build_info
    print(json.dumps(build_info(), indent=2))
    return 0


def cmd_example(args):
    from gomaml.example import main as example
    example()
    return 0


def build_parser():
    ap = argparse.ArgumentParser(
        prog="gomaml",
        description="Exact MAML meta-gradients for linear-in-features models and the "
                    "global-optimality bounds of Wang, Cai, Yang & Wang (ICML 2020).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="how gomaml was built (OpenMP, threads, BLAS, ISA)")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("example", help="a small worked example of the meta-gradient")
    p.set_defaults(func=cmd_example)
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"gomaml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gomaml: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, no traceback
        print(f"gomaml: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
