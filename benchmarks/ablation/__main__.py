"""Reproduce the label-quality ablation table: `python -m benchmarks.ablation`.

Every row uses the same 5 folds (KFold, shuffled, seed 0 — the folds of
`petal model evaluate --split cv`). Embeddings and the stacker's inner-CV base
scores are cached under `.petal/cache/ablation`, so a rerun takes minutes; the
first run encodes the papers (~30-60 s) and fits the inner CV (~10 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import cost
from . import data as data_module
from . import embeddings as emb
from . import scorers as s
from . import stacking as st
from . import thresholds as th
from .evaluate import Result, cross_validate, format_row, header

ENCODER_VARIANTS = ("title_abstract", "title_abstract_venue", "title")


def build_context(with_mpnet: bool, variants=ENCODER_VARIANTS) -> s.Context:
    data = data_module.load()
    ctx = s.Context(data, {v: emb.paper_embeddings(data, v, 256) for v in variants})
    if variants == ENCODER_VARIANTS:
        ctx.embeddings["title_abstract_512"] = emb.paper_embeddings(data, "title_abstract", 512)
    ctx.label_vectors = emb.label_embeddings(data, with_ancestors=True)
    if with_mpnet:
        ctx.embeddings["mpnet"] = emb.paper_embeddings(data, "title_abstract", 256, encoder="mpnet")
        ctx.other_label_vectors["mpnet"] = emb.label_embeddings(data, True, encoder="mpnet")
    return ctx


def best_bases() -> dict[str, s.Scorer]:
    """The base scorers of the recommended stack; names carry hyperparameters (cache keys)."""
    return {
        "svm_wc_C0.5": s.tfidf_svm(0.5, char=True),
        "knn_minilm_k20_T0.1": s.knn(20, 0.1),
        "logreg_minilm_C4": s.logreg(4.0),
        "zeroshot_minilm": s.zero_shot(),
        "venue_s2": s.venue(2.0),
    }


def threshold_metrics(stacker, parents: np.ndarray, post):
    """micro/macro F1, thresholds fit on the training fold's inner out-of-fold combiner scores."""
    from petal_labeller.model.metrics import macro_f1, micro_f1

    def extra(
        ctx: s.Context, train: np.ndarray, test: np.ndarray, scores: np.ndarray
    ) -> dict[str, float]:
        train_scores = post(stacker.train_scores)
        y_train, y_test = ctx.data.gold[train], ctx.data.gold[test]
        t_global = th.fit_global(train_scores, y_train, parents)
        t_label = th.fit_per_label(train_scores, y_train, parents)
        out = {}
        for name, t in (("", t_global), ("per-label ", t_label)):
            predicted = th.select(scores, t, parents)
            out[f"{name}micro-F1"] = micro_f1(predicted, y_test)
            out[f"{name}macro-F1"] = macro_f1(predicted, y_test)
        return out

    return extra


def rows(ctx: s.Context, quick: bool):
    """(name, scorer, post-processing) for every row of the table, cheapest first."""
    parents = s.parent_index(ctx.data)
    propagate = lambda x: s.propagate_max(x, parents)  # noqa: E731
    yield "label prior", s.prior, None
    yield "TF-IDF word 1-2g + LinearSVC C=0.5", s.tfidf_svm(0.5, char=False), None
    yield "TF-IDF word 1-2g + char_wb 2-5g + LinearSVC C=0.1", s.tfidf_svm(0.1), None
    yield "TF-IDF word 1-2g + char_wb 2-5g + LinearSVC C=0.5", s.tfidf_svm(0.5), None
    for k, t in ((10, 0.1), (20, 0.02), (20, 0.05), (20, 0.1), (20, 1.0), (40, 0.1)):
        yield f"kNN MiniLM title+abstract k={k} T={t}", s.knn(k, t), None
    yield "kNN MiniLM k=20 T=0.1 + parent=max(children)", s.knn(20, 0.1), propagate
    yield "kNN MiniLM title+abstract+venue k=20 T=0.1", s.knn(20, 0.1, "title_abstract_venue"), None
    yield "kNN MiniLM title only k=20 T=0.1", s.knn(20, 0.1, "title"), None
    yield "kNN MiniLM 512 tokens k=20 T=0.1", s.knn(20, 0.1, "title_abstract_512"), None
    if "mpnet" in ctx.embeddings:
        yield "kNN all-mpnet-base-v2 k=20 T=0.1", s.knn(20, 0.1, "mpnet"), None
        yield "logreg all-mpnet-base-v2 C=4", s.logreg(4.0, "mpnet"), None
    yield "kNN TF-IDF cosine k=20 T=0.05", s.knn_tfidf(20, 0.05), None
    for c in (1.0, 4.0, 16.0):
        yield f"logistic regression on frozen MiniLM C={c:g}", s.logreg(c), None
    yield "ridge on frozen MiniLM alpha=1", s.ridge(1.0), None
    yield "zero-shot: cos(paper, label + ancestors' names)", s.zero_shot(), None
    yield "venue: P(label given venue), smoothed to prior", s.venue(2.0), None

    levels = np.array([ctx.data.taxonomy.level(label) for label in ctx.data.labels])
    cap = lambda x: s.cap_by_parent(x, parents)  # noqa: E731
    cache: dict = {}
    bases = best_bases()
    plain = st.stacked(bases, "logistic", cache, levels)
    yield "STACK-LR (svm, knn, logreg, zero-shot, venue)", plain, None
    best = st.stacked(bases, "logistic", cache, levels)
    yield (
        "STACK-LR + child=min(child, parent)  [recommended]",
        best,
        cap,
        threshold_metrics(best, parents, cap),
    )
    yield "STACK-LR + parent=max(children)", st.stacked(bases, "logistic", cache, levels), propagate
    four = {k: v for k, v in bases.items() if not k.startswith("logreg")}
    yield (
        "STACK-LR without logreg + cap (4 bases)",
        st.stacked(four, "logistic", cache, levels),
        cap,
    )
    hier = st.stacked(bases, "logistic", cache, levels, parents)
    yield "STACK-LR + hierarchy features", hier, None
    yield "STACK-LR + hierarchy features + parent=max(children)", hier, propagate
    weighted = st.weighted_sum({k: bases[k] for k in list(bases) if k != "zeroshot_minilm"}, cache)
    yield "weighted sum of globally z-scored bases (weights by inner CV)", weighted, None
    yield (
        "STACK-LR + cap, word-only SVM (no char n-grams)",
        st.stacked(
            {
                **{k: v for k, v in bases.items() if not k.startswith("svm")},
                "svm_w_C0.5": s.tfidf_svm(0.5, False),
            },
            "logistic",
            cache,
            levels,
        ),
        cap,
    )
    extra = {"knn_tfidf_k20_T0.05": s.knn_tfidf(20, 0.05)}
    yield (
        "STACK-LR + kNN TF-IDF base, + child=min(child, parent)",
        st.stacked({**bases, **extra}, "logistic", cache, levels),
        cap,
    )
    if "mpnet" in ctx.embeddings:
        extra = {"knn_mpnet_k20_T0.1": s.knn(20, 0.1, "mpnet")}
        yield (
            "STACK-LR + kNN mpnet base, + child=min(child, parent)",
            st.stacked({**bases, **extra}, "logistic", cache, levels),
            cap,
        )
    if not quick:
        yield "LinearSVC on [TF-IDF word+char | MiniLM embedding]", s.tfidf_embedding_svm(0.5), None
        yield (
            "STACK-GBM + hierarchy features",
            st.stacked(bases, "gbm", cache, levels, parents),
            None,
        )
        for drop in bases:
            rest = {k: v for k, v in bases.items() if k != drop}
            yield (
                f"STACK-LR + cap, without {drop}",
                st.stacked(rest, "logistic", cache, levels),
                cap,
            )


def production_stack_parts(ctx: s.Context) -> tuple[np.ndarray, np.ndarray, dict]:
    """What the production-stack rows start from: each label's parent column, each label's
    level, and the production stack's four bases (the recommended ones less logreg)."""
    parents = s.parent_index(ctx.data)
    levels = np.array([ctx.data.taxonomy.level(label) for label in ctx.data.labels])
    four = {k: v for k, v in best_bases().items() if not k.startswith("logreg")}
    return parents, levels, four


def retune_rows(ctx: s.Context):
    """The recommended 4-base stack (+ cap) with each data-size-dependent knob moved one step:
    the SVM's C, kNN's k and temperature (`--retune`, for a grown data set)."""
    parents, levels, four = production_stack_parts(ctx)
    cap = lambda x: s.cap_by_parent(x, parents)  # noqa: E731
    cache: dict = {}
    variants = {
        "as measured on 630 (SVM C=0.5, kNN k=20 T=0.1)": {},
        # kNN first: cheap once the SVM's scores are cached; the SVM refits take longest.
        "kNN k=10": {"knn_minilm_k20_T0.1": ("knn_minilm_k10_T0.1", s.knn(10, 0.1))},
        "kNN k=40": {"knn_minilm_k20_T0.1": ("knn_minilm_k40_T0.1", s.knn(40, 0.1))},
        "kNN k=20 T=0.05": {"knn_minilm_k20_T0.1": ("knn_minilm_k20_T0.05", s.knn(20, 0.05))},
        "SVM C=1": {"svm_wc_C0.5": ("svm_wc_C1", s.tfidf_svm(1.0, char=True))},
        "SVM C=0.25": {"svm_wc_C0.5": ("svm_wc_C0.25", s.tfidf_svm(0.25, char=True))},
    }
    for label, swaps in variants.items():
        bases = dict(four)
        for old, (new, scorer) in swaps.items():
            bases = {
                (new if k == old else k): (scorer if k == old else v) for k, v in bases.items()
            }
        stacker = st.stacked(bases, "logistic", cache, levels)
        yield (
            f"STACK-LR 4 bases + cap, {label}",
            stacker,
            cap,
            threshold_metrics(stacker, parents, cap),
        )


def round_three_rows(ctx: s.Context):
    """Issue 28: the production 4-base stack with the hierarchy applied three ways at ranking
    time (lever 5), and with label prototypes as a fifth base (lever 2); `--round3`."""
    parents, levels, four = production_stack_parts(ctx)
    cap = lambda x: s.cap_by_parent(x, parents)  # noqa: E731
    lift = lambda x: s.propagate_max(x, parents)  # noqa: E731
    cache: dict = {}
    production = st.stacked(four, "logistic", cache, levels)
    yield (
        "STACK-LR 4 bases + cap (production)",
        production,
        cap,
        threshold_metrics(production, parents, cap),
    )
    yield "STACK-LR 4 bases, no hierarchy", production, None
    # After the lift a parent is at least its best child, so a cap after it changes nothing.
    yield (
        "STACK-LR 4 bases + parent=max(children)",
        production,
        lift,
        threshold_metrics(production, parents, lift),
    )
    for with_names in (False, True):
        name = f"prototype{'_names' if with_names else ''}_minilm"
        bases = {**four, name: s.prototype(with_names)}
        stacker = st.stacked(bases, "logistic", cache, levels)
        what = "papers + path name" if with_names else "papers"
        yield (
            f"STACK-LR 4 bases + label prototypes ({what}) + cap",
            stacker,
            cap,
            threshold_metrics(stacker, parents, cap),
        )
    if "mpnet" in ctx.embeddings:
        bases = {
            **{k: v for k, v in four.items() if not k.startswith("knn")},
            "knn_mpnet_k20_T0.1": s.knn(20, 0.1, "mpnet"),
        }
        yield (
            "STACK-LR 4 bases, kNN on mpnet instead of MiniLM, + cap",
            st.stacked(bases, "logistic", cache, levels),
            cap,
        )


def mpnet_rows(ctx: s.Context):
    """Issue 28 lever 3: all-mpnet-base-v2 in MiniLM's place for every embedding base (kNN and
    zero-shot), alone and in the production stack with the production hierarchy (lift);
    `--mpnet`, needs PETAL_MPNET_DIR."""
    if "mpnet" not in ctx.embeddings:
        raise SystemExit("--mpnet needs PETAL_MPNET_DIR (see docs/quality-research.md)")
    parents, levels, four = production_stack_parts(ctx)
    lift = lambda x: s.propagate_max(x, parents)  # noqa: E731
    cache: dict = {}
    on_mpnet = {
        "svm_wc_C0.5": four["svm_wc_C0.5"],
        "knn_mpnet_k20_T0.1": s.knn(20, 0.1, "mpnet"),
        "zeroshot_mpnet": s.zero_shot("mpnet"),
        "venue_s2": four["venue_s2"],
    }
    yield "kNN MiniLM k=20 T=0.1 + lift", s.knn(20, 0.1), lift
    yield "kNN all-mpnet-base-v2 k=20 T=0.1 + lift", s.knn(20, 0.1, "mpnet"), lift
    yield "zero-shot MiniLM", s.zero_shot(), None
    yield "zero-shot all-mpnet-base-v2", s.zero_shot("mpnet"), None
    for name, bases in (("MiniLM (production)", four), ("all-mpnet-base-v2", on_mpnet)):
        stacker = st.stacked(bases, "logistic", cache, levels)
        yield (
            f"STACK-LR 4 bases on {name} + lift",
            stacker,
            lift,
            threshold_metrics(stacker, parents, lift),
        )


def finetune_rows(data: data_module.Dataset) -> list[dict]:
    """Fine-tuning results written by `python -m benchmarks.ablation.finetune`, a fold at a time."""
    found = []
    for path in sorted(data_module.cache_dir().glob(f"finetune_*_{data.digest}.json")):
        found.append(json.loads(path.read_text()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the GBM combiner and the leave-one-out stacks"
    )
    parser.add_argument(
        "--retune", action="store_true", help="only the stack with data-size knobs moved"
    )
    parser.add_argument(
        "--round3", action="store_true", help="issue 28: hierarchy at ranking time, prototypes"
    )
    parser.add_argument(
        "--mpnet", action="store_true", help="issue 28 lever 3: all-mpnet-base-v2 for MiniLM"
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/ablation.json"))
    args = parser.parse_args()
    with_mpnet = bool(os.environ.get("PETAL_MPNET_DIR"))
    # The retune rows read only the title + abstract embeddings.
    only_main_text = args.retune or args.round3 or args.mpnet
    ctx = build_context(with_mpnet, ("title_abstract",) if only_main_text else ENCODER_VARIANTS)
    print(
        f"# Ablation, {len(ctx.y)} papers, {ctx.y.shape[1]} labels, "
        f"5-fold CV (seed {data_module.FOLD_SEED})"
    )
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(header())
    results: list[Result] = []
    started = time.perf_counter()
    table = (
        retune_rows(ctx)
        if args.retune
        else round_three_rows(ctx)
        if args.round3
        else mpnet_rows(ctx)
        if args.mpnet
        else rows(ctx, args.quick)
    )
    for row in table:
        name, scorer, post = row[:3]
        extra = row[3] if len(row) > 3 else None
        result = cross_validate(name, scorer, ctx, post, extra)
        results.append(result)
        print(format_row(result), flush=True)
        if extra is not None:
            summary = result.summary()
            print(
                f"|   ↳ per-label thresholds | | | | | | "
                f"{summary['per-label micro-F1'][0]:.3f} ± "
                f"{summary['per-label micro-F1'][1]:.3f} | "
                f"{summary['per-label macro-F1'][0]:.3f} ± "
                f"{summary['per-label macro-F1'][1]:.3f} | |"
            )
    for ft in finetune_rows(ctx.data):
        m = ft["test"]
        print(
            f"| fine-tuned MiniLM ({ft['loss']}), fold {ft['fold']} only | "
            + " | ".join(f"{m[c]:.3f}" for c in ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5"))
            + f" | — | — | {ft['train_s']:.0f} s |"
        )
    print(f"# total {time.perf_counter() - started:.0f} s")
    levels = np.array([ctx.data.taxonomy.level(label) for label in ctx.data.labels])
    parents = s.parent_index(ctx.data)
    costs = (
        {}
        if only_main_text
        else cost.measure(
            ctx,
            lambda: st.stacked(best_bases(), "logistic", {}, levels, persist=False),
            lambda x: s.cap_by_parent(x, parents),
        )
    )
    for key, value in costs.items():
        print(f"# cost: {key} = {value:.1f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {r.name: {"per_fold": r.per_fold, "fit_predict_s": r.train_s} for r in results},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
