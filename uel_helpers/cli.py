"""The `uel` command: `uel datasets`, `uel demo`, `uel matrix`, `uel notebooks`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .data import available_datasets, load_dataset
from .device import describe_device, pick_device
from .training import PROTOCOLS, get_protocol, protocol_for_profile, train


def best_offline_dataset() -> str:
    """Fashion-MNIST when its files are here, else the bundled digits."""
    return "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"


def cmd_datasets(args: argparse.Namespace) -> int:
    for name, status in available_datasets(args.root).items():
        print(f"{name:18s} {status}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .plots import learning_curves

    dataset = args.dataset or best_offline_dataset()
    protocol = get_protocol(args.protocol) if args.protocol else protocol_for_profile(args.profile or "quick")
    if args.epochs:
        protocol = protocol.with_(epochs=args.epochs)
    device = pick_device(args.device)
    print(describe_device(device))
    print(f"dataset: {dataset} | protocol: {protocol.name} ({protocol.model}, {protocol.epochs} epochs)"
          f" | seed {args.seed}")
    t0 = time.perf_counter()
    train_set = load_dataset(dataset, "train")
    test_set = load_dataset(dataset, "test")
    hist = train(train_set, test_set, protocol, seed=args.seed, device=device, quiet=args.quiet)
    total = time.perf_counter() - t0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = learning_curves({f"clean {dataset}": hist}, title=f"clean training, protocol {protocol.name}")
    png = out / "demo_learning_curve.png"
    fig.savefig(png, dpi=110)
    result = {"dataset": dataset, "protocol": protocol.name, "seed": args.seed, "device": str(device),
              "clean": hist.summary(), "test_acc_per_epoch": hist.test_acc, "total_seconds": total}
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"{'run':10s} {'final acc':>10s} {'peak acc':>10s} {'peak epoch':>11s} {'train time':>11s}")
    print(f"{'clean':10s} {100 * hist.final_acc:9.2f}% {100 * hist.peak_acc:9.2f}% {hist.peak_epoch:11d} "
          f"{hist.wall_time:10.1f}s")
    print(f"\nwrote {png} and {out / 'demo.json'} (total {total:.1f}s)")
    return 0


def _write_matrix(results, name: str, out: Path, title: str) -> list[Path]:
    """Write `<out>/<name>.csv`, `.json` and the heatmap `.png` from the results so far."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    from .plots import accuracy_heatmap

    out.mkdir(parents=True, exist_ok=True)
    rows = [r.summary() for r in results]
    csv_path, json_path, png_path = out / f"{name}.csv", out / f"{name}.json", out / f"{name}.png"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps([r.to_dict() for r in results], indent=1))
    clean = next((100 * r.mean for r in results if r.attack == "none" and r.defense == "none"), None)
    fig = accuracy_heatmap({(r.attack, r.defense): 100 * r.mean for r in results}, title=title, clean=clean)
    fig.savefig(png_path, dpi=110)
    matplotlib.pyplot.close(fig)
    return [csv_path, json_path, png_path]


def cmd_matrix(args: argparse.Namespace) -> int:
    from .experiments import DataSpec, format_results, run_matrix
    from .poisons import REGISTRY as ATTACKS

    dataset = args.dataset or best_offline_dataset()
    spec = DataSpec(dataset, n_per_class=args.n_per_class, as_rgb=args.rgb)
    protocol = get_protocol(args.protocol) if args.protocol else protocol_for_profile(args.profile)
    attacks = sorted(ATTACKS) if args.attacks == ["all"] else args.attacks
    unknown = [a for a in attacks if a not in ATTACKS and a != "none"]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; expected some of {', '.join(sorted(ATTACKS))} or 'all'")
    name = args.name or f"matrix_{dataset}_{protocol.name}"
    out = Path(args.out)
    title = f"{spec.label}, protocol {protocol.name}, {args.seeds} seed(s)"
    print(f"matrix {name}: {title}\nattacks: {', '.join(attacks)}\ndefenses: {', '.join(args.defenses)}")

    def save(result, done: int, total: int) -> None:
        partial.append(result)
        _write_matrix(partial, name, out, title + ("" if done == total else f" ({done}/{total} cells)"))

    partial: list = []
    t0 = time.perf_counter()
    results = run_matrix(attacks, args.defenses, spec, protocol, args.seeds, on_result=save, device=args.device,
                         quiet=args.quiet)
    print()
    print(format_results(results))
    paths = _write_matrix(results, name, out, title)
    print(f"\nwrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f}s; finished runs are cached "
          "and reused by the next call)")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebook_sync import sync_all

    for path in sync_all(args.folder):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uel", description="Unlearnable Examples Lab helpers")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="which datasets load offline here, and how to get the others")
    p.add_argument("--root", default=None, help="data folder (default: UEL_DATA or ~/.cache/uel_helpers/data)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("demo", help="train a clean judge on the best offline dataset and write results/")
    p.add_argument("--dataset", default=None, help="default: fashion-mnist if installed, else digits")
    p.add_argument("--profile", default=None, choices=["smoke", "quick", "paper"], help="default: quick")
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS), help="overrides --profile")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("matrix", help="attack x defense grid: table, CSV, JSON and heatmap in --out (resumable)")
    p.add_argument("--dataset", default=None, help="default: fashion-mnist if installed, else digits")
    p.add_argument("--n-per-class", type=int, default=None, help="class-balanced training subset (default: all)")
    p.add_argument("--rgb", action="store_true", help="repeat a grayscale channel 3x (colour attacks' setting)")
    p.add_argument("--attacks", nargs="+", default=["all"], help="attack names, or 'all' (clean is always added)")
    p.add_argument("--defenses", nargs="+", default=["none", "grayscale", "jpeg", "adversarial-training"])
    p.add_argument("--profile", default=None, choices=["smoke", "quick", "paper"], help="default: by machine")
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS), help="overrides --profile")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--name", default=None, help="output file stem (default: matrix_<dataset>_<protocol>)")
    p.add_argument("--out", default="results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("notebooks", help="regenerate notebooks/*.ipynb from their py:percent sources")
    p.add_argument("--folder", default="notebooks")
    p.set_defaults(func=cmd_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"uel {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
