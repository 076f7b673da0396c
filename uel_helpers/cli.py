"""The `uel` command: `uel datasets`, `uel demo`, `uel matrix`, `uel notebooks`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .data import available_datasets
from .device import describe_device, pick_device
from .training import PROTOCOLS, get_protocol, protocol_for_profile


def best_offline_dataset() -> str:
    """Fashion-MNIST when its files are here, else the bundled digits."""
    return "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"


def cmd_datasets(args: argparse.Namespace) -> int:
    for name, status in available_datasets(args.root).items():
        print(f"{name:18s} {status}")
    return 0


DEMO_DEFENSES = ("jpeg", "grayscale", "bdr")  # purifications ranked by ISS/APBench against AR; the best is shown


def cmd_demo(args: argparse.Namespace) -> int:
    """Clean training, AR-poisoned training, and AR + the best of the available defenses: table + figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .experiments import DataSpec, evaluate
    from .plots import bar_table

    dataset = args.dataset or best_offline_dataset()
    protocol = get_protocol(args.protocol) if args.protocol else protocol_for_profile(args.profile or "quick")
    if args.epochs:
        protocol = protocol.with_(epochs=args.epochs)
    n_per_class = args.n_per_class
    if n_per_class is None:
        n_per_class = {"smoke": 20, "quick": 1000}.get(protocol.name)  # None: the whole training set
    spec = DataSpec(dataset, n_per_class=n_per_class or None, as_rgb=args.rgb)
    device = pick_device(args.device)
    print(describe_device(device))
    print(f"dataset: {spec.label} | protocol: {protocol.name} ({protocol.model}, {protocol.epochs} epochs)"
          f" | seed {args.seed}")
    t0 = time.perf_counter()
    train_set, _ = spec.load()
    ar_params = {} if train_set.channels == 3 else {"coefficients": "find"}  # released processes are RGB
    run = dict(dataset=spec, protocol=protocol, seeds=[args.seed], device=args.device, quiet=args.quiet,
               baseline=False)
    steps = [("clean", "none", "none"), ("AR", "ar", "none")]
    results = {}
    for label, attack, defense in steps:
        print(f"  training on {label} ...", flush=True)
        results[label] = evaluate(attack, defense, attack_params=ar_params if attack == "ar" else None, **run)
    defended = {}
    for defense in args.defenses:
        print(f"  training on AR + {defense} ...", flush=True)
        defended[defense] = evaluate("ar", defense, attack_params=ar_params, **run)
    best = max(defended, key=lambda d: defended[d].mean)
    results[f"AR + {best}"] = defended[best]
    total = time.perf_counter() - t0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = bar_table({k: 100 * r.mean for k, r in results.items()},
                    title=f"{spec.label}, judge {protocol.name}: clean test accuracy")
    png = out / "demo.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    summary = {"dataset": spec.label, "protocol": protocol.name, "seed": args.seed, "device": str(device),
               "runs": {k: r.summary() for k, r in results.items()},
               "defenses_tried": {d: r.mean for d, r in defended.items()}, "best_defense": best,
               "test_acc_per_epoch": {k: r.test_acc[0] for k, r in results.items()}, "total_seconds": total}
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    print()
    print(f"{'training set':16s} {'final acc':>10s} {'peak acc':>10s} {'peak epoch':>11s}")
    for label, r in results.items():
        print(f"{label:16s} {100 * r.final[0]:9.2f}% {100 * r.peak[0]:9.2f}% {r.peak_epoch[0]:11d}")
    tried = ", ".join(f"{d} {100 * r.mean:.2f}%" for d, r in defended.items())
    print(f"\ndefenses tried against AR: {tried}; the best is shown.")
    print(f"wrote {png} and {out / 'demo.json'} (total {total:.1f}s; runs are cached, a second call is instant)")
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

    p = sub.add_parser("demo", help="clean vs AR-poisoned vs AR + the best defense, on the best offline dataset")
    p.add_argument("--dataset", default=None, help="default: fashion-mnist if installed, else digits")
    p.add_argument("--n-per-class", type=int, default=None,
                   help="training images per class (default: 20 at smoke, 1000 at quick, all otherwise; 0 = all)")
    p.add_argument("--rgb", action="store_true", help="repeat a grayscale channel 3x (AR's released processes)")
    p.add_argument("--defenses", nargs="+", default=list(DEMO_DEFENSES), help="defenses to try against AR")
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
